package connectors

import (
	"fmt"
	"time"
)

// Jakarta is the time zone of every bank window: Western Indonesia Time,
// UTC+7 all year (Indonesia has no daylight saving time since 1964, so a
// fixed zone is exact and needs no tzdata in the binary).
var Jakarta = time.FixedZone("WIB", 7*60*60)

// Profile is how disburse treats one bank it calls (for an e-wallet, its
// host bank's profile applies: that is the bank that is called). Amount
// limits and the account-number format are per destination and live in
// Bank; everything about the bank's behaviour as a service is here.
type Profile struct {
	// Timeout bounds one call to the bank. A transfer that times out has an
	// unknown outcome and is resolved by status queries.
	Timeout time.Duration
	// MaxInFlight is the bulkhead: calls to this bank in progress at once.
	MaxInFlight int
	// RateLimit is calls per second disburse makes to the bank (client
	// side, before the bank's own 429s), in bursts of up to Burst.
	RateLimit float64
	Burst     int
	// SendAttempts bounds sends the bank certainly did not receive (not
	// sent, 429, 503) before the payout is parked and re-driven later.
	SendAttempts int
	// Backoff between those sends and between status queries: exponential
	// with full jitter from RetryBase up to RetryMax (internal/retry).
	RetryBase, RetryMax time.Duration
	// Breaker trips this bank's circuit breaker.
	Breaker BreakerSettings
	// Windows are the daily times the bank takes no transfers: maintenance
	// and cut-offs, in Jakarta time. Payouts wait (parked) until the
	// window ends.
	Windows []Window
	// UnavailableLimit is how long a payout may wait parked for this bank
	// to come back (down, breaker open, in a window) before it fails with
	// BANK_UNAVAILABLE and its debit returns (default 24h). A payout that
	// may already be at the bank never fails this way: it is asked about.
	UnavailableLimit time.Duration
}

// BreakerSettings configure one bank's circuit breaker (gobreaker v2). The
// breaker counts calls over a rolling Window made of Buckets of equal
// length, and opens when at least MinRequests calls in the window were
// counted and the share of failures among them reaches FailureRatio. Open, it
// rejects calls for OpenFor, then lets HalfOpenProbes calls through: all
// succeed and it closes, one fails and it opens again.
type BreakerSettings struct {
	Window         time.Duration
	Buckets        int
	MinRequests    uint32
	FailureRatio   float64
	OpenFor        time.Duration
	HalfOpenProbes uint32
}

// Window kinds.
const (
	WindowMaintenance = "maintenance"
	WindowCutOff      = "cutoff"
)

// Window is a daily period, in Jakarta time, when a bank takes no
// transfers. Start and End are "HH:MM"; an End before Start crosses
// midnight ("23:45"-"00:15"). Days limits it to some weekdays (of the
// start); empty means every day.
type Window struct {
	Kind  string
	Start string
	End   string
	Days  []time.Weekday
}

// DefaultProfile is the profile of a bank without its own entry.
var DefaultProfile = Profile{
	Timeout:          10 * time.Second,
	MaxInFlight:      32,
	RateLimit:        100,
	Burst:            50,
	SendAttempts:     5,
	RetryBase:        200 * time.Millisecond,
	RetryMax:         5 * time.Second,
	UnavailableLimit: 24 * time.Hour,
	Breaker: BreakerSettings{
		Window:         30 * time.Second,
		Buckets:        10,
		MinRequests:    20,
		FailureRatio:   0.5,
		OpenFor:        15 * time.Second,
		HalfOpenProbes: 3,
	},
}

// profiles are the banks' own settings, from their host-to-host agreements:
// the big four take more traffic; the daily end-of-day windows are the
// banks' published core-banking maintenance (WIB). docs/banks.md lists them.
var profiles = map[string]func(p *Profile){
	"bca": func(p *Profile) {
		p.MaxInFlight, p.RateLimit, p.Burst = 64, 200, 100
		p.Windows = []Window{{Kind: WindowMaintenance, Start: "23:50", End: "00:10"}}
	},
	"bni": func(p *Profile) {
		p.MaxInFlight, p.RateLimit = 48, 150
		p.Windows = []Window{{Kind: WindowMaintenance, Start: "23:45", End: "00:15"}}
	},
	"bri": func(p *Profile) {
		p.MaxInFlight, p.RateLimit = 48, 150
		p.Windows = []Window{{Kind: WindowMaintenance, Start: "23:30", End: "00:30"}}
	},
	"mandiri": func(p *Profile) {
		p.MaxInFlight, p.RateLimit = 48, 150
		p.Windows = []Window{{Kind: WindowMaintenance, Start: "23:00", End: "00:30", Days: []time.Weekday{time.Sunday}}}
	},
	"bsi": func(p *Profile) {
		p.Timeout = 15 * time.Second
		p.Windows = []Window{{Kind: WindowMaintenance, Start: "23:55", End: "00:15"}}
	},
	"btn": func(p *Profile) {
		p.Timeout, p.MaxInFlight, p.RateLimit = 15*time.Second, 16, 50
		p.Windows = []Window{{Kind: WindowCutOff, Start: "23:00", End: "01:00"}}
	},
	"danamon": func(p *Profile) {
		p.MaxInFlight, p.RateLimit = 16, 50
	},
}

// Profiles maps a bank code (of a bank, not an e-wallet) to its profile.
// Its zero value is not useful; start from DefaultProfiles.
type Profiles map[string]Profile

// DefaultProfiles returns every bank's profile, a fresh map the caller may
// change (tests shorten timeouts and windows).
func DefaultProfiles() Profiles {
	out := Profiles{}
	for _, b := range directory {
		if b.Kind != KindBank {
			continue
		}
		p := DefaultProfile
		p.Windows = nil
		if f := profiles[b.Code]; f != nil {
			f(&p)
		}
		out[b.Code] = p
	}
	return out
}

// For returns the profile of the bank that code's payouts are sent to (an
// e-wallet's host bank), or DefaultProfile.
func (ps Profiles) For(code string) Profile {
	if p, ok := ps[HostOf(code)]; ok {
		return p
	}
	return DefaultProfile
}

// HostOf is the bank that payouts to code are sent to: the bank itself, or
// an e-wallet's host bank. An unknown code is returned as it is.
func HostOf(code string) string {
	if b, ok := byCode[code]; ok && b.IsEWallet() {
		return b.HostBank
	}
	return code
}

// Validate checks a profile; errors name the setting.
func (p Profile) Validate() error {
	switch {
	case p.Timeout <= 0:
		return fmt.Errorf("timeout must be positive")
	case p.MaxInFlight < 1:
		return fmt.Errorf("max in-flight must be at least 1")
	case p.RateLimit < 0:
		return fmt.Errorf("rate limit must not be negative")
	case p.SendAttempts < 1:
		return fmt.Errorf("send attempts must be at least 1")
	case p.RetryBase <= 0 || p.RetryMax < p.RetryBase:
		return fmt.Errorf("retry backoff must have 0 < base <= max")
	case p.Breaker.FailureRatio <= 0 || p.Breaker.FailureRatio > 1:
		return fmt.Errorf("breaker failure ratio must be in (0, 1]")
	case p.Breaker.Window <= 0 || p.Breaker.Buckets < 1:
		return fmt.Errorf("breaker window and buckets must be positive")
	case p.Breaker.OpenFor <= 0:
		return fmt.Errorf("breaker open period must be positive")
	}
	for _, w := range p.Windows {
		if _, _, err := w.minutes(); err != nil {
			return err
		}
	}
	return nil
}

func (w Window) minutes() (start, end int, err error) {
	parse := func(s string) (int, error) {
		t, err := time.Parse("15:04", s)
		if err != nil {
			return 0, fmt.Errorf("window %s: %q is not HH:MM", w.Kind, s)
		}
		return t.Hour()*60 + t.Minute(), nil
	}
	if start, err = parse(w.Start); err != nil {
		return
	}
	end, err = parse(w.End)
	return
}

// ClosedUntil reports whether the bank is inside one of its windows at now
// and, if so, when that window ends.
func (p Profile) ClosedUntil(now time.Time) (time.Time, bool) {
	local := now.In(Jakarta)
	midnight := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, Jakarta)
	var until time.Time
	for _, w := range p.Windows {
		start, end, err := w.minutes()
		if err != nil || start == end {
			continue
		}
		// A window that crosses midnight may have started yesterday.
		for _, day := range []time.Time{midnight.AddDate(0, 0, -1), midnight} {
			if len(w.Days) > 0 && !containsDay(w.Days, day.Weekday()) {
				continue
			}
			from := day.Add(time.Duration(start) * time.Minute)
			to := day.Add(time.Duration(end) * time.Minute)
			if end < start {
				to = to.AddDate(0, 0, 1)
			}
			if !local.Before(from) && local.Before(to) && to.After(until) {
				until = to
			}
		}
	}
	return until, !until.IsZero()
}

func containsDay(days []time.Weekday, d time.Weekday) bool {
	for _, x := range days {
		if x == d {
			return true
		}
	}
	return false
}
