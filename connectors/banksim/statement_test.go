package banksim

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/disburse/disburse/connectors"
)

type stmtEntry struct {
	kind, ref string
	amount    int64
}

// readStatement pages through a bank's statement over HTTP with limit,
// checking each page's cursors, and returns the entries and the last cursor.
func readStatement(t *testing.T, base, bank, after string, limit int, extra url.Values) ([]stmtEntry, string) {
	t.Helper()
	var out []stmtEntry
	for {
		q := url.Values{"limit": {fmt.Sprint(limit)}}
		for k, v := range extra {
			q[k] = v
		}
		if after != "" {
			q.Set("after", after)
		}
		r := mustDo(t, "GET", base+"/banks/"+bank+"/statement?"+q.Encode(), nil)
		if r.code != 200 {
			t.Fatalf("statement: %d %v", r.code, r.body)
		}
		entries := r.body["entries"].([]any)
		if len(entries) > limit {
			t.Fatalf("%d entries on a page of %d", len(entries), limit)
		}
		for _, e := range entries {
			m := e.(map[string]any)
			out = append(out, stmtEntry{m["kind"].(string), m["reference"].(string), int64(m["amount"].(float64))})
			if m["cursor"] == "" || m["booked_at"] == "" {
				t.Fatalf("entry without cursor or time: %v", m)
			}
		}
		if len(entries) > 0 && entries[len(entries)-1].(map[string]any)["cursor"] != r.body["next"] {
			t.Fatalf("next %v is not the last entry's cursor", r.body["next"])
		}
		after, _ = r.body["next"].(string)
		if r.body["has_more"] != true {
			return out, after
		}
	}
}

// TestStatement: every transfer the bank decided is booked once, in order,
// with the later payment of a PROCESSING transfer and the return of a 3333
// one as their own entries when they happen; a duplicate send books
// nothing; pages and cursors are stable; each bank has its own statement.
func TestStatement(t *testing.T) {
	clock := newFakeClock()
	opts := testOptions()
	opts.Latency = Latency{}
	opts.Now = clock.Now
	opts.CompleteDelay = 2 * time.Second
	opts.ReturnDelay = 5 * time.Second
	opts.Hang = time.Millisecond
	_, ts := start(t, opts)
	send := func(bank, ref, acct string, amount int64) {
		if r := mustDo(t, "POST", ts.URL+"/banks/"+bank+"/transfers", transferBody(ref, acct, amount)); r.code != 200 {
			t.Fatalf("transfer %s: %d %v", ref, r.code, r.body)
		}
	}
	send("bca", "paid", "1234567890", 10_000)
	send("bca", "rejected", "1234561111", 11_000)
	send("bca", "returned", "1234563333", 12_000)
	send("bca", "late", "1234562222", 13_000)
	send("bca", "paid", "1234567890", 10_000) // a duplicate: nothing new
	send("bni", "other", "1234567890", 14_000)

	got, cur := readStatement(t, ts.URL, "bca", "", 2, nil)
	want := []stmtEntry{{"PAID", "paid", 10_000}, {"REJECTED", "rejected", 11_000}, {"PAID", "returned", 12_000}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statement now:\n got %v\nwant %v", got, want)
	}
	clock.Advance(2 * time.Second) // the 2222 transfer is paid
	more, cur2 := readStatement(t, ts.URL, "bca", cur, 2, nil)
	if fmt.Sprint(more) != fmt.Sprint([]stmtEntry{{"PAID", "late", 13_000}}) {
		t.Fatalf("after the processing delay: %v", more)
	}
	clock.Advance(3 * time.Second) // the 3333 transfer comes back
	more, cur3 := readStatement(t, ts.URL, "bca", cur2, 2, nil)
	if fmt.Sprint(more) != fmt.Sprint([]stmtEntry{{"RETURNED", "returned", 12_000}}) {
		t.Fatalf("after the return delay: %v", more)
	}
	if more, cur4 := readStatement(t, ts.URL, "bca", cur3, 2, nil); len(more) != 0 || cur4 != cur3 {
		t.Fatalf("nothing new: got %v, cursor %q -> %q", more, cur3, cur4)
	}
	// Read again from the start in one page: the same entries, same order.
	all, _ := readStatement(t, ts.URL, "bca", "", 100, nil)
	if len(all) != 5 || fmt.Sprint(all[:3]) != fmt.Sprint(want) {
		t.Fatalf("re-read: %v", all)
	}
	if bni, _ := readStatement(t, ts.URL, "bni", "", 10, nil); fmt.Sprint(bni) != fmt.Sprint([]stmtEntry{{"PAID", "other", 14_000}}) {
		t.Fatalf("bni statement: %v", bni)
	}
	// A time range keeps the entries booked in it.
	from := clock.Now().Add(-3 * time.Second).Add(-time.Millisecond)
	inRange, _ := readStatement(t, ts.URL, "bca", "", 1, url.Values{"from": {from.Format(time.RFC3339Nano)}, "to": {clock.Now().Format(time.RFC3339Nano)}})
	if fmt.Sprint(inRange) != fmt.Sprint([]stmtEntry{{"PAID", "late", 13_000}}) {
		t.Fatalf("range: %v", inRange)
	}
}

// TestStatementBadInput: a cursor the bank never handed out (malformed,
// past the end, from another server) is 400 BAD_CURSOR, a bad limit or
// time 400 BAD_REQUEST, an unknown bank 404; a down bank 503.
func TestStatementBadInput(t *testing.T) {
	s, ts := start(t, testOptions())
	other, _ := start(t, testOptions())
	mustDo(t, "POST", ts.URL+"/banks/bca/transfers", transferBody("r1", "1234567890", 10_000))
	mine, _ := s.Statement("bca", connectors.StatementQuery{})
	if len(mine.Entries) != 1 {
		t.Fatalf("statement: %+v", mine)
	}
	foreign := other.cursor(0) // a cursor of another server's statement
	tests := []struct {
		query string
		code  int
		err   string
	}{
		{"after=nonsense", 400, CodeBadCursor},
		{"after=" + url.QueryEscape(mine.Next+"0"), 400, CodeBadCursor},
		{"after=" + url.QueryEscape(s.cursor(2)), 400, CodeBadCursor},
		{"after=" + url.QueryEscape(s.cursor(-1)), 400, CodeBadCursor},
		{"after=" + url.QueryEscape(foreign), 400, CodeBadCursor},
		{"limit=0", 400, CodeBadRequest},
		{"limit=5001", 400, CodeBadRequest},
		{"limit=x", 400, CodeBadRequest},
		{"from=yesterday", 400, CodeBadRequest},
		{"after=" + url.QueryEscape(mine.Next), 200, ""},
	}
	for _, tt := range tests {
		r := mustDo(t, "GET", ts.URL+"/banks/bca/statement?"+tt.query, nil)
		if r.code != tt.code || (tt.err != "" && r.body["code"] != tt.err) {
			t.Errorf("%s: %d %v, want %d %s", tt.query, r.code, r.body, tt.code, tt.err)
		}
	}
	if r := mustDo(t, "GET", ts.URL+"/banks/nope/statement", nil); r.code != 404 || r.body["code"] != CodeUnknownBank {
		t.Errorf("unknown bank: %d %v", r.code, r.body)
	}
	if err := s.SetDown("bca", true); err != nil {
		t.Fatal(err)
	}
	if r := mustDo(t, "GET", ts.URL+"/banks/bca/statement", nil); r.code != 503 {
		t.Errorf("down bank: %d %v", r.code, r.body)
	}
}

// TestStatementInject: the admin API books an entry as given, after what
// is already there, without touching the bank's transfers; bad bodies are
// 400 and book nothing.
func TestStatementInject(t *testing.T) {
	s, ts := start(t, testOptions())
	mustDo(t, "POST", ts.URL+"/banks/bca/transfers", transferBody("r1", "1234567890", 10_000))
	r := mustDo(t, "POST", ts.URL+"/admin/banks/bca/statement", map[string]any{"reference": "ghost", "kind": "PAID", "amount": 77_000})
	if r.code != 200 || r.body["reference"] != "ghost" || r.body["currency"] != "IDR" || r.body["cursor"] == "" {
		t.Fatalf("inject: %d %v", r.code, r.body)
	}
	for _, bad := range []map[string]any{
		{"reference": "", "kind": "PAID", "amount": 1},
		{"reference": "x", "kind": "PAYED", "amount": 1},
		{"reference": "x", "kind": "PAID", "amount": 0},
		{"reference": "x", "kind": "PAID", "amount": 1, "extra": true},
	} {
		if r := mustDo(t, "POST", ts.URL+"/admin/banks/bca/statement", bad); r.code != 400 {
			t.Errorf("inject %v: %d %v, want 400", bad, r.code, r.body)
		}
	}
	if r := mustDo(t, "POST", ts.URL+"/admin/banks/nope/statement", map[string]any{"reference": "x", "kind": "PAID", "amount": 1}); r.code != 404 {
		t.Errorf("inject at an unknown bank: %d", r.code)
	}
	got, _ := readStatement(t, ts.URL, "bca", "", 10, nil)
	if fmt.Sprint(got) != fmt.Sprint([]stmtEntry{{"PAID", "r1", 10_000}, {"PAID", "ghost", 77_000}}) {
		t.Fatalf("statement: %v", got)
	}
	if rec := s.Record("ghost"); rec.Received != 0 {
		t.Errorf("an injected entry made a transfer: %+v", rec)
	}
}
