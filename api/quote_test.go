package api_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// quoteBody is a partial batch: two payable items (one over max_per_payout),
// one reference_id paid before and one invalid row.
const quoteBody = `{"reference_id":"qb-1","mode":"partial","items":[
	{"reference_id":"q-1","bank_code":"bca","account_number":"1234567890","amount":150000},
	{"reference_id":"q-2","bank_code":"ovo","account_number":"081234567890","amount":20000000},
	{"reference_id":"q-dup","bank_code":"bni","account_number":"1234567890","amount":10000},
	{"reference_id":"q-4","bank_code":"bca","account_number":"1234567890","amount":0}]}`

func TestQuoteBatch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if a := e.operatorCall(t, "PUT", "/operator/v1/merchants/m1/environments/sandbox/settings", `{"fee_flat":2500,"fee_bps":10,"max_per_payout":10000000}`); a.status != 200 {
		t.Fatalf("settings: %d %s", a.status, a.raw)
	}
	if a := e.callWith(t, e.key, "POST", e.srv.URL+"/v1/disbursements", `{"reference_id":"q-dup","bank_code":"bni","account_number":"1234567890","amount":10000}`,
		func(r *http.Request) { r.Header.Set("Idempotency-Key", "q-dup") }); a.status != 202 {
		t.Fatalf("earlier payout: %d %s", a.status, a.raw)
	}
	state := func() string {
		var s string
		_ = e.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM disbursements)::text || '/' || (SELECT count(*) FROM journal_entries)::text
			|| '/' || (SELECT count(*) FROM batches)::text || '/' || (SELECT string_agg(balance::text, ',' ORDER BY id) FROM accounts)`).Scan(&s)
		return s
	}
	before, published := state(), e.requestRecords(t)

	a := e.call(t, e.key, "POST", "/v1/batches/quote", quoteBody)
	if a.status != 200 {
		t.Fatalf("quote: %d %s", a.status, a.raw)
	}
	b := a.body
	checks := map[string]any{"rows": 4.0, "valid_count": 3.0, "rejected_count": 1.0, "duplicate_count": 1.0, "acceptable": true,
		"item_count": 2.0, "total_amount": 20_150_000.0, "total_fee": 2500 + 150.0 + 2500 + 20_000.0, "over_limit_count": 1.0}
	for k, want := range checks {
		if b[k] != want {
			t.Errorf("%s = %v, want %v", k, b[k], want)
		}
	}
	if bal := b["balance"].(map[string]any); bal["covers"] != true || bal["available"] != 1_000_000_000.0 {
		t.Errorf("balance %v", bal)
	}
	if banks := b["banks"].([]any); len(banks) != 2 || banks[0].(map[string]any)["bank_code"] != "bca" || banks[1].(map[string]any)["bank_code"] != "ovo" {
		t.Errorf("banks %v", banks)
	}
	if row := b["rejected"].([]any)[0].(map[string]any); row["row"] != 4.0 || row["field"] != "amount" {
		t.Errorf("invalid row %v", row)
	}
	if state() != before || e.requestRecords(t) != published {
		t.Fatalf("a quote moved something: %s -> %s, %d -> %d records", before, state(), published, e.requestRecords(t))
	}
	quoteID := b["id"].(string)

	// A balance that does not cover the batch is said so.
	var items []string
	for i := range 11 { // 11 x 99,000,000 over a 1,000,000,000 deposit
		items = append(items, `{"reference_id":"big-`+strconv.Itoa(i)+`","bank_code":"bca","account_number":"1234567890","amount":99000000}`)
	}
	big := e.call(t, e.key, "POST", "/v1/batches/quote", `{"reference_id":"qb-2","items":[`+strings.Join(items, ",")+`]}`)
	if bal := big.body["balance"].(map[string]any); big.status != 200 || bal["covers"] != false || bal["shortfall"].(float64) <= 0 {
		t.Fatalf("uncovered quote: %d %s", big.status, big.raw)
	}

	// all_or_nothing with an invalid row is not acceptable and pays nothing.
	aon := e.call(t, e.key, "POST", "/v1/batches/quote", strings.Replace(quoteBody, `"partial"`, `"all_or_nothing"`, 1))
	if aon.status != 200 || aon.body["acceptable"] != false || aon.body["item_count"] != 0.0 {
		t.Fatalf("all_or_nothing quote: %d %s", aon.status, aon.raw)
	}

	// A batch with the quote's id must be the quoted batch.
	withQuote := func(body, id string) string {
		return strings.Replace(body, `"mode":"partial",`, `"mode":"partial","quote_id":"`+id+`",`, 1)
	}
	create := func(body, key string) answer {
		return e.callWith(t, e.key, "POST", e.srv.URL+"/v1/batches", body, func(r *http.Request) { r.Header.Set("Idempotency-Key", key) })
	}
	if c := create(withQuote(strings.Replace(quoteBody, "150000", "150001", 1), quoteID), "qb-changed"); c.status != 409 || c.code() != "QUOTE_MISMATCH" {
		t.Fatalf("changed batch: %d %s", c.status, c.raw)
	}
	if c := create(withQuote(quoteBody, "quo_unknown"), "qb-unknown"); c.status != 422 || !strings.Contains(c.raw, `"field":"quote_id"`) {
		t.Fatalf("unknown quote: %d %s", c.status, c.raw)
	}
	if state() != before {
		t.Fatalf("refused batches stored something: %s -> %s", before, state())
	}
	c := create(withQuote(quoteBody, quoteID), "qb-ok")
	if c.status != 202 || c.body["item_count"] != 2.0 || c.body["total_amount"] != 20_150_000.0 {
		t.Fatalf("batch from its quote: %d %s", c.status, c.raw)
	}

	// A CSV quote of the same items holds a JSON batch to it; fees changed
	// since, or time passed, and it no longer does.
	csv := "reference_id,bank_code,account_number,amount\nz-1,bca,1234567890,150000\nz-2,bri,1234567890,70000\n"
	qa := e.callWith(t, e.key, "POST", e.srv.URL+"/v1/batches/quote?reference_id=zb&mode=partial", csv, func(r *http.Request) { r.Header.Set("Content-Type", "text/csv") })
	if qa.status != 200 || qa.body["item_count"] != 2.0 {
		t.Fatalf("CSV quote: %d %s", qa.status, qa.raw)
	}
	zJSON := `{"reference_id":"zb","mode":"partial","quote_id":"` + qa.body["id"].(string) + `","items":[{"reference_id":"z-1","bank_code":"bca","account_number":"1234567890","amount":150000},{"reference_id":"z-2","bank_code":"bri","account_number":"1234567890","amount":70000}]}`
	if a := e.operatorCall(t, "PUT", "/operator/v1/merchants/m1/environments/sandbox/settings", `{"fee_flat":3000,"fee_bps":10,"max_per_payout":10000000}`); a.status != 200 {
		t.Fatalf("settings: %d %s", a.status, a.raw)
	}
	if c := create(zJSON, "zb-fees"); c.status != 409 || c.code() != "QUOTE_MISMATCH" || !strings.Contains(c.raw, "fees") {
		t.Fatalf("fees changed: %d %s", c.status, c.raw)
	}
	if a := e.operatorCall(t, "PUT", "/operator/v1/merchants/m1/environments/sandbox/settings", `{"fee_flat":2500,"fee_bps":10,"max_per_payout":10000000}`); a.status != 200 {
		t.Fatalf("settings: %d %s", a.status, a.raw)
	}
	e.clock.Advance(25 * time.Hour)
	if c := create(zJSON, "zb-late"); c.status != 409 || c.code() != "QUOTE_EXPIRED" {
		t.Fatalf("expired quote: %d %s", c.status, c.raw)
	}
	e.clock.Advance(-25 * time.Hour)
	if c := create(zJSON, "zb-ok"); c.status != 202 {
		t.Fatalf("JSON batch from a CSV quote: %d %s", c.status, c.raw)
	}
}
