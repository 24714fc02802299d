package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/connectors/httpbank"
)

// gatewayConfig is where one environment's bank calls go: a base URL and,
// for a real gateway, a credential given by reference (never on the
// command line): "env:NAME" reads the environment variable NAME,
// "file:/path" the file (a mounted secret), trailing newline dropped.
type gatewayConfig struct {
	url         string
	credentials string
}

// resolveCredential reads a credential reference; flag names the setting
// in errors. "" is no credential.
func resolveCredential(flag, ref string) (string, error) {
	switch {
	case ref == "":
		return "", nil
	case strings.HasPrefix(ref, "env:"):
		name := strings.TrimPrefix(ref, "env:")
		v, ok := os.LookupEnv(name)
		if name == "" || !ok || v == "" {
			return "", fmt.Errorf("--%s: environment variable %q is not set", flag, name)
		}
		return v, nil
	case strings.HasPrefix(ref, "file:"):
		path := strings.TrimPrefix(ref, "file:")
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("--%s: read %s: %w", flag, path, err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("--%s: %s is empty", flag, path)
		}
		return v, nil
	}
	return "", fmt.Errorf("--%s must be env:NAME or file:/path (a reference, never the secret itself)", flag)
}

// bearer adds the gateway credential to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// newGateway is one environment's bank client with the banks' profiles
// applied (breaker, bulkhead, timeouts), sending its credential.
func newGateway(flag string, g gatewayConfig, timeout time.Duration) (*connectors.Guard, error) {
	token, err := resolveCredential(flag, g.credentials)
	if err != nil {
		return nil, err
	}
	if token == "" {
		bank, _, err := bankConfig{url: g.url, timeout: timeout}.newBank()
		return bank, err
	}
	hc := &http.Client{Transport: bearer{token: token, next: http.DefaultTransport}}
	profiles := connectors.DefaultProfiles()
	if timeout > 0 {
		for code, p := range profiles {
			p.Timeout = timeout
			profiles[code] = p
		}
	}
	return connectors.NewGuard(httpbank.New(g.url, httpbank.WithHTTPClient(hc), httpbank.WithTimeout(0)), profiles, nil), nil
}

// apiGateways builds the API role's per-environment gateways, each behind
// its own inquiry cache: sandbox to the sandbox banks, production to the
// configured gateway (none: production inquiries answer 503).
func apiGateways(sandbox, production gatewayConfig, inquiryTTL time.Duration) (map[string]connectors.Connector, error) {
	out := map[string]connectors.Connector{}
	sb, err := newGateway("bank-credentials", sandbox, 0)
	if err != nil {
		return nil, err
	}
	out["sandbox"] = connectors.NewInquiryCache(sb, inquiryTTL, inquiryCacheSize)
	if production.url != "" {
		if production.url == sandbox.url {
			return nil, fmt.Errorf("--production-bank-url is the sandbox gateway (--bank-url): production must not reach the simulated banks")
		}
		pg, err := newGateway("production-bank-credentials", production, 0)
		if err != nil {
			return nil, err
		}
		out["production"] = connectors.NewInquiryCache(pg, inquiryTTL, inquiryCacheSize)
	} else if production.credentials != "" {
		return nil, fmt.Errorf("--production-bank-credentials needs --production-bank-url")
	}
	return out, nil
}
