package dashboard

import (
	"errors"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/reports"
)

// reportZone names the zone reports are cut into days in.
const reportZone = "Asia/Jakarta"

type reportsView struct {
	From, To, GroupBy string
	Available         bool
	Rows              []reports.SummaryRow
	Chart             chart
}

// chart is a bar chart drawn as inline SVG on the server: no script, no
// external service, readable by screen readers through its title and the
// table beside it.
type chart struct {
	Width, Height, Baseline int
	Bars                    []bar
	Max                     int64
	Ticks                   []tick
}

type bar struct {
	X, Y, W, H     int
	LabelX, LabelY int
	Label, Value   string
	Class          string
}

type tick struct {
	Y     int
	Label string
}

// buildChart sums counts per group key (day, bank or status) into bars.
func buildChart(rows []reports.SummaryRow, groupBy string) chart {
	totals := map[string]int64{}
	for _, r := range rows {
		key := r.Status
		switch groupBy {
		case reports.ByDay:
			key = r.Day
		case reports.ByBank:
			key = r.Bank
		}
		totals[key] += r.Count
	}
	keys := make([]string, 0, len(totals))
	for k := range totals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	c := chart{Width: 760, Height: 260, Baseline: 220}
	for _, k := range keys {
		c.Max = max(c.Max, totals[k])
	}
	if len(keys) == 0 || c.Max == 0 {
		return c
	}
	const left, right, top = 56, 16, 16
	plot := c.Width - left - right
	slot := plot / len(keys)
	w := max(min(slot*7/10, 80), 4)
	for i := 0; i <= 4; i++ {
		v := c.Max * int64(i) / 4
		c.Ticks = append(c.Ticks, tick{Y: c.Baseline - int(int64(c.Baseline-top)*v/c.Max), Label: formatMoney(v)})
	}
	for i, k := range keys {
		h := int(int64(c.Baseline-top) * totals[k] / c.Max)
		x := left + i*slot + (slot-w)/2
		class := "bar"
		if groupBy == reports.ByStatus {
			class = "bar status-" + k
		}
		c.Bars = append(c.Bars, bar{X: x, Y: c.Baseline - h, W: w, H: h, LabelX: x + w/2, LabelY: c.Baseline + 16,
			Label: k, Value: strconv.FormatInt(totals[k], 10), Class: class})
	}
	return c
}

// reports shows the summary by day, bank or status as a chart and a table.
func (s *Server) reports(w http.ResponseWriter, r *http.Request, rq *request) {
	q := r.URL.Query()
	today := s.now().In(jakarta)
	v := reportsView{From: q.Get("from"), To: q.Get("to"), GroupBy: q.Get("group_by"), Available: s.API.Reports != nil}
	if v.From == "" {
		v.From = today.AddDate(0, 0, -6).Format(time.DateOnly)
	}
	if v.To == "" {
		v.To = today.Format(time.DateOnly)
	}
	groupBy, err := reports.ParseGroupBy(v.GroupBy)
	if err != nil {
		groupBy = reports.ByDay
	}
	v.GroupBy = groupBy
	if !v.Available {
		s.view(w, r, rq, "reports", "reports", "rep.title", v, "", T(rq.lang, "rep.unavailable"))
		return
	}
	period, err := reports.ParsePeriod(v.From, v.To, reportZone)
	var pe *reports.ParamError
	if errors.As(err, &pe) {
		s.view(w, r, rq, "reports", "reports", "rep.title", v, "", T(rq.lang, "rep.bad")+" "+pe.Message)
		return
	}
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	rows, err := s.API.Reports.SummaryOf(r.Context(), reports.Scope{MerchantID: rq.MerchantID, Environment: rq.Environment}, period, groupBy, reports.Filter{})
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	v.Rows = rows
	v.Chart = buildChart(rows, groupBy)
	s.view(w, r, rq, "reports", "reports", "rep.title", v, "", "")
}

// reportCSV downloads the payouts of the period, as
// GET /v1/reports/disbursements.csv does.
func (s *Server) reportCSV(w http.ResponseWriter, r *http.Request, rq *request) {
	q := r.URL.Query()
	period, err := reports.ParsePeriod(q.Get("from"), q.Get("to"), reportZone)
	var pe *reports.ParamError
	if errors.As(err, &pe) {
		s.fail(w, r, rq, http.StatusBadRequest, T(rq.lang, "rep.bad")+" "+pe.Message)
		return
	}
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	if s.API.Reports == nil {
		s.fail(w, r, rq, http.StatusServiceUnavailable, T(rq.lang, "rep.unavailable"))
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="disbursements-`+
		period.From.In(period.Loc).Format("20060102")+"-"+period.To.Add(-time.Millisecond).In(period.Loc).Format("20060102")+`.csv"`)
	if err := s.API.ExportReport(r.Context(), rq.principal(), period, reports.Filter{}, w); err != nil {
		if errors.Is(err, api.ErrNoReports) {
			return
		}
		s.Log.Error("report export failed", "merchant_id", rq.MerchantID, "err", err)
		panic(http.ErrAbortHandler)
	}
}
