package reports

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// MaxRange is the longest period one report covers, both ends included.
const MaxRange = 366 * 24 * time.Hour

// Scope is whose data a report shows: one merchant's one environment.
// Every report query filters on both.
type Scope struct {
	MerchantID  string
	Environment string
}

// Period is a range of UTC days, both ends included.
type Period struct{ From, To time.Time }

// ParamError is a report parameter that is missing or wrong.
type ParamError struct{ Field, Code, Message string }

func (e *ParamError) Error() string { return e.Field + ": " + e.Message }

// ParsePeriod reads from and to (YYYY-MM-DD, UTC days, both included).
func ParsePeriod(from, to string) (Period, error) {
	var p Period
	var err error
	if p.From, err = parseDay("from", from); err != nil {
		return p, err
	}
	if p.To, err = parseDay("to", to); err != nil {
		return p, err
	}
	if p.To.Before(p.From) {
		return p, &ParamError{"to", "BEFORE_FROM", "to must not be before from"}
	}
	if p.To.Sub(p.From) >= MaxRange {
		return p, &ParamError{"to", "RANGE_TOO_LONG", "a report covers at most 366 days"}
	}
	return p, nil
}

func parseDay(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, &ParamError{field, "REQUIRED", field + " is required (YYYY-MM-DD)"}
	}
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, &ParamError{field, "INVALID_DATE", field + " must be a date, YYYY-MM-DD"}
	}
	return t, nil
}

// GroupBy values of Summary.
const (
	ByDay    = "day"
	ByBank   = "bank"
	ByStatus = "status"
)

// ParseGroupBy checks group_by (default day).
func ParseGroupBy(v string) (string, error) {
	switch v {
	case "":
		return ByDay, nil
	case ByDay, ByBank, ByStatus:
		return v, nil
	}
	return "", &ParamError{"group_by", "INVALID", "group_by must be day, bank or status"}
}

// SummaryRow is one group of a summary: the payouts that reached Status
// in the period (on Day, or at Bank), with their amounts and fees.
type SummaryRow struct {
	Day      string `json:"day,omitempty"`
	Bank     string `json:"bank_code,omitempty"`
	Status   string `json:"status"`
	Currency string `json:"currency"`
	Count    int64  `json:"count"`
	Amount   int64  `json:"amount"`
	Fee      int64  `json:"fee"`
}

// Summary aggregates the daily totals (daily_status) of the scope over the
// period by day, bank or status; every group is split by status and
// currency.
func (s *Store) Summary(ctx context.Context, sc Scope, p Period, groupBy string) ([]SummaryRow, error) {
	var sel, group string // the group's column, selected and grouped by
	switch groupBy {
	case ByDay:
		sel, group = "toString(day) AS day, ", "day, "
	case ByBank:
		sel, group = "bank_code, ", "bank_code, "
	case ByStatus:
	default:
		return nil, &ParamError{"group_by", "INVALID", "group_by must be day, bank or status"}
	}
	q := fmt.Sprintf(`SELECT %sstatus, currency, sum(payouts) AS count, sum(amount) AS amount, sum(fee) AS fee
FROM (SELECT * FROM %s WHERE merchant_id = %s AND environment = %s AND day BETWEEN toDate(%s) AND toDate(%s))
GROUP BY %sstatus, currency
ORDER BY %sstatus, currency`,
		sel, s.table("daily_status"), Quote(sc.MerchantID), Quote(sc.Environment),
		Quote(p.From.Format(time.DateOnly)), Quote(p.To.Format(time.DateOnly)), group, group)
	out := []SummaryRow{}
	err := s.eng.QueryJSON(ctx, q, func(row []byte) error {
		var r SummaryRow
		if err := json.Unmarshal(row, &r); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	return out, nil
}

// ExportColumns is the CSV export's header row.
var ExportColumns = []string{
	"id", "reference_id", "batch_id", "bank_code", "amount", "fee", "currency",
	"status", "failure_code", "created_at", "updated_at",
}

// exportPage bounds the rows one export query reads (a variable for tests).
var exportPage = 5000

type exportRow struct {
	ID          string `json:"disbursement_id"`
	ReferenceID string `json:"reference_id"`
	BatchID     string `json:"batch_id"`
	BankCode    string `json:"bank_code"`
	Amount      int64  `json:"amount"`
	Fee         int64  `json:"fee"`
	Currency    string `json:"currency"`
	Status      string `json:"status"`
	FailureCode string `json:"failure_code"`
	CreatedMs   int64  `json:"created_ms"`
	UpdatedMs   int64  `json:"updated_ms"`
}

// Export writes the scope's payouts created in the period, in their latest
// state, as CSV with a header row (ExportColumns), oldest first. It reads
// and writes a page at a time, so memory stays flat whatever the period
// holds. Cells are safe to open in a spreadsheet (see SafeCell).
func (s *Store) Export(ctx context.Context, sc Scope, p Period, w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ExportColumns); err != nil {
		return err
	}
	end := p.To.AddDate(0, 0, 1)
	var lastMs int64 = -1 << 62
	lastID := ""
	for {
		q := fmt.Sprintf(`SELECT disbursement_id, reference_id, batch_id, bank_code, amount, fee, currency, status, failure_code,
       toUnixTimestamp64Milli(created_at) AS created_ms, toUnixTimestamp64Milli(updated_at) AS updated_ms
FROM %s FINAL
WHERE merchant_id = %s AND environment = %s
  AND created_at >= toDateTime64(%s, 3, 'UTC') AND created_at < toDateTime64(%s, 3, 'UTC')
  AND (toUnixTimestamp64Milli(created_at), disbursement_id) > (%d, %s)
ORDER BY created_ms, disbursement_id
LIMIT %d`,
			s.table("payouts"), Quote(sc.MerchantID), Quote(sc.Environment),
			Quote(p.From.Format(time.DateTime)), Quote(end.Format(time.DateTime)), lastMs, Quote(lastID), exportPage)
		n := 0
		err := s.eng.QueryJSON(ctx, q, func(row []byte) error {
			var r exportRow
			if err := json.Unmarshal(row, &r); err != nil {
				return err
			}
			n++
			lastMs, lastID = r.CreatedMs, r.ID
			return cw.Write([]string{
				SafeCell(r.ID), SafeCell(r.ReferenceID), SafeCell(r.BatchID), SafeCell(r.BankCode),
				strconv.FormatInt(r.Amount, 10), strconv.FormatInt(r.Fee, 10), SafeCell(r.Currency),
				SafeCell(r.Status), SafeCell(r.FailureCode), msTime(r.CreatedMs), msTime(r.UpdatedMs),
			})
		})
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		if n < exportPage {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

func msTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

// SafeCell defuses CSV formula injection: a cell a spreadsheet would read
// as a formula (starting with =, +, -, @, tab or carriage return) gets a
// leading apostrophe, which spreadsheets show as text.
func SafeCell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

// Total is the count and sums of one merchant environment's payouts in
// one status and currency, from the latest-state table.
type Total struct {
	MerchantID  string `json:"merchant_id"`
	Environment string `json:"environment"`
	Status      string `json:"status"`
	Currency    string `json:"currency"`
	Count       int64  `json:"count"`
	Amount      int64  `json:"amount"`
	Fee         int64  `json:"fee"`
}

// Totals returns every merchant environment's payouts per status and
// currency in their latest state, for reconciliation with the ledger.
func (s *Store) Totals(ctx context.Context) ([]Total, error) {
	return s.totals(ctx, "totals", "count()", s.table("payouts")+" FINAL")
}

// totals groups a table's payouts per merchant environment, status and
// currency; count is the expression that counts them.
func (s *Store) totals(ctx context.Context, what, count, from string) ([]Total, error) {
	q := fmt.Sprintf(`SELECT merchant_id, environment, status, currency, %s AS count, sum(amount) AS amount, sum(fee) AS fee
FROM %s
GROUP BY merchant_id, environment, status, currency
ORDER BY merchant_id, environment, status, currency`, count, from)
	var out []Total
	err := s.eng.QueryJSON(ctx, q, func(row []byte) error {
		var t Total
		if err := json.Unmarshal(row, &t); err != nil {
			return err
		}
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// IsParamError reports whether err is a bad report parameter.
func IsParamError(err error) bool {
	var pe *ParamError
	return errors.As(err, &pe)
}

// StatusChanges returns, from the daily aggregates, how many times every
// merchant environment's payouts reached each status, for reconciliation
// with the ledger's event feed.
func (s *Store) StatusChanges(ctx context.Context) ([]Total, error) {
	return s.totals(ctx, "status changes", "sum(payouts)", s.table("daily_status"))
}
