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

// apiGateways builds the API role's per-environment gateways, each behind
// its own inquiry cache: sandbox to the sandbox banks, production to the
// configured gateway (none: production inquiries answer 503). They are
// the workers' gateways (envBanks), so the API and the workers refuse the
// same settings.
func apiGateways(sandbox, production gatewayConfig, inquiryTTL time.Duration) (map[string]connectors.Connector, error) {
	banks, err := envBanks{
		sandbox:    bankConfig{url: sandbox.url, credentials: sandbox.credentials},
		production: bankConfig{url: production.url, credentials: production.credentials, prefix: "production-"},
	}.newBanks()
	if err != nil {
		return nil, err
	}
	return inquiryCaches(banks, inquiryTTL), nil
}

// inquiryCaches are the API's per-environment gateways: each environment
// that has a gateway behind its own inquiry cache; an environment without
// one is left out (its inquiries answer 503).
func inquiryCaches(banks *connectors.Banks, ttl time.Duration) map[string]connectors.Connector {
	out := map[string]connectors.Connector{}
	for _, env := range banks.Environments() {
		out[env] = connectors.NewInquiryCache(banks.For(env), ttl, inquiryCacheSize)
	}
	return out
}
