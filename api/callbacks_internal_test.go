package api

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/disburse/disburse/callbacks"
)

// TestCheckCallbackURLAnswers422 is the answer PATCH /v1/settings gives
// for an unsafe callback_url in production.
func TestCheckCallbackURLAnswers422(t *testing.T) {
	s := &Server{CallbackPolicy: callbacks.Policy{AllowInsecureSandbox: true}}
	for _, u := range []string{"http://169.254.169.254/", "http://10.0.0.1/", "https://localhost/", "https://127.0.0.1/", "::not a url"} {
		p := s.checkCallbackURL(context.Background(), "production", u)
		if p == nil {
			t.Errorf("%s accepted in production", u)
			continue
		}
		rec := httptest.NewRecorder()
		writeError(rec, p)
		var body struct{ Error Error }
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != 422 || body.Error.Code != CodeValidation || len(body.Error.Fields) != 1 || body.Error.Fields[0].Field != "callback_url" {
			t.Errorf("%s: %d %s", u, rec.Code, rec.Body)
		}
	}
	if p := s.checkCallbackURL(context.Background(), "sandbox", "http://127.0.0.1:9000/cb"); p != nil {
		t.Errorf("sandbox loopback refused with the switch on: %+v", p)
	}
}
