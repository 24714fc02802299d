package api

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/reports"
)

// Reports answers the report endpoints from ClickHouse; *reports.Store
// implements it. Every call is scoped to the caller's merchant and
// environment.
type Reports interface {
	Summary(ctx context.Context, sc reports.Scope, p reports.Period, groupBy string) ([]reports.SummaryRow, error)
	Export(ctx context.Context, sc reports.Scope, p reports.Period, w io.Writer) error
}

// reportParams reads from, to and (for the summary) group_by; a bad one
// is answered 400 and ok is false.
func reportParams(w http.ResponseWriter, r *http.Request, withGroup bool) (p reports.Period, groupBy string, ok bool) {
	q := r.URL.Query()
	var fields []payout.FieldError
	p, err := reports.ParsePeriod(q.Get("from"), q.Get("to"))
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
		return p, "", false
	}
	return p, groupBy, true
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
	p, groupBy, ok := reportParams(w, r, true)
	if !ok || !s.reportsReady(w) {
		return
	}
	rows, err := s.Reports.Summary(r.Context(), reports.Scope{MerchantID: pr.MerchantID, Environment: pr.Environment}, p, groupBy)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"environment": pr.Environment,
		"from":        p.From.Format("2006-01-02"),
		"to":          p.To.Format("2006-01-02"),
		"group_by":    groupBy,
		"data":        rows,
	})
}

// getReportCSV serves GET /v1/reports/disbursements.csv, streamed.
func (s *Server) getReportCSV(w http.ResponseWriter, r *http.Request, pr merchant.Principal) {
	p, _, ok := reportParams(w, r, false)
	if !ok || !s.reportsReady(w) {
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="disbursements-`+
		p.From.Format("20060102")+"-"+p.To.Format("20060102")+`.csv"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := s.Reports.Export(r.Context(), reports.Scope{MerchantID: pr.MerchantID, Environment: pr.Environment}, p, w); err != nil {
		id, _ := r.Context().Value(requestIDKey{}).(string)
		s.Log.Error("report export failed", "request_id", id, "merchant_id", pr.MerchantID, "err", err)
		// The header is sent: cut the connection so the client sees a
		// broken download, never a complete-looking short file.
		panic(http.ErrAbortHandler)
	}
}
