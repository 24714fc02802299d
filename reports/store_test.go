package reports_test

import (
	"context"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/reports"
	"github.com/disburse/disburse/schemas/events"
)

var day = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

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
	rows, err := st.Summary(ctx, reports.Scope{MerchantID: "m1", Environment: "sandbox"},
		reports.Period{From: day, To: day}, reports.ByStatus)
	if err != nil {
		t.Fatal(err)
	}
	want := []reports.SummaryRow{
		{Status: "COMPLETED", Currency: "IDR", Count: 1, Amount: 1000, Fee: 2500},
		{Status: "PROCESSING", Currency: "IDR", Count: 2, Amount: 1500, Fee: 5000},
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
	p := reports.Period{From: day, To: day}
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
		if err := st.Export(ctx, tc.sc, p, &b); err != nil {
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
	if err := st.Export(ctx, reports.Scope{MerchantID: "m1", Environment: "sandbox"}, reports.Period{From: day, To: day}, &b); err != nil {
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
		if r[4] != string(rune('1'+i)) {
			t.Errorf("row %d amount %s, want creation order", i, r[4])
		}
	}
	if got := recs[4][1]; got != "'=HYPERLINK(\"http://evil\")" {
		t.Errorf("reference cell = %q, want it prefixed with '", got)
	}
	if recs[1][9] != "2026-03-10T09:00:00.000Z" {
		t.Errorf("created_at = %q", recs[1][9])
	}
}

func TestParsePeriod(t *testing.T) {
	for _, tc := range []struct {
		from, to, code string
	}{
		{"2026-01-01", "2026-01-31", ""},
		{"2026-01-01", "2026-01-01", ""},
		{"2025-01-01", "2025-12-31", ""},
		{"2024-01-01", "2024-12-31", ""}, // 366 days
		{"2024-01-01", "2025-01-01", "RANGE_TOO_LONG"},
		{"2026-02-01", "2026-01-31", "BEFORE_FROM"},
		{"", "2026-01-31", "REQUIRED"},
		{"2026-01-01", "", "REQUIRED"},
		{"2026-01-01T00:00:00Z", "2026-01-31", "INVALID_DATE"},
		{"2026-13-01", "2026-12-31", "INVALID_DATE"},
	} {
		_, err := reports.ParsePeriod(tc.from, tc.to)
		var code string
		if pe, ok := err.(*reports.ParamError); ok {
			code = pe.Code
		} else if err != nil {
			t.Fatalf("%s..%s: %v", tc.from, tc.to, err)
		}
		if code != tc.code {
			t.Errorf("%s..%s: code %q, want %q", tc.from, tc.to, code, tc.code)
		}
	}
	if _, err := reports.ParseGroupBy("merchant"); !reports.IsParamError(err) {
		t.Errorf("group_by=merchant accepted")
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
