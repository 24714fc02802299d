package api

import (
	"context"
	"encoding/csv"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/reports"
)

// statementPage is the entries one statement query reads.
const statementPage = 1000

type statementParams struct {
	from, to time.Time
	after    int64
	limit    int
}

// readStatementParams reads from and to (RFC 3339, optional; from
// included, to excluded), cursor and limit.
func readStatementParams(r *http.Request) (statementParams, *problem) {
	q := r.URL.Query()
	var sp statementParams
	var prob *problem
	if sp.from, prob = queryTime(q, "from"); prob != nil {
		return sp, prob
	}
	if sp.to, prob = queryTime(q, "to"); prob != nil {
		return sp, prob
	}
	if !sp.from.IsZero() && !sp.to.IsZero() && !sp.from.Before(sp.to) {
		return sp, badQuery("to", "INVALID_RANGE", "to must be after from")
	}
	if sp.limit, prob = queryLimit(q, 100, statementPage); prob != nil {
		return sp, prob
	}
	var err error
	if sp.after, err = ledger.ParseStatementCursor(q.Get("cursor")); err != nil {
		return sp, cursorProblem("cursor")
	}
	return sp, nil
}

// getBalanceTransactions serves GET /v1/balance/transactions: every
// movement of the available balance with the balance after it.
func (s *Server) getBalanceTransactions(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	sp, prob := readStatementParams(r)
	if prob != nil {
		writeError(w, prob)
		return
	}
	list, next, err := s.statementPage(r.Context(), p, sp, sp.after, sp.limit)
	if errors.Is(err, ledger.ErrNoAccounts) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "this environment has no balance yet"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	var cursor *string
	if next != 0 {
		c := ledger.StatementCursor(next)
		cursor = &c
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": list, "next_cursor": cursor, "has_more": cursor != nil})
}

// statementColumns is the header row of the statement CSV.
var statementColumns = []string{"id", "created_at", "type", "disbursement_id", "amount", "balance_after", "currency", "memo"}

// getBalanceTransactionsCSV serves GET /v1/balance/transactions.csv: the
// same lines from the cursor on, to the end, streamed a page at a time.
func (s *Server) getBalanceTransactionsCSV(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	sp, prob := readStatementParams(r)
	if prob != nil {
		writeError(w, prob)
		return
	}
	if r.URL.Query().Has("limit") {
		writeError(w, badQuery("limit", "NOT_ALLOWED", "the CSV statement has every line; page the JSON statement instead"))
		return
	}
	ctx := r.Context()
	list, next, err := s.statementPage(ctx, p, sp, sp.after, statementPage)
	if errors.Is(err, ledger.ErrNoAccounts) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "this environment has no balance yet"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="balance-transactions.csv"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	cw := csv.NewWriter(w)
	_ = cw.Write(statementColumns)
	for {
		for _, m := range list {
			id := ""
			if m.DisbursementID != nil {
				id = *m.DisbursementID
			}
			_ = cw.Write([]string{m.ID, m.CreatedAt.Format("2006-01-02T15:04:05.000000Z"), m.Type, reports.SafeCell(id),
				strconv.FormatInt(m.Amount, 10), strconv.FormatInt(m.BalanceAfter, 10), m.Currency, reports.SafeCell(m.Memo)})
		}
		cw.Flush()
		if next == 0 {
			return
		}
		if list, next, err = s.statementPage(ctx, p, sp, next, statementPage); err != nil {
			s.Log.Error("statement export failed", "merchant_id", p.MerchantID, "err", err)
			panic(http.ErrAbortHandler) // a cut download, never a short file that looks whole
		}
	}
}

// statementPage reads one page in a read-only repeatable-read transaction,
// so the page and the balance before it come from one snapshot.
func (s *Server) statementPage(ctx context.Context, p merchant.Principal, sp statementParams, after int64, limit int) ([]ledger.StatementLine, int64, error) {
	tx, err := s.Ledger.DB().BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	return ledger.Statement(ctx, tx, p.MerchantID, p.Environment, "IDR", sp.from, sp.to, after, limit)
}
