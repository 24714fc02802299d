package connectors

import (
	"slices"
)

// Banks is each environment's guarded bank connector, for the workers:
// sandbox payouts go to the sandbox banks, production payouts to the
// production gateway, each with its own profiles, breakers, bulkheads and
// rate limits, so that one environment's outage or traffic never holds
// back the other's. An environment without a gateway gets a guard that
// sends nothing (NewUnconfiguredGuard): its payouts wait, never reaching
// another environment's banks.
type Banks struct {
	byEnv    map[string]*Guard
	fallback Profiles
	// none holds the unconfigured guards handed out, one per environment,
	// so that they are made once.
	none map[string]*Guard
}

// NewBanks maps each environment to its guard and names the guard's
// environment (SetEnvironment). An environment not in byEnv, or mapped to
// nil, has no gateway: For answers an unconfigured guard with fallback's
// profiles (nil: DefaultProfiles), whose UnavailableLimit bounds how long
// its payouts wait. The map is read once, here.
func NewBanks(byEnv map[string]*Guard, fallback Profiles) *Banks {
	if fallback == nil {
		fallback = DefaultProfiles()
	}
	b := &Banks{byEnv: map[string]*Guard{}, fallback: fallback, none: map[string]*Guard{}}
	for env, g := range byEnv {
		if g != nil {
			b.byEnv[env] = g.SetEnvironment(env)
		}
	}
	b.init()
	return b
}

// known are the environments a payout can have (payout.Sandbox and
// payout.Production); an unconfigured guard for each is made up front so
// For needs no lock.
var known = []string{"sandbox", "production"}

func (b *Banks) init() {
	for _, env := range known {
		if b.byEnv[env] == nil && b.none[env] == nil {
			b.none[env] = NewUnconfiguredGuard(env, b.fallback)
		}
	}
}

// For is the guard of env's payouts: its gateway's, or one that admits
// nothing when env has none. It is never nil; an environment that is
// neither sandbox nor production has no gateway.
func (b *Banks) For(env string) *Guard {
	if g := b.byEnv[env]; g != nil {
		return g
	}
	if g := b.none[env]; g != nil {
		return g
	}
	return NewUnconfiguredGuard(env, b.fallback)
}

// Configured reports whether env has a gateway.
func (b *Banks) Configured(env string) bool { return b.byEnv[env] != nil }

// Environments lists the environments that have a gateway, sorted.
func (b *Banks) Environments() []string {
	out := make([]string, 0, len(b.byEnv))
	for env := range b.byEnv {
		out = append(out, env)
	}
	slices.Sort(out)
	return out
}

// Unconfigured lists the known environments without a gateway, sorted.
func (b *Banks) Unconfigured() []string {
	var out []string
	for _, env := range known {
		if b.byEnv[env] == nil {
			out = append(out, env)
		}
	}
	return out
}
