package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/disburse/disburse/connectors"
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

// newGateway is one environment's bank client with the banks' built-in
// profiles applied (breaker, bulkhead, timeouts), sending its credential.
// prefix names its flags ("" or "production-").
func newGateway(prefix string, g gatewayConfig, timeout time.Duration) (*connectors.Guard, error) {
	bank, _, err := bankConfig{url: g.url, timeout: timeout, credentials: g.credentials, prefix: prefix}.newBank()
	return bank, err
}

// apiGateways builds the API role's per-environment gateways, each behind
// its own inquiry cache: sandbox to the sandbox banks, production to the
// configured gateway (none: production inquiries answer 503).
func apiGateways(sandbox, production gatewayConfig, inquiryTTL time.Duration) (map[string]connectors.Connector, error) {
	out := map[string]connectors.Connector{}
	sb, err := newGateway("", sandbox, 0)
	if err != nil {
		return nil, err
	}
	out["sandbox"] = connectors.NewInquiryCache(sb, inquiryTTL, inquiryCacheSize)
	if production.url != "" {
		if production.url == sandbox.url {
			return nil, fmt.Errorf("--production-bank-url is the sandbox gateway (--bank-url): production must not reach the simulated banks")
		}
		pg, err := newGateway("production-", production, 0)
		if err != nil {
			return nil, err
		}
		out["production"] = connectors.NewInquiryCache(pg, inquiryTTL, inquiryCacheSize)
	} else if production.credentials != "" {
		return nil, fmt.Errorf("--production-bank-credentials needs --production-bank-url")
	}
	return out, nil
}

// inquiryCaches are the API's per-environment gateways on the workers'
// connectors (disburse dev, one process): each environment that has a
// gateway behind its own inquiry cache; production without one answers 503.
func inquiryCaches(banks *connectors.Banks, ttl time.Duration) map[string]connectors.Connector {
	out := map[string]connectors.Connector{}
	for _, env := range banks.Environments() {
		out[env] = connectors.NewInquiryCache(banks.For(env), ttl, inquiryCacheSize)
	}
	return out
}
