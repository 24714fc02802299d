package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

// TestBatchMetadataAndList: batch items keep their metadata, from JSON
// items and from CSV metadata.<key> columns, and GET /v1/batches pages
// through the environment's batches newest first, filtered.
func TestBatchMetadataAndList(t *testing.T) {
	e := newEnv(t)
	post := func(key, ct, query, body string) answer {
		return e.callWith(t, e.key, "POST", e.srv.URL+"/v1/batches"+query, body, func(r *http.Request) {
			r.Header.Set("Content-Type", ct)
			r.Header.Set("Idempotency-Key", key)
		})
	}
	a := post("bj", "application/json", "", `{"reference_id":"json-1","items":[
		{"reference_id":"j1","bank_code":"bca","account_number":"1234567890","amount":100000,"metadata":{"order":"A-1","seller":"s9"}},
		{"reference_id":"j2","bank_code":"bca","account_number":"1234567890","amount":100000}]}`)
	if a.status != 202 {
		t.Fatalf("JSON batch: %d %s", a.status, a.raw)
	}
	c := post("bc", "text/csv", "?reference_id=csv-1", "reference_id,bank_code,account_number,amount,metadata.order,Metadata.Seller\n"+
		"c1,bni,1234567890,100000,B-7,s1\nc2,bni,1234567890,100000,,\n")
	if c.status != 202 {
		t.Fatalf("CSV batch: %d %s", c.status, c.raw)
	}
	want := map[string]string{"j1": `{"order": "A-1", "seller": "s9"}`, "j2": `{}`, "c1": `{"order": "B-7", "Seller": "s1"}`, "c2": `{}`}
	for ref, meta := range want {
		var got string
		if err := e.pool.QueryRow(context.Background(), `SELECT metadata::text FROM disbursements WHERE reference_id = $1`, ref).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != meta {
			t.Errorf("%s metadata %s, want %s", ref, got, meta)
		}
	}
	item := e.call(t, e.key, "GET", "/v1/disbursements?reference_id=c1", "")
	if d := item.body["data"].([]any); len(d) != 1 || fmt.Sprint(d[0].(map[string]any)["metadata"]) != "map[Seller:s1 order:B-7]" {
		t.Errorf("c1 through the API: %s", item.raw)
	}
	if b := post("bad", "text/csv", "?reference_id=csv-2", "reference_id,bank_code,account_number,amount,metadata.\nx,bni,1234567890,100000,v\n"); b.status != 400 {
		t.Errorf("a metadata column without a key: %d %s", b.status, b.raw)
	}
	long := ""
	for range 300 {
		long += "v"
	}
	if b := post("bad2", "text/csv", "?reference_id=csv-3", "reference_id,bank_code,account_number,amount,metadata.k\nx,bni,1234567890,100000,"+long+"\n"); b.status != 422 {
		t.Errorf("a metadata value over 255 bytes: %d %s", b.status, b.raw)
	}

	// Newest first, one per page.
	var ids []string
	path := "/v1/batches?limit=1"
	for pages := 0; path != ""; pages++ {
		l := e.call(t, e.key, "GET", path, "")
		if l.status != 200 || pages > 5 {
			t.Fatalf("list: %d %s", l.status, l.raw)
		}
		for _, b := range l.body["data"].([]any) {
			ids = append(ids, b.(map[string]any)["id"].(string))
		}
		path = ""
		if cur, ok := l.body["next_cursor"].(string); ok {
			path = "/v1/batches?limit=1&cursor=" + url.QueryEscape(cur)
		}
	}
	if fmt.Sprint(ids) != fmt.Sprint([]string{c.body["id"].(string), a.body["id"].(string)}) {
		t.Fatalf("batches %v", ids)
	}
	l := e.call(t, e.key, "GET", "/v1/batches?reference_id=json-1&status=ACCEPTED&status=PROCESSING", "")
	data := l.body["data"].([]any)
	if l.status != 200 || len(data) != 1 || data[0].(map[string]any)["counts"].(map[string]any)["PENDING"] == nil {
		t.Fatalf("by reference: %d %s", l.status, l.raw)
	}
	if l := e.call(t, e.key, "GET", "/v1/batches?status=COMPLETED", ""); len(l.body["data"].([]any)) != 0 {
		t.Fatalf("no batch is completed: %s", l.raw)
	}
}
