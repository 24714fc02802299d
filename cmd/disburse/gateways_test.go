package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disburse/disburse/connectors/banksim"
)

// recordingBank is a sandbox bank server that records the Authorization
// header of each call.
type recordingBank struct {
	mu    sync.Mutex
	auths []string
	srv   *httptest.Server
}

func newRecordingBank(t *testing.T) *recordingBank {
	rb := &recordingBank{}
	h := banksim.New(banksim.Options{}).Handler()
	rb.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rb.mu.Lock()
		rb.auths = append(rb.auths, r.Header.Get("Authorization"))
		rb.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(rb.srv.Close)
	return rb
}

func (rb *recordingBank) calls() []string {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return append([]string(nil), rb.auths...)
}

// TestAPIGatewaysPerEnvironment: sandbox inquiries go to the sandbox
// gateway and production ones to the production gateway with its
// credential, each environment with its own inquiry cache.
func TestAPIGatewaysPerEnvironment(t *testing.T) {
	sandbox, production := newRecordingBank(t), newRecordingBank(t)
	t.Setenv("DISBURSE_TEST_GATEWAY_TOKEN", "prod-secret-1")
	gw, err := apiGateways(gatewayConfig{url: sandbox.srv.URL}, gatewayConfig{url: production.srv.URL, credentials: "env:DISBURSE_TEST_GATEWAY_TOKEN"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 { // the second round is answered by each environment's cache
		for _, env := range []string{"sandbox", "production"} {
			inq, err := gw[env].Inquire(ctx, "bca", "1234567890")
			if err != nil || inq.Status != "VALID" {
				t.Fatalf("%s inquiry: %+v %v", env, inq, err)
			}
		}
	}
	if got := sandbox.calls(); len(got) != 1 || got[0] != "" {
		t.Errorf("sandbox gateway calls %q: want one, without a credential", got)
	}
	if got := production.calls(); len(got) != 1 || got[0] != "Bearer prod-secret-1" {
		t.Errorf("production gateway calls %q: want one, with the production credential", got)
	}

	// No production gateway: production has none (the API answers 503).
	gw, err = apiGateways(gatewayConfig{url: sandbox.srv.URL}, gatewayConfig{}, time.Minute)
	if err != nil || gw["production"] != nil || gw["sandbox"] == nil {
		t.Fatalf("sandbox only: %v %v", gw, err)
	}
	secret := filepath.Join(t.TempDir(), "bank-token")
	if err := os.WriteFile(secret, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := resolveCredential("x", "file:"+secret); err != nil || v != "from-file" {
		t.Errorf("file credential: %q %v", v, err)
	}
	for _, bad := range []struct{ sandbox, production gatewayConfig }{
		{gatewayConfig{url: sandbox.srv.URL}, gatewayConfig{url: sandbox.srv.URL}},                                   // production to the simulator
		{gatewayConfig{url: sandbox.srv.URL}, gatewayConfig{url: production.srv.URL, credentials: "prod-secret-1"}},  // a secret, not a reference
		{gatewayConfig{url: sandbox.srv.URL}, gatewayConfig{url: production.srv.URL, credentials: "env:NOPE_UNSET"}}, // unset
		{gatewayConfig{url: sandbox.srv.URL}, gatewayConfig{url: production.srv.URL, credentials: "file:/nonexistent"}},
		{gatewayConfig{url: sandbox.srv.URL}, gatewayConfig{credentials: "env:DISBURSE_TEST_GATEWAY_TOKEN"}}, // credentials without a URL
	} {
		if _, err := apiGateways(bad.sandbox, bad.production, time.Minute); err == nil || strings.Contains(err.Error(), "prod-secret-1") {
			t.Errorf("%+v: %v, want an error that does not show the secret", bad.production, err)
		}
	}
}
