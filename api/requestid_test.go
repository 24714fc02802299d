package api

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/disburse/disburse/payout"
)

// TestRequestID keeps a valid caller id, replaces a missing or unsafe one,
// and makes it visible to the payout store.
func TestRequestID(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"abc-123_x.y:z", "abc-123_x.y:z"},
		{"", "req_"},
		{"has space", "req_"},
		{"line\nbreak", "req_"},
		{strings.Repeat("a", 129), "req_"},
	} {
		r := httptest.NewRequest("GET", "/v1/balance", nil)
		if c.in != "" {
			r.Header["X-Request-Id"] = []string{c.in}
		}
		got := requestID(r)
		if c.want == "req_" {
			if !strings.HasPrefix(got, "req_") || got == c.in {
				t.Errorf("X-Request-Id %q: got %q, want a generated id", c.in, got)
			}
		} else if got != c.want {
			t.Errorf("X-Request-Id %q: got %q", c.in, got)
		}
	}
	ctx := withRequestID(context.Background(), "rid-1")
	if payout.RequestID(ctx) != "rid-1" || ctx.Value(requestIDKey{}) != "rid-1" {
		t.Error("request id not in the context for the handlers and the payout store")
	}
}
