package main

import (
	"context"
	"encoding/csv"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// statusTotals are count, amount and fee per status.
type statusTotals map[string][3]int64

func (s statusTotals) add(status string, count, amount, fee int64) {
	t := s[status]
	s[status] = [3]int64{t[0] + count, t[1] + amount, t[2] + fee}
}

func (s statusTotals) String() string {
	var b strings.Builder
	for _, st := range []string{"PENDING", "PROCESSING", "COMPLETED", "FAILED", "REVERSED", "CANCELLED"} {
		if t, ok := s[st]; ok {
			b.WriteString(st + "=" + strconv.FormatInt(t[0], 10) + "/" + strconv.FormatInt(t[1], 10) + "/" + strconv.FormatInt(t[2], 10) + " ")
		}
	}
	return b.String()
}

// reconcileReports checks, on the pipeline's settled payouts (each of
// which changed status after its first event), that the merchant's
// summary grouped by status, bank and day, the CSV export, the payouts in
// Postgres and the ledger's accounts all agree: every payout once, under
// its current status.
func reconcileReports(t *testing.T, p *pipeline) {
	t.Helper()
	ctx := context.Background()
	period := "from=" + url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)) +
		"&to=" + url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))

	// Postgres: the payouts and the ledger.
	pg := statusTotals{}
	rows, err := p.pool.Query(ctx, `SELECT status, count(*), sum(amount), sum(fee) FROM disbursements
		WHERE merchant_id = 'm1' AND environment = 'sandbox' GROUP BY status`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var st string
		var n, a, f int64
		if err := rows.Scan(&st, &n, &a, &f); err != nil {
			t.Fatal(err)
		}
		pg.add(st, n, a, f)
	}
	rows.Close()
	accounts := map[string]int64{}
	rows, err = p.pool.Query(ctx, `SELECT kind, balance FROM accounts WHERE merchant_id = 'm1' AND environment = 'sandbox'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		var b int64
		if err := rows.Scan(&k, &b); err != nil {
			t.Fatal(err)
		}
		accounts[k] = b
	}
	rows.Close()
	if got, want := accounts["paid_out"], pg["COMPLETED"][1]; got != want {
		t.Errorf("ledger paid_out %d, payouts COMPLETED amount %d", got, want)
	}
	if got, want := accounts["fees"], pg["COMPLETED"][2]+pg["REVERSED"][2]; got != want {
		t.Errorf("ledger fees %d, fees of COMPLETED and REVERSED payouts %d", got, want)
	}
	if accounts["in_flight"] != pg["PROCESSING"][1]+pg["PROCESSING"][2] {
		t.Errorf("ledger in_flight %d, PROCESSING payouts %v", accounts["in_flight"], pg["PROCESSING"])
	}

	// The summary, in every grouping.
	for _, group := range []string{"status", "bank", "day"} {
		_, sum, _ := call(t, p.api.URL, p.key, "GET", "/v1/reports/summary?group_by="+group+"&"+period, nil, nil)
		got := statusTotals{}
		data, _ := sum["data"].([]any)
		for _, r := range data {
			row := r.(map[string]any)
			got.add(row["status"].(string), int64(row["count"].(float64)), int64(row["amount"].(float64)), int64(row["fee"].(float64)))
		}
		if got.String() != pg.String() {
			t.Errorf("summary by %s: %s; the payouts in Postgres: %s", group, got, pg)
		}
	}

	// The CSV export.
	req, _ := http.NewRequest("GET", p.api.URL+"/v1/reports/disbursements.csv?"+period, nil)
	req.SetBasicAuth(p.key, "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	recs, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
	if resp.StatusCode != 200 || err != nil || len(recs) < 2 {
		t.Fatalf("export: %d %v\n%s", resp.StatusCode, err, raw)
	}
	col := map[string]int{}
	for i, c := range recs[0] {
		col[c] = i
	}
	csvTotals := statusTotals{}
	seen := map[string]bool{}
	for _, r := range recs[1:] {
		id := r[col["id"]]
		if seen[id] {
			t.Errorf("%s twice in the export", id)
		}
		seen[id] = true
		amount, _ := strconv.ParseInt(r[col["amount"]], 10, 64)
		fee, _ := strconv.ParseInt(r[col["fee"]], 10, 64)
		csvTotals.add(r[col["status"]], 1, amount, fee)
		var account string
		var completed *time.Time
		if err := p.pool.QueryRow(ctx, `SELECT account_number, completed_at FROM disbursements WHERE id = $1`, id).Scan(&account, &completed); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		masked := r[col["account_number"]]
		if len(masked) != len(account) || !strings.HasSuffix(masked, account[len(account)-4:]) || strings.Contains(masked, account[:len(account)-4]) {
			t.Errorf("%s: account_number %q for %s: want all but the last 4 masked", id, masked, account)
		}
		if (completed != nil) != (r[col["completed_at"]] != "") {
			t.Errorf("%s: completed_at %q, Postgres %v", id, r[col["completed_at"]], completed)
		}
	}
	if csvTotals.String() != pg.String() {
		t.Errorf("export: %s; the payouts in Postgres: %s", csvTotals, pg)
	}
}
