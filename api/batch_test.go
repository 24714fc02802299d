package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas/events"
)

// repeatReader yields a pattern until n bytes, without holding them.
type repeatReader struct {
	pattern []byte
	n, off  int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	k := 0
	for k < len(p) && r.off < r.n {
		p[k] = r.pattern[r.off%int64(len(r.pattern))]
		k++
		r.off++
	}
	return k, nil
}

func TestBadBatchesChangeNothing(t *testing.T) {
	e := newEnv(t)
	header := "reference_id,bank_code,account_number,amount\n"
	var tooMany strings.Builder
	tooMany.WriteString(header)
	for i := 0; i <= 100_000; i++ {
		fmt.Fprintf(&tooMany, "r%d,bca,1234567890,100000\n", i)
	}
	// A valid start, then one field that never ends: 1 GiB in all.
	huge := func() io.Reader {
		start := "reference_id,bank_code,account_number,amount,description\nr1,bca,1234567890,100000,\""
		return io.MultiReader(strings.NewReader(start), &repeatReader{pattern: []byte("x"), n: 1<<30 - int64(len(start))})
	}
	cases := []struct {
		name        string
		contentType string
		query       string
		body        func() io.Reader
		length      int64 // -1: chunked
		status      int
		code        string
	}{
		{"wrong header", "text/csv", "reference_id=b", strBody("ref,bank,acct,amt\nr1,bca,1234567890,100000\n"), 0, 400, "INVALID_BATCH"},
		{"missing column", "text/csv", "reference_id=b", strBody("reference_id,bank_code,amount\nr1,bca,100000\n"), 0, 400, "INVALID_BATCH"},
		{"wrong types", "text/csv", "reference_id=b", strBody(header + "r1,bca,1234567890,lots\nr2,bca,1234567890,100000\n"), 0, 422, "VALIDATION_ERROR"},
		{"bad quoting", "text/csv", "reference_id=b", strBody(header + "r1,\"bca,1234567890,100000\n"), 0, 400, "INVALID_BATCH"},
		{"binary file", "text/csv", "reference_id=b", strBody("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01"), 0, 400, "INVALID_BATCH"},
		{"empty file", "text/csv", "reference_id=b", strBody(""), 0, 400, "INVALID_BATCH"},
		{"header only", "text/csv", "reference_id=b", strBody(header), 0, 422, "VALIDATION_ERROR"},
		{"no batch reference", "text/csv", "", strBody(header + "r1,bca,1234567890,100000\n"), 0, 422, "VALIDATION_ERROR"},
		{"bad mode", "text/csv", "reference_id=b&mode=some", strBody(header + "r1,bca,1234567890,100000\n"), 0, 422, "VALIDATION_ERROR"},
		{"100,001 rows", "text/csv", "reference_id=b", strBody(tooMany.String()), 0, 413, "TOO_MANY_ITEMS"},
		{"1 GB body declared", "text/csv", "reference_id=b", huge, 1 << 30, 413, "PAYLOAD_TOO_LARGE"},
		{"1 GB body streamed", "text/csv", "reference_id=b", huge, -1, 413, "PAYLOAD_TOO_LARGE"},
		{"invalid JSON", "application/json", "", strBody(`{"reference_id":"b","items":[{]}`), 0, 400, "INVALID_JSON"},
		{"JSON duplicate in batch", "application/json", "", strBody(`{"reference_id":"b","items":[
			{"reference_id":"r1","bank_code":"bca","account_number":"1234567890","amount":100000},
			{"reference_id":"r1","bank_code":"bca","account_number":"1234567890","amount":100000}]}`), 0, 422, "VALIDATION_ERROR"},
		{"XML", "application/xml", "", strBody("<batch/>"), 0, 415, "UNSUPPORTED_MEDIA_TYPE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.srv.URL+"/v1/batches?"+c.query, c.body())
			req.SetBasicAuth(e.key, "")
			req.Header.Set("Content-Type", c.contentType)
			req.Header.Set("Idempotency-Key", "bad-"+strings.ReplaceAll(c.name, " ", "-"))
			if c.length != 0 {
				req.ContentLength = c.length
			}
			a := do(t, req)
			if a.status != c.status || a.code() != c.code {
				t.Fatalf("got %d %s, want %d %s: %.300s", a.status, a.code(), c.status, c.code, a.raw)
			}
		})
	}
	// A rejected all_or_nothing batch names every invalid row.
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/batches?reference_id=b", strings.NewReader(header+"r1,bca,1234567890,x\nr2,zzz,1234567890,100000\nr3,bca,1234567890,100000\n"))
	req.SetBasicAuth(e.key, "")
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Idempotency-Key", "rows")
	a := do(t, req)
	if a.status != 422 || !strings.Contains(a.raw, `"row":1`) || !strings.Contains(a.raw, `"row":2`) || strings.Contains(a.raw, `"row":3`) {
		t.Fatalf("row errors: %d %s", a.status, a.raw)
	}

	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM disbursements`) + fixture.Count(t, e.pool, `SELECT count(*) FROM batches`); n != 0 {
		t.Fatalf("bad batches wrote %d rows", n)
	}
	offs, err := kadm.NewClient(e.kafka).ListEndOffsets(context.Background(), e.topics.Requests)
	if err != nil {
		t.Fatal(err)
	}
	offs.Each(func(o kadm.ListedOffset) {
		if o.Offset != 0 {
			t.Errorf("bad batches published to partition %d", o.Partition)
		}
	})
}

func TestPartialBatch(t *testing.T) {
	e := newEnv(t)
	body := `{"reference_id":"b1","mode":"partial","items":[
		{"reference_id":"r1","bank_code":"bca","account_number":"1234567890","amount":100000},
		{"reference_id":"r2","bank_code":"bca","account_number":"1234567890","amount":-1},
		{"reference_id":"r3","bank_code":"ovo","account_number":"081234567890","amount":50000}]}`
	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/batches", bytes.NewBufferString(body))
	req.SetBasicAuth(e.key, "")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "p1")
	a := do(t, req)
	if a.status != 202 || a.body["item_count"] != float64(2) || a.body["rejected_count"] != float64(1) || a.body["total_amount"] != float64(150000) {
		t.Fatalf("partial: %d %s", a.status, a.raw)
	}
	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM disbursements WHERE batch_id IS NOT NULL`); n != 2 {
		t.Fatalf("%d items stored, want 2", n)
	}
	// Another merchant's key cannot see the batch.
	other := fixture.Merchant(t, e.pool, "m2", 1000, merchant.Settings{})
	for _, key := range []string{e.key, other} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/v1/batches/"+a.body["id"].(string), nil)
		req.SetBasicAuth(key, "")
		got := do(t, req)
		if want := map[bool]int{true: 200, false: 404}[key == e.key]; got.status != want {
			t.Fatalf("GET batch with key of %v: %d, want %d", key == e.key, got.status, want)
		}
	}
}

func strBody(s string) func() io.Reader {
	return func() io.Reader { return strings.NewReader(s) }
}

// TestBatchRequestID: the X-Request-Id of a batch create reaches the
// batch and every item: stored on each (disburse trace shows it) and
// carried as the request_id header of each item's request record (the
// stages log it), beside a disbursement_id header; a single create's
// record carries both too. A payout inserted afterwards outside a batch
// gets no request id.
func TestBatchRequestID(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	body := `{"reference_id":"b-rid","items":[
		{"reference_id":"i1","bank_code":"bca","account_number":"1234567890","amount":100000},
		{"reference_id":"i2","bank_code":"bni","account_number":"1234567890","amount":20000},
		{"reference_id":"i3","bank_code":"ovo","account_number":"081234567890","amount":50000}]}`
	a := e.callWith(t, e.key, "POST", e.srv.URL+"/v1/batches", body, func(r *http.Request) {
		r.Header.Set("Idempotency-Key", "b-rid")
		r.Header.Set("X-Request-Id", "rid-batch-7")
	})
	if a.status != 202 || a.header.Get("X-Request-Id") != "rid-batch-7" {
		t.Fatalf("batch: %d %s", a.status, a.raw)
	}
	id := a.body["id"].(string)
	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM batches WHERE id = $1 AND request_id = 'rid-batch-7'`, id); n != 1 {
		t.Errorf("the batch does not keep its request id")
	}
	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM disbursements WHERE batch_id = $1 AND request_id = 'rid-batch-7'`, id); n != 3 {
		t.Errorf("%d of 3 items keep the batch's request id", n)
	}
	loose := fixture.Pending(t, e.pool, "m1", "loose", 2, 1000)
	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM disbursements WHERE id = ANY($1) AND request_id = ''`, loose); n != 2 {
		t.Errorf("payouts inserted after the batch took a request id: %d of 2 have none", 2-n)
	}

	cons, err := processor.NewClient(testenv.Kafka(t), kgo.ConsumeTopics(e.topics.Requests), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pollCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	single := e.callWith(t, e.key, "POST", e.srv.URL+"/v1/disbursements", validBody, func(r *http.Request) {
		r.Header.Set("Idempotency-Key", "single-rid")
		r.Header.Set("X-Request-Id", "rid-single-7")
	})
	if single.status != 202 {
		t.Fatalf("single: %d %s", single.status, single.raw)
	}
	want := map[string]string{single.body["id"].(string): "rid-single-7"}
	rows, err := e.pool.Query(ctx, `SELECT id FROM disbursements WHERE batch_id = $1`, id)
	if err != nil {
		t.Fatal(err)
	}
	items, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(items) != 3 {
		t.Fatalf("items %v %v", items, err)
	}
	for _, d := range items {
		want[d] = "rid-batch-7"
	}
	type hdrs struct{ rid, did string }
	got := map[string]hdrs{}
	for len(got) < len(want) && pollCtx.Err() == nil {
		fs := cons.PollFetches(pollCtx)
		fs.EachRecord(func(r *kgo.Record) {
			var ev events.Request
			if json.Unmarshal(r.Value, &ev) == nil && want[ev.DisbursementID] != "" {
				h := hdrs{rid: processor.RequestIDOf(r)}
				for _, x := range r.Headers {
					if x.Key == processor.DisbursementIDHeader {
						h.did = string(x.Value)
					}
				}
				got[ev.DisbursementID] = h
			}
		})
	}
	if len(got) != len(want) {
		t.Fatalf("%d of %d request records read from Kafka", len(got), len(want))
	}
	for _, line := range []string{
		`msg="batch accepted" request_id=rid-batch-7 batch_id=` + id,
		`msg="payout accepted" request_id=rid-single-7 disbursement_id=` + single.body["id"].(string),
	} {
		if !strings.Contains(e.logs.String(), line) {
			t.Errorf("API log lacks %q", line)
		}
	}
	for d, h := range got {
		if h.rid != want[d] || h.did != d {
			t.Errorf("request record of %s: headers request_id %q, disbursement_id %q; want %q and the id", d, h.rid, h.did, want[d])
		}
	}
}
