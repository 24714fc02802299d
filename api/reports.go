package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/reports"
)

// Reports answers the report endpoints from ClickHouse; *reports.Store
// implements it. Every call is scoped to the caller's merchant and
// environment.
type Reports interface {
	SummaryOf(ctx context.Context, sc reports.Scope, p reports.Period, groupBy string, f reports.Filter) ([]reports.SummaryRow, error)
	Export(ctx context.Context, sc reports.Scope, p reports.Period, f reports.Filter, details reports.DetailsFunc, w io.Writer) error
}

// reportParams reads from, to, tz, (for the summary) group_by, and the
// filters of GET /v1/disbursements; a bad one is answered 400 and ok is
// false.
func reportParams(w http.ResponseWriter, r *http.Request, withGroup bool) (p reports.Period, groupBy string, f reports.Filter, ok bool) {
	q := r.URL.Query()
	var fields []payout.FieldError
	p, err := reports.ParsePeriod(q.Get("from"), q.Get("to"), q.Get("tz"))
	var pe *reports.ParamError
	if errors.As(err, &pe) {
		fields = append(fields, payout.FieldError{Field: pe.Field, Code: pe.Code, Message: pe.Message})
	}
	if withGroup {
		if groupBy, err = reports.ParseGroupBy(q.Get("group_by")); errors.As(err, &pe) {
			fields = append(fields, payout.FieldError{Field: pe.Field, Code: pe.Code, Message: pe.Message})
		}
	}
	if len(fields) > 0 {
		writeError(w, newProblem(http.StatusBadRequest, CodeValidation, "invalid report parameters", fields...))
		return p, "", f, false
	}
	pf, prob := payoutFilter(r)
	if prob != nil {
		writeError(w, prob)
		return p, "", f, false
	}
	f = reports.Filter{ReferenceID: pf.ReferenceID, BatchID: pf.BatchID, BankCode: pf.BankCode,
		CreatedFrom: pf.CreatedFrom, CreatedTo: pf.CreatedTo}
	for _, s := range pf.Statuses {
		f.Statuses = append(f.Statuses, string(s))
	}
	return p, groupBy, f, true
}

func (s *Server) reportsReady(w http.ResponseWriter) bool {
	if s.Reports == nil {
		writeError(w, newProblem(http.StatusServiceUnavailable, CodeUnavailable, "reports are not configured on this server"))
		return false
	}
	return true
}

// getReportSummary serves GET /v1/reports/summary.
func (s *Server) getReportSummary(w http.ResponseWriter, r *http.Request, pr merchant.Principal) {
	p, groupBy, f, ok := reportParams(w, r, true)
	if !ok || !s.reportsReady(w) {
		return
	}
	rows, err := s.Reports.SummaryOf(r.Context(), reports.Scope{MerchantID: pr.MerchantID, Environment: pr.Environment}, p, groupBy, f)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"environment": pr.Environment,
		"from":        p.From.Format(time.RFC3339),
		"to":          p.To.Format(time.RFC3339),
		"tz":          p.Loc.String(),
		"group_by":    groupBy,
		"data":        rows,
	})
}

// exportDetails reads the export's descriptive columns from the payouts'
// store, a page of ids at a time.
func (s *Server) exportDetails(ctx context.Context, sc reports.Scope, ids []string) (map[string]reports.Details, error) {
	ds, err := s.Payouts.GetMany(ctx, sc.MerchantID, sc.Environment, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]reports.Details, len(ds))
	for id, d := range ds {
		out[id] = reports.Details{AccountNumber: d.AccountNumber, Description: d.Description, Metadata: d.Metadata, CompletedAt: d.CompletedAt}
	}
	return out, nil
}

// getReportCSV serves GET /v1/reports/disbursements.csv, streamed.
func (s *Server) getReportCSV(w http.ResponseWriter, r *http.Request, pr merchant.Principal) {
	p, _, f, ok := reportParams(w, r, false)
	if !ok || !s.reportsReady(w) {
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="disbursements-`+
		p.From.In(p.Loc).Format("20060102")+"-"+p.To.Add(-time.Millisecond).In(p.Loc).Format("20060102")+`.csv"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := s.Reports.Export(r.Context(), reports.Scope{MerchantID: pr.MerchantID, Environment: pr.Environment}, p, f, s.exportDetails, w); err != nil {
		id, _ := r.Context().Value(requestIDKey{}).(string)
		s.Log.Error("report export failed", "request_id", id, "merchant_id", pr.MerchantID, "err", err)
		// The header is sent: cut the connection so the client sees a
		// broken download, never a complete-looking short file.
		panic(http.ErrAbortHandler)
	}
}
