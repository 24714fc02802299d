package reports_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/reports"
	"github.com/disburse/disburse/schemas/events"
)

var day = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

// dayPeriod is the UTC day of day.
var dayPeriod = reports.Period{From: day.Truncate(24 * time.Hour), To: day.Truncate(24*time.Hour).AddDate(0, 0, 1)}

func ev(merchant, env, id, status string, version int, amount int64, at time.Time) events.Status {
	return events.Status{
		DisbursementID: id, MerchantID: merchant, Environment: env, ReferenceID: "ref-" + id,
		BankCode: "bca", Amount: amount, Fee: 2500, Currency: "IDR", Status: status, Version: version,
		At: at, CreatedAt: day,
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	st := fixture.Reports(t)
	if err := st.Migrate(context.Background(), func(f string, a ...any) { t.Errorf("applied again: "+f, a...) }); err != nil {
		t.Fatal(err)
	}
}

// A redelivered batch, and duplicates inside one batch, change no count.
func TestInsertStatusOncePerVersion(t *testing.T) {
	st := fixture.Reports(t)
	ctx := context.Background()
	batch := []events.Status{
		ev("m1", "sandbox", "d1", "PROCESSING", 2, 1000, day),
		ev("m1", "sandbox", "d1", "COMPLETED", 3, 1000, day.Add(time.Minute)),
		ev("m1", "sandbox", "d2", "PROCESSING", 2, 500, day),
		ev("m1", "sandbox", "d2", "PROCESSING", 2, 500, day), // duplicate in the batch
	}
	for i, want := range []int{3, 0} {
		n, err := st.InsertStatus(ctx, batch)
		if err != nil || n != want {
			t.Fatalf("insert %d: inserted %d, %v; want %d", i, n, err, want)
		}
	}
	rows, err := st.Summary(ctx, reports.Scope{MerchantID: "m1", Environment: "sandbox"}, dayPeriod, reports.ByStatus)
	if err != nil {
		t.Fatal(err)
	}
	// Each payout once, under its latest status.
	want := []reports.SummaryRow{
		{Status: "COMPLETED", Currency: "IDR", Count: 1, Amount: 1000, Fee: 2500},
		{Status: "PROCESSING", Currency: "IDR", Count: 1, Amount: 500, Fee: 2500},
	}
	if len(rows) != len(want) || rows[0] != want[0] || rows[1] != want[1] {
		t.Fatalf("summary = %+v, want %+v", rows, want)
	}
	totals, err := st.Totals(ctx)
	if err != nil || len(totals) != 2 || totals[0].Status != "COMPLETED" || totals[1].Count != 1 {
		t.Fatalf("latest state = %+v, %v", totals, err)
	}
}

// A merchant's reports hold only its own environment's rows.
func TestReportsAreScoped(t *testing.T) {
	st := fixture.Reports(t)
	ctx := context.Background()
	_, err := st.InsertStatus(ctx, []events.Status{
		ev("m1", "sandbox", "a1", "COMPLETED", 3, 100, day),
		ev("m1", "production", "a2", "COMPLETED", 3, 200, day),
		ev("m2", "sandbox", "a3", "COMPLETED", 3, 400, day),
	})
	if err != nil {
		t.Fatal(err)
	}
	p := dayPeriod
	for _, tc := range []struct {
		sc   reports.Scope
		id   string
		want int64
	}{
		{reports.Scope{MerchantID: "m1", Environment: "sandbox"}, "a1", 100},
		{reports.Scope{MerchantID: "m1", Environment: "production"}, "a2", 200},
		{reports.Scope{MerchantID: "m2", Environment: "sandbox"}, "a3", 400},
		{reports.Scope{MerchantID: "m2", Environment: "production"}, "", 0},
	} {
		for _, g := range []string{reports.ByDay, reports.ByBank, reports.ByStatus} {
			rows, err := st.Summary(ctx, tc.sc, p, g)
			if err != nil {
				t.Fatal(err)
			}
			var sum int64
			for _, r := range rows {
				sum += r.Amount
			}
			if sum != tc.want {
				t.Errorf("%+v by %s: amount %d, want %d (%+v)", tc.sc, g, sum, tc.want, rows)
			}
		}
		var b strings.Builder
		if err := st.Export(ctx, tc.sc, p, reports.Filter{}, nil, &b); err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range recs[1:] {
			ids = append(ids, r[0])
		}
		if want := tc.id; (want == "" && len(ids) != 0) || (want != "" && (len(ids) != 1 || ids[0] != want)) {
			t.Errorf("%+v: export has %v, want [%s]", tc.sc, ids, want)
		}
	}
}

// The export pages through the rows in creation order, writes the header
// once and defuses formula cells.
func TestExport(t *testing.T) {
	st := fixture.Reports(t)
	ctx := context.Background()
	var evs []events.Status
	for i := range 7 {
		e := ev("m1", "sandbox", "x"+string(rune('a'+i)), "COMPLETED", 3, int64(i+1), day)
		e.CreatedAt = day.Add(time.Duration(i) * time.Second)
		evs = append(evs, e)
	}
	evs[3].ReferenceID = "=HYPERLINK(\"http://evil\")"
	outside := ev("m1", "sandbox", "late", "COMPLETED", 3, 99, day)
	outside.CreatedAt = day.AddDate(0, 0, 1)
	evs = append(evs, outside)
	if _, err := st.InsertStatus(ctx, evs); err != nil {
		t.Fatal(err)
	}
	defer func(n int) { reports.SetExportPage(n) }(reports.SetExportPage(3))
	var b strings.Builder
	if err := st.Export(ctx, reports.Scope{MerchantID: "m1", Environment: "sandbox"}, dayPeriod, reports.Filter{}, nil, &b); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != strings.Join(reports.ExportColumns, ",") {
		t.Fatalf("header = %v", recs[0])
	}
	if len(recs) != 8 {
		t.Fatalf("%d rows, want header + 7:\n%s", len(recs), b.String())
	}
	for i, r := range recs[1:] {
		if r[5] != string(rune('1'+i)) {
			t.Errorf("row %d amount %s, want creation order", i, r[4])
		}
	}
	if got := recs[4][1]; got != "'=HYPERLINK(\"http://evil\")" {
		t.Errorf("reference cell = %q, want it prefixed with '", got)
	}
	if recs[1][12] != "2026-03-10T09:00:00.000Z" {
		t.Errorf("created_at = %q", recs[1][12])
	}
}

func TestParsePeriod(t *testing.T) {
	jakarta, _ := time.LoadLocation("Asia/Jakarta")
	for _, tc := range []struct {
		from, to, tz, code string
		wantFrom, wantTo   time.Time
	}{
		{"2026-01-01", "2026-01-31", "", "", time.Date(2026, 1, 1, 0, 0, 0, 0, jakarta), time.Date(2026, 2, 1, 0, 0, 0, 0, jakarta)},
		{"2026-01-01", "2026-01-01", "UTC", "", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)},
		{"2026-01-01T10:00:00Z", "2026-01-01T18:30:00+07:00", "", "", time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 11, 30, 0, 0, time.UTC)},
		{"2025-01-01", "2025-12-31", "", "", time.Time{}, time.Time{}},
		{"2024-01-01", "2024-12-31", "", "", time.Time{}, time.Time{}}, // 366 days
		{"2024-01-01", "2025-01-01", "", "RANGE_TOO_LONG", time.Time{}, time.Time{}},
		{"2026-02-01", "2026-01-31", "", "BEFORE_FROM", time.Time{}, time.Time{}},
		{"2026-01-01T10:00:00Z", "2026-01-01T10:00:00Z", "", "BEFORE_FROM", time.Time{}, time.Time{}},
		{"", "2026-01-31", "", "REQUIRED", time.Time{}, time.Time{}},
		{"2026-01-01", "", "", "REQUIRED", time.Time{}, time.Time{}},
		{"2026-13-01", "2026-12-31", "", "INVALID_DATE", time.Time{}, time.Time{}},
		{"2026-01-01 10:00", "2026-12-31", "", "INVALID_DATE", time.Time{}, time.Time{}},
		{"2026-01-01", "2026-01-31", "Mars/Olympus", "INVALID_TIME_ZONE", time.Time{}, time.Time{}},
		{"2026-01-01", "2026-01-31", "../../etc/passwd", "INVALID_TIME_ZONE", time.Time{}, time.Time{}},
		{"2026-01-01", "2026-01-31", "Local", "INVALID_TIME_ZONE", time.Time{}, time.Time{}},
	} {
		p, err := reports.ParsePeriod(tc.from, tc.to, tc.tz)
		var code string
		if pe, ok := err.(*reports.ParamError); ok {
			code = pe.Code
		} else if err != nil {
			t.Fatalf("%s..%s: %v", tc.from, tc.to, err)
		}
		if code != tc.code {
			t.Errorf("%s..%s %s: code %q, want %q", tc.from, tc.to, tc.tz, code, tc.code)
		}
		if !tc.wantFrom.IsZero() && (!p.From.Equal(tc.wantFrom) || !p.To.Equal(tc.wantTo)) {
			t.Errorf("%s..%s %s: [%v, %v), want [%v, %v)", tc.from, tc.to, tc.tz, p.From, p.To, tc.wantFrom, tc.wantTo)
		}
	}
	if _, err := reports.ParseGroupBy("merchant"); !reports.IsParamError(err) {
		t.Errorf("group_by=merchant accepted")
	}
}

// TestSummaryCountsEachPayoutOnce: payouts that changed status after their
// first event count once, under their current status, in every grouping;
// days are the merchant's (Asia/Jakarta by default); filters narrow the
// summary and the export alike.
func TestSummaryCountsEachPayoutOnce(t *testing.T) {
	st := fixture.Reports(t)
	ctx := context.Background()
	sc := reports.Scope{MerchantID: "m1", Environment: "sandbox"}
	// 23:30 UTC on the 9th is the 10th in Jakarta (UTC+7).
	late := time.Date(2026, 3, 9, 23, 30, 0, 0, time.UTC)
	mk := func(id, bank string, created time.Time, statuses ...string) []events.Status {
		var out []events.Status
		for i, s := range statuses {
			e := ev("m1", "sandbox", id, s, i+1, 1000, created.Add(time.Duration(i)*time.Hour))
			e.BankCode, e.CreatedAt = bank, created
			out = append(out, e)
		}
		return out
	}
	var evs []events.Status
	evs = append(evs, mk("p1", "bca", late, "PENDING", "PROCESSING", "COMPLETED")...)
	evs = append(evs, mk("p2", "bni", late, "PENDING", "PROCESSING", "FAILED")...)
	evs = append(evs, mk("p3", "bca", day, "PENDING", "PROCESSING", "COMPLETED", "REVERSED")...)
	evs = append(evs, mk("p4", "bca", day, "PENDING", "PROCESSING")...)
	if _, err := st.InsertStatus(ctx, evs); err != nil {
		t.Fatal(err)
	}
	p, err := reports.ParsePeriod("2026-03-10", "2026-03-10", "")
	if err != nil {
		t.Fatal(err)
	}
	byStatus, err := st.Summary(ctx, sc, p, reports.ByStatus)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range byStatus {
		got[r.Status] += r.Count
	}
	want := map[string]int64{"COMPLETED": 1, "FAILED": 1, "REVERSED": 1, "PROCESSING": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("by status %v, want %v", got, want)
	}
	byDay, err := st.Summary(ctx, sc, p, reports.ByDay)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range byDay {
		if r.Day != "2026-03-10" {
			t.Errorf("row on %s: every payout was created on the 10th in Jakarta: %+v", r.Day, byDay)
		}
	}
	utc, _ := reports.ParsePeriod("2026-03-10", "2026-03-10", "UTC")
	if rows, _ := st.Summary(ctx, sc, utc, reports.ByStatus); len(rows) != 2 {
		t.Errorf("the UTC day of the 10th holds p3 and p4 only: %+v", rows)
	}
	byBank, err := st.SummaryOf(ctx, sc, p, reports.ByBank, reports.Filter{Statuses: []string{"COMPLETED", "FAILED"}})
	if err != nil {
		t.Fatal(err)
	}
	bank := map[string]int64{}
	for _, r := range byBank {
		bank[r.Bank+" "+r.Status] += r.Count
	}
	if fmt.Sprint(bank) != fmt.Sprint(map[string]int64{"bca COMPLETED": 1, "bni FAILED": 1}) {
		t.Errorf("by bank, completed and failed: %v", bank)
	}
	var b strings.Builder
	if err := st.Export(ctx, sc, p, reports.Filter{BankCode: "bca", Statuses: []string{"REVERSED", "PROCESSING"}}, nil, &b); err != nil {
		t.Fatal(err)
	}
	recs, _ := csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if len(recs) != 3 || recs[1][0] != "p3" || recs[2][0] != "p4" || recs[1][8] != "REVERSED" {
		t.Errorf("filtered export:\n%s", b.String())
	}
}

// TestExportDetails: the export's account numbers are masked but for the
// last 4, and text from the merchant cannot start a formula.
func TestExportDetails(t *testing.T) {
	st := fixture.Reports(t)
	ctx := context.Background()
	sc := reports.Scope{MerchantID: "m1", Environment: "sandbox"}
	if _, err := st.InsertStatus(ctx, []events.Status{ev("m1", "sandbox", "d1", "COMPLETED", 3, 1000, day)}); err != nil {
		t.Fatal(err)
	}
	done := day.Add(time.Minute)
	details := func(_ context.Context, got reports.Scope, ids []string) (map[string]reports.Details, error) {
		if got != sc || len(ids) != 1 || ids[0] != "d1" {
			t.Errorf("details asked for %+v %v", got, ids)
		}
		return map[string]reports.Details{"d1": {AccountNumber: "1234567890", Description: "=HYPERLINK(\"http://evil\")",
			Metadata: map[string]string{"order": "-5", "a": "b"}, CompletedAt: &done}}, nil
	}
	var b strings.Builder
	if err := st.Export(ctx, sc, dayPeriod, reports.Filter{}, details, &b); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if err != nil || len(recs) != 2 {
		t.Fatalf("%v\n%s", err, b.String())
	}
	row := map[string]string{}
	for i, c := range reports.ExportColumns {
		row[c] = recs[1][i]
	}
	want := map[string]string{"account_number": "******7890", "description": "'=HYPERLINK(\"http://evil\")",
		"metadata": `{"a":"b","order":"-5"}`, "completed_at": "2026-03-10T09:01:00.000Z", "failure_code": ""}
	for c, v := range want {
		if row[c] != v {
			t.Errorf("%s = %q, want %q", c, row[c], v)
		}
	}
	for in, want := range map[string]string{"1234567890": "******7890", "12345": "*2345", "1234": "****", "": ""} {
		if got := reports.MaskAccount(in); got != want {
			t.Errorf("MaskAccount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSafeCell(t *testing.T) {
	for in, want := range map[string]string{
		"=1+1": "'=1+1", "+1": "'+1", "-1": "'-1", "@SUM(A1)": "'@SUM(A1)", "\tx": "'\tx", "\rx": "'\rx",
		"order-1": "order-1", "": "", "1=1": "1=1",
	} {
		if got := reports.SafeCell(in); got != want {
			t.Errorf("SafeCell(%q) = %q, want %q", in, got, want)
		}
	}
}
