package main

import (
	"flag"
	"fmt"
	"net/netip"
	"time"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/merchant"
)

// accessConfig is the merchant access configuration of the api and dev roles.
type accessConfig struct {
	keyGrace             time.Duration
	authCache            time.Duration
	trustedProxies       string
	rateCreate, rateRead int
}

func (a *accessConfig) register(fs *flag.FlagSet, insecureSandboxDefault bool) {
	fs.DurationVar(&a.keyGrace, "key-grace-period", api.DefaultKeyGracePeriod, "how long a rotated-away secret key keeps working (1s to 720h)")
	fs.DurationVar(&a.authCache, "auth-cache-ttl", api.DefaultAuthCacheTTL, "how long an API instance reuses a secret key's successful lookup (0 to 10s; 0: every call looks the key up). A key revoked or a whitelist changed through another instance takes up to this long to apply here")
	fs.StringVar(&a.trustedProxies, "trusted-proxies", "", "comma-separated CIDRs or IPs of proxies whose X-Forwarded-For names the client (default: none; the socket's peer is the client)")
	fs.IntVar(&a.rateCreate, "rate-create", api.DefaultLimits.CreatePerSecond, "default create calls per second per merchant environment (burst twice that); the operator overrides it per merchant")
	fs.IntVar(&a.rateRead, "rate-read", api.DefaultLimits.ReadPerSecond, "default other calls per second per merchant environment (burst twice that); the operator overrides it per merchant")
}

// apply validates the settings, naming the flag at fault, and sets them on s.
func (a *accessConfig) apply(s *api.Server) error {
	if a.keyGrace < time.Second || a.keyGrace > 720*time.Hour {
		return fmt.Errorf("--key-grace-period must be 1s to 720h, got %s", a.keyGrace)
	}
	if a.authCache < 0 || a.authCache > 10*time.Second {
		return fmt.Errorf("--auth-cache-ttl must be 0 to 10s, got %s", a.authCache)
	}
	if a.rateCreate < 1 || a.rateCreate > api.MaxRatePerSecond {
		return fmt.Errorf("--rate-create must be 1 to %d, got %d", api.MaxRatePerSecond, a.rateCreate)
	}
	if a.rateRead < 1 || a.rateRead > api.MaxRatePerSecond {
		return fmt.Errorf("--rate-read must be 1 to %d, got %d", api.MaxRatePerSecond, a.rateRead)
	}
	var proxies []netip.Prefix
	for _, p := range splitList(a.trustedProxies) {
		n, err := merchant.ParseNetwork(p)
		if err != nil {
			return fmt.Errorf("--trusted-proxies: %w", err)
		}
		proxies = append(proxies, n)
	}
	s.KeyGracePeriod = a.keyGrace
	s.AuthCacheTTL = a.authCache
	s.TrustedProxies = proxies
	s.Limits = merchant.Limits{CreatePerSecond: a.rateCreate, ReadPerSecond: a.rateRead}
	return nil
}
