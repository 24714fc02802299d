package api

import (
	"encoding/json"
	"testing"

	"github.com/disburse/disburse/payout"
)

func TestCheckDuplicateKeys(t *testing.T) {
	cases := map[string]bool{
		`{"a":1,"b":2}`:                  false,
		`{"a":1,"a":2}`:                  true,
		`{"a":{"b":1},"c":{"b":2}}`:      false,
		`{"a":{"b":1,"b":2}}`:            true,
		`[{"a":1},{"a":1}]`:              false,
		`{"a":[{"x":1,"x":1}]}`:          true,
		`{"m":{"k":"v"},"n":[1,[2,{}]]}`: false,
		`{"a":[],"b":{},"a":null}`:       true,
	}
	for body, dup := range cases {
		if got := checkDuplicateKeys([]byte(body)) != nil; got != dup {
			t.Errorf("%s: duplicate=%v, want %v", body, got, dup)
		}
	}
}

// FuzzDecodeStrict: whatever the body, decoding never panics, and a body it
// accepts is valid JSON with no duplicate keys that decodes to the same request.
func FuzzDecodeStrict(f *testing.F) {
	for _, seed := range []string{
		`{"reference_id":"r1","bank_code":"bca","account_number":"1234567890","amount":150000}`,
		`{"reference_id":"r1","reference_id":"r2"}`,
		`{"amount":1e400}`,
		`{"metadata":{"a":"b","a":"c"}}`,
		"{\"description\":\"\xff\"}",
		`{} {}`,
		`[]`,
		`null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req payout.Request
		if p := decodeStrict(body, &req); p != nil {
			if p.status < 400 || p.status > 499 || p.Code == "" {
				t.Fatalf("bad problem %+v", p)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		if checkDuplicateKeys(body) != nil {
			t.Fatalf("accepted duplicate keys %q", body)
		}
		var again payout.Request
		if err := json.Unmarshal(body, &again); err != nil {
			t.Fatalf("accepted body the standard decoder rejects: %v", err)
		}
		req.Validate() // must not panic on anything decoded
	})
}
