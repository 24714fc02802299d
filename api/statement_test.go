package api_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/ledger"
)

// TestBalanceStatementReconciles: top-ups, debits (amount and fee), a
// settled payout, a failed one (refund) and a returned one: the statement,
// read page by page and as CSV, has every movement, each line's balance
// follows from the one before, and the last equals GET /v1/balance.
func TestBalanceStatementReconciles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ls := ledger.NewStore(e.pool)
	if a := e.callWith(t, "", "POST", e.op.URL+"/operator/v1/merchants/m1/topups", `{"environment":"sandbox","amount":5000000,"memo":"=wire"}`,
		func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+operatorToken)
			r.Header.Set("Idempotency-Key", "st-topup")
		}); a.status != 200 {
		t.Fatalf("top-up: %d %s", a.status, a.raw)
	}
	ids := fixture.Pending(t, e.pool, "m1", "st", 4, 100_000)
	if _, _, err := ls.ApplyDebits(ctx, ids); err != nil {
		t.Fatal(err)
	}
	for i, o := range []ledger.Outcome{{Completed: true}, {FailureCode: "BANK_REJECTED"}, {Completed: true}} {
		if _, _, err := ls.Settle(ctx, ids[i], o); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := ls.Return(ctx, ids[2]); err != nil {
		t.Fatal(err)
	}
	// ids[3] stays PROCESSING: its debit is on the statement, no settlement.

	var lines []map[string]any
	path := "/v1/balance/transactions?limit=2"
	for pages := 0; path != ""; pages++ {
		a := e.call(t, e.key, "GET", path, "")
		if a.status != 200 || pages > 20 {
			t.Fatalf("page %d: %d %s", pages, a.status, a.raw)
		}
		for _, l := range a.body["data"].([]any) {
			lines = append(lines, l.(map[string]any))
		}
		path = ""
		if c, ok := a.body["next_cursor"].(string); ok {
			path = "/v1/balance/transactions?limit=2&cursor=" + c
		}
	}
	types := map[string]int{}
	var balance int64
	for i, l := range lines {
		amount, after := int64(l["amount"].(float64)), int64(l["balance_after"].(float64))
		if i == 0 {
			balance = after - amount
			if balance != 0 {
				t.Errorf("the first movement starts from %d, want 0", balance)
			}
		}
		if balance+amount != after {
			t.Fatalf("line %d: %d + %d != %d", i, balance, amount, after)
		}
		balance = after
		types[l["type"].(string)]++
	}
	want := map[string]int{"topup": 2, "payout": 4, "fee": 4, "refund": 1, "return": 1}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Errorf("movement types %v, want %v", types, want)
	}
	b := e.call(t, e.key, "GET", "/v1/balance", "")
	if b.status != 200 || int64(b.body["available"].(float64)) != balance {
		t.Fatalf("statement ends at %d, balance %s", balance, b.raw)
	}
	// 1e9 demo + 5e6 top-up, four debits of 100,000 + 2,500, one refund of
	// 102,500, one return of 100,000 (its fee kept).
	if want := int64(1_000_000_000 + 5_000_000 - 4*102_500 + 102_500 + 100_000); balance != want {
		t.Errorf("balance %d, want %d", balance, want)
	}

	a := e.call(t, e.key, "GET", "/v1/balance/transactions.csv", "")
	recs, err := csv.NewReader(strings.NewReader(a.raw)).ReadAll()
	if a.status != 200 || err != nil || len(recs) != len(lines)+1 {
		t.Fatalf("CSV: %d %v, %d rows for %d lines\n%s", a.status, err, len(recs), len(lines), a.raw)
	}
	for i, r := range recs[1:] {
		if r[0] != lines[i]["id"] || r[5] != strconv.FormatInt(int64(lines[i]["balance_after"].(float64)), 10) {
			t.Errorf("CSV row %d %v, JSON %v", i, r, lines[i])
		}
		if r[2] == "topup" && strings.HasPrefix(r[7], "=") {
			t.Errorf("memo cell %q not neutralised", r[7])
		}
	}
	// A window: only the movements in it, the same balances.
	first := lines[len(lines)-1]["created_at"].(string)
	a = e.call(t, e.key, "GET", "/v1/balance/transactions?from="+first, "")
	if data := a.body["data"].([]any); a.status != 200 || len(data) == 0 || data[len(data)-1].(map[string]any)["balance_after"] != float64(balance) {
		t.Fatalf("from the last movement: %d %s", a.status, a.raw)
	}
	for _, bad := range []string{"cursor=bt_x", "cursor=%00", "cursor=bt_01", "from=yesterday", "limit=0", "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"} {
		if a := e.call(t, e.key, "GET", "/v1/balance/transactions?"+bad, ""); a.status != 400 || a.code() != "VALIDATION_ERROR" {
			t.Errorf("%s: %d %s", bad, a.status, a.raw)
		}
	}
}
