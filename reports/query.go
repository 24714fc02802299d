package reports

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxRange is the longest period one report covers.
const MaxRange = 366 * 24 * time.Hour

// DefaultTimeZone is the merchants' day: dates in from/to and the days of
// group_by=day are in it unless tz says otherwise.
const DefaultTimeZone = "Asia/Jakarta"

// Scope is whose data a report shows: one merchant's one environment.
// Every report query filters on both.
type Scope struct {
	MerchantID  string
	Environment string
}

// Period is the payouts created from From (inclusive) to To (exclusive),
// with the time zone whose days group_by=day shows (nil: UTC).
type Period struct {
	From, To time.Time
	Loc      *time.Location
}

func (p Period) zone() string {
	if p.Loc == nil {
		return "UTC"
	}
	return p.Loc.String()
}

// Filter narrows a report to the payouts the list endpoint
// (GET /v1/disbursements) would show with the same parameters. Empty
// fields do not filter; CreatedFrom/CreatedTo narrow the period.
type Filter struct {
	ReferenceID string
	BatchID     string
	Statuses    []string
	BankCode    string
	CreatedFrom time.Time
	CreatedTo   time.Time
}

// ParamError is a report parameter that is missing or wrong.
type ParamError struct{ Field, Code, Message string }

func (e *ParamError) Error() string { return e.Field + ": " + e.Message }

// zonePattern is what an IANA zone name looks like; time.LoadLocation
// also reads file paths, which a request must not name.
var zonePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$`)

// ParseZone reads tz: an IANA time zone name, DefaultTimeZone when empty.
func ParseZone(tz string) (*time.Location, error) {
	if tz == "" {
		tz = DefaultTimeZone
	}
	if !zonePattern.MatchString(tz) || len(tz) > 64 {
		return nil, &ParamError{"tz", "INVALID_TIME_ZONE", "tz must be an IANA time zone such as Asia/Jakarta or UTC"}
	}
	loc, err := time.LoadLocation(tz)
	if err != nil || loc.String() == "Local" {
		return nil, &ParamError{"tz", "INVALID_TIME_ZONE", "tz must be an IANA time zone such as Asia/Jakarta or UTC"}
	}
	return loc, nil
}

// ParsePeriod reads from and to, each a date (YYYY-MM-DD, a whole day in
// tz, both days included) or an RFC 3339 time (from inclusive, to
// exclusive), and tz (DefaultTimeZone when empty).
func ParsePeriod(from, to, tz string) (Period, error) {
	loc, err := ParseZone(tz)
	if err != nil {
		return Period{}, err
	}
	p := Period{Loc: loc}
	if p.From, err = parseBound("from", from, loc, false); err != nil {
		return p, err
	}
	if p.To, err = parseBound("to", to, loc, true); err != nil {
		return p, err
	}
	if !p.From.Before(p.To) {
		return p, &ParamError{"to", "BEFORE_FROM", "to must be after from"}
	}
	if p.To.Sub(p.From) > MaxRange+time.Hour { // an hour of slack for a daylight-saving day
		return p, &ParamError{"to", "RANGE_TOO_LONG", "a report covers at most 366 days"}
	}
	return p, nil
}

// parseBound reads one end of a period; a date as the end means the end
// of that day (the start of the next).
func parseBound(field, v string, loc *time.Location, end bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, &ParamError{field, "REQUIRED", field + " is required (YYYY-MM-DD or an RFC 3339 time)"}
	}
	if d, err := time.ParseInLocation(time.DateOnly, v, loc); err == nil {
		if end {
			d = d.AddDate(0, 0, 1)
		}
		return d.UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, &ParamError{field, "INVALID_DATE", field + " must be a date (YYYY-MM-DD) or an RFC 3339 time"}
	}
	return t.UTC(), nil
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

// SummaryRow is one group of a summary: the payouts created in the period
// (on Day in the period's time zone, or at Bank) that are now in Status,
// with their amounts and fees.
type SummaryRow struct {
	Day      string `json:"day,omitempty"`
	Bank     string `json:"bank_code,omitempty"`
	Status   string `json:"status"`
	Currency string `json:"currency"`
	Count    int64  `json:"count"`
	Amount   int64  `json:"amount"`
	Fee      int64  `json:"fee"`
}

// latest is the SQL of the scope's payouts created in the period that
// match f, each once in its latest state (the highest version), as a
// subquery. FINAL folds the versions; only columns a payout never changes
// (scope, created_at) filter inside it, so a payout's older versions can
// never match where its latest does not; the rest filter outside.
func (s *Store) latest(sc Scope, p Period, f Filter) string {
	from, to := p.From, p.To
	if !f.CreatedFrom.IsZero() && f.CreatedFrom.After(from) {
		from = f.CreatedFrom
	}
	if !f.CreatedTo.IsZero() && f.CreatedTo.Before(to) {
		to = f.CreatedTo
	}
	var outer []string
	if f.ReferenceID != "" {
		outer = append(outer, "reference_id = "+Quote(f.ReferenceID))
	}
	if f.BatchID != "" {
		outer = append(outer, "batch_id = "+Quote(f.BatchID))
	}
	if len(f.Statuses) > 0 {
		q := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			q[i] = Quote(st)
		}
		outer = append(outer, "status IN ("+strings.Join(q, ", ")+")")
	}
	if f.BankCode != "" {
		outer = append(outer, "bank_code = "+Quote(f.BankCode))
	}
	where := ""
	if len(outer) > 0 {
		where = " WHERE " + strings.Join(outer, " AND ")
	}
	return fmt.Sprintf(`(SELECT * FROM (SELECT * FROM %s FINAL
 WHERE merchant_id = %s AND environment = %s
   AND created_at >= toDateTime64(%s, 3, 'UTC') AND created_at < toDateTime64(%s, 3, 'UTC'))%s)`,
		s.table("payouts"), Quote(sc.MerchantID), Quote(sc.Environment),
		Quote(from.UTC().Format("2006-01-02 15:04:05.000")), Quote(to.UTC().Format("2006-01-02 15:04:05.000")), where)
}

// Summary counts the scope's payouts created in the period,
// each once under its current status, grouped by the day of creation (in
// the period's time zone), the bank, or the status; every group is split
// by status and currency. It reads the latest-state table, so a payout
// that moved from PROCESSING to COMPLETED counts once, as COMPLETED, and
// the rows add up to the CSV export of the same parameters.
func (s *Store) Summary(ctx context.Context, sc Scope, p Period, groupBy string) ([]SummaryRow, error) {
	return s.SummaryOf(ctx, sc, p, groupBy, Filter{})
}

// SummaryOf is Summary of the payouts that match f.
func (s *Store) SummaryOf(ctx context.Context, sc Scope, p Period, groupBy string, f Filter) ([]SummaryRow, error) {
	var sel, group string // the group's column, selected and grouped by
	switch groupBy {
	case ByDay:
		sel, group = "toString(toDate(created_at, "+Quote(p.zone())+")) AS day, ", "day, "
	case ByBank:
		sel, group = "bank_code, ", "bank_code, "
	case ByStatus:
	default:
		return nil, &ParamError{"group_by", "INVALID", "group_by must be day, bank or status"}
	}
	q := fmt.Sprintf(`SELECT %sstatus, currency, count() AS count, sum(amount) AS amount, sum(fee) AS fee
FROM %s
GROUP BY %sstatus, currency
ORDER BY %sstatus, currency`, sel, s.latest(sc, p, f), group, group)
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
	"id", "reference_id", "batch_id", "bank_code", "account_number", "amount", "fee", "currency",
	"status", "failure_code", "description", "metadata", "created_at", "updated_at", "completed_at",
}

// Details are a payout's descriptive fields, which the status events (and
// so ClickHouse) do not carry: account numbers and free text stay out of
// the event stream and the analytics tables. The export reads them from
// the payouts' store, a page at a time.
type Details struct {
	AccountNumber string
	Description   string
	Metadata      map[string]string
	CompletedAt   *time.Time
}

// DetailsFunc returns the details of the given payouts of the scope; a
// payout it does not know gets empty cells.
type DetailsFunc func(ctx context.Context, sc Scope, ids []string) (map[string]Details, error)

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

// Export writes the scope's payouts created in the period that match f, in
// their latest state, as CSV with a header row (ExportColumns), oldest
// first. It reads and writes a page at a time, so memory stays flat
// whatever the period holds; details (nil: none) fills each page's
// account_number (masked but for the last 4 digits), description,
// metadata and completed_at. Every text cell is safe to open in a
// spreadsheet (see SafeCell).
func (s *Store) Export(ctx context.Context, sc Scope, p Period, f Filter, details DetailsFunc, w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ExportColumns); err != nil {
		return err
	}
	var lastMs int64 = -1 << 62
	lastID := ""
	for {
		q := fmt.Sprintf(`SELECT disbursement_id, reference_id, batch_id, bank_code, amount, fee, currency, status, failure_code,
       toUnixTimestamp64Milli(created_at) AS created_ms, toUnixTimestamp64Milli(updated_at) AS updated_ms
FROM %s
WHERE (toUnixTimestamp64Milli(created_at), disbursement_id) > (%d, %s)
ORDER BY created_ms, disbursement_id
LIMIT %d`, s.latest(sc, p, f), lastMs, Quote(lastID), exportPage)
		var page []exportRow
		err := s.eng.QueryJSON(ctx, q, func(row []byte) error {
			var r exportRow
			if err := json.Unmarshal(row, &r); err != nil {
				return err
			}
			page = append(page, r)
			return nil
		})
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		det := map[string]Details{}
		if details != nil && len(page) > 0 {
			ids := make([]string, len(page))
			for i, r := range page {
				ids[i] = r.ID
			}
			if det, err = details(ctx, sc, ids); err != nil {
				return fmt.Errorf("export details: %w", err)
			}
		}
		for _, r := range page {
			lastMs, lastID = r.CreatedMs, r.ID
			d := det[r.ID]
			meta := ""
			if len(d.Metadata) > 0 {
				b, _ := json.Marshal(d.Metadata) // a string map always encodes, keys sorted
				meta = string(b)
			}
			completed := ""
			if d.CompletedAt != nil {
				completed = d.CompletedAt.UTC().Format("2006-01-02T15:04:05.000Z")
			}
			if err := cw.Write([]string{
				SafeCell(r.ID), SafeCell(r.ReferenceID), SafeCell(r.BatchID), SafeCell(r.BankCode), MaskAccount(d.AccountNumber),
				strconv.FormatInt(r.Amount, 10), strconv.FormatInt(r.Fee, 10), SafeCell(r.Currency),
				SafeCell(r.Status), SafeCell(r.FailureCode), SafeCell(d.Description), SafeCell(meta),
				msTime(r.CreatedMs), msTime(r.UpdatedMs), completed,
			}); err != nil {
				return err
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		if len(page) < exportPage {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// MaskAccount hides an account number but for its last 4 characters; a
// number of 4 or fewer is hidden whole.
func MaskAccount(v string) string {
	n := utf8.RuneCountInString(v)
	if n <= 4 {
		return strings.Repeat("*", n)
	}
	r := []rune(v)
	return strings.Repeat("*", n-4) + string(r[n-4:])
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
