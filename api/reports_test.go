package api_test

import (
	"context"
	"encoding/csv"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/schemas/events"
)

func getAs(t *testing.T, url, key string) answer {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	return do(t, req)
}

// Each key sees its own merchant's environment only, and bad parameters
// answer 400.
func TestReports(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	st := fixture.Reports(t)
	ms := merchant.NewStore(pool)
	s := &api.Server{Merchants: ms, Payouts: payout.NewStore(pool), Reports: st, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	ctx := context.Background()
	m1 := fixture.Merchant(t, pool, "m1", 1_000_000, api.DefaultSettings)
	m1live, err := ms.ActivateProduction(ctx, "m1", api.DefaultSettings)
	if err != nil {
		t.Fatal(err)
	}
	m2 := fixture.Merchant(t, pool, "m2", 1_000_000, api.DefaultSettings)

	at := time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC)
	ev := func(merchant, env, id string, amount int64) events.Status {
		return events.Status{DisbursementID: id, MerchantID: merchant, Environment: env, ReferenceID: "r-" + id,
			BankCode: "bni", Amount: amount, Fee: 2500, Currency: "IDR", Status: "COMPLETED", Version: 3, At: at, CreatedAt: at}
	}
	if _, err := st.InsertStatus(ctx, []events.Status{
		ev("m1", "sandbox", "s1", 100), ev("m1", "production", "p1", 200), ev("m2", "sandbox", "o1", 400),
	}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		key, id string
		amount  float64
	}{{m1, "s1", 100}, {m1live, "p1", 200}, {m2, "o1", 400}} {
		a := getAs(t, srv.URL+"/v1/reports/summary?from=2026-03-01&to=2026-03-31&group_by=bank", tc.key)
		data, _ := a.body["data"].([]any)
		if a.status != 200 || len(data) != 1 {
			t.Fatalf("summary for %s: %d %s", tc.id, a.status, a.raw)
		}
		row := data[0].(map[string]any)
		if row["amount"] != tc.amount || row["bank_code"] != "bni" || row["count"] != 1.0 {
			t.Errorf("summary for %s: %v", tc.id, row)
		}
		a = getAs(t, srv.URL+"/v1/reports/disbursements.csv?from=2026-03-10&to=2026-03-10", tc.key)
		recs, err := csv.NewReader(strings.NewReader(a.raw)).ReadAll()
		if a.status != 200 || err != nil || len(recs) != 2 || recs[1][0] != tc.id {
			t.Errorf("export for %s: %d %v\n%s", tc.id, a.status, err, a.raw)
		}
		if ct := a.header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
	}

	for _, q := range []string{
		"/v1/reports/summary?from=2026-03-31&to=2026-03-01",
		"/v1/reports/summary?from=2025-01-01&to=2026-03-01",
		"/v1/reports/summary?from=2026-03-01&to=2026-03-31&group_by=merchant",
		"/v1/reports/summary?to=2026-03-31",
		"/v1/reports/summary?from=yesterday&to=2026-03-31",
		"/v1/reports/disbursements.csv?from=2026-03-31&to=2026-03-01",
		"/v1/reports/disbursements.csv?from=2024-01-01&to=2025-01-01",
		"/v1/reports/summary?from=2026-03-01&to=2026-03-31&tz=Mars/Olympus",
		"/v1/reports/summary?from=2026-03-01&to=2026-03-31&tz=..%2F..%2Fetc%2Fpasswd",
		"/v1/reports/disbursements.csv?from=2026-03-01&to=2026-03-31&status=DONE",
		"/v1/reports/disbursements.csv?from=2026-03-01&to=2026-03-31&bank_code=nope",
	} {
		if a := getAs(t, srv.URL+q, m1); a.status != 400 || a.code() != api.CodeValidation {
			t.Errorf("%s: %d %s, want 400 %s", q, a.status, a.raw, api.CodeValidation)
		}
	}
	// RFC 3339 bounds, a time zone, and the list endpoint's filters.
	a := getAs(t, srv.URL+"/v1/reports/summary?from=2026-03-10T07:59:00Z&to=2026-03-10T08:01:00Z&tz=UTC&group_by=day&status=COMPLETED&bank_code=bni", m1)
	if data, _ := a.body["data"].([]any); a.status != 200 || len(data) != 1 || a.body["tz"] != "UTC" {
		t.Fatalf("summary with times and filters: %d %s", a.status, a.raw)
	}
	a = getAs(t, srv.URL+"/v1/reports/disbursements.csv?from=2026-03-10&to=2026-03-10&reference_id=r-none", m1)
	if recs, _ := csv.NewReader(strings.NewReader(a.raw)).ReadAll(); a.status != 200 || len(recs) != 1 {
		t.Fatalf("export filtered to nothing: %d %s", a.status, a.raw)
	}
	if a := getAs(t, srv.URL+"/v1/reports/summary?from=2026-03-01&to=2026-03-31", ""); a.status != 401 {
		t.Errorf("without a key: %d", a.status)
	}
}
