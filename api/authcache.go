package api

import (
	"crypto/sha256"
	"strings"
	"sync"
	"time"

	"github.com/disburse/disburse/merchant"
)

// authCache keeps, per API instance and for a short time, the principal
// a secret key authenticated as, so that a merchant sending thousands of
// calls a second costs one key lookup in Postgres per second, not one per
// call (issue 16 measured that lookup at a tenth of the API's CPU, and as
// much again in Postgres). Only successes are kept, under the key's
// SHA-256, never the key.
//
// What it costs: a key revoked, or a whitelist or rate limit changed,
// through another instance (or the database) is honoured by this one up to
// the cache's time later. A change made through this instance's API clears
// its cache at once (see clearsAuth), and a retiring key's expiry is
// checked on every call, cached or not.
type authCache struct {
	mu sync.Mutex
	m  map[[32]byte]authEntry
}

type authEntry struct {
	p     merchant.Principal
	until time.Time
}

// DefaultAuthCacheTTL is the --auth-cache-ttl of the api and dev roles.
const DefaultAuthCacheTTL = time.Second

// authCacheMax bounds the entries kept: past it the cache starts afresh
// (a flood of distinct valid keys is not a pattern worth more memory).
const authCacheMax = 100_000

func (c *authCache) get(key string, now time.Time, ttl time.Duration) (merchant.Principal, bool) {
	if ttl <= 0 {
		return merchant.Principal{}, false
	}
	sum := sha256.Sum256([]byte(key))
	c.mu.Lock()
	e, ok := c.m[sum]
	c.mu.Unlock()
	if !ok || !now.Before(e.until) {
		return merchant.Principal{}, false
	}
	if !e.p.KeyExpiresAt.IsZero() && !now.Before(e.p.KeyExpiresAt) {
		return merchant.Principal{}, false
	}
	return e.p, true
}

func (c *authCache) put(key string, p merchant.Principal, now time.Time, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	sum := sha256.Sum256([]byte(key))
	c.mu.Lock()
	if c.m == nil || len(c.m) >= authCacheMax {
		c.m = map[[32]byte]authEntry{}
	}
	c.m[sum] = authEntry{p: p, until: now.Add(ttl)}
	c.mu.Unlock()
}

func (c *authCache) clear() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}

// clearsAuth reports whether a successful call to the route may change
// what a key authenticates as: every operator call that writes, and the
// merchant's own writes to its keys and settings (rotation, revocation,
// whitelist).
func clearsAuth(api, method, route string) bool {
	if method == "GET" || method == "HEAD" {
		return false
	}
	return api == "operator" || strings.HasPrefix(route, "/v1/keys") || strings.HasPrefix(route, "/v1/settings")
}
