package connectors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sony/gobreaker/v2"
)

var (
	breakerState = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "disburse_bank_breaker_state",
		Help: "Circuit breaker state per environment and bank: 0 closed, 1 half-open, 2 open.",
	}, []string{"environment", "bank"})
	breakerTransitions = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "disburse_bank_breaker_transitions_total",
		Help: "Circuit breaker state changes per environment and bank.",
	}, []string{"environment", "bank", "from", "to"})
	bankCallSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "disburse_bank_call_seconds",
		Help:    "Duration of one call to a bank through its guard (transfer, status, statement page, inquiry), by environment, bank and result (ok, error).",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	}, []string{"environment", "bank", "result"})
	bankRateLimited = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "disburse_bank_rate_limited_total",
		Help: "Calls a bank refused as rate limited (HTTP 429): the profile's rate limit is above what the bank accepts.",
	}, []string{"environment", "bank"})
	bankInFlight = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "disburse_bank_in_flight",
		Help: "Calls to a bank in progress (bounded by its profile's MaxInFlight).",
	}, []string{"environment", "bank"})
)

var (
	// ErrBankUnavailable: the call was not made because the bank is closed
	// (maintenance, cut-off) or its circuit breaker is open. It also wraps
	// ErrNotSent. errors.As with *UnavailableError gives the reason and
	// when to try again.
	ErrBankUnavailable = errors.New("connectors: bank unavailable")
	// ErrRateLimited: the bank answered 429. It also wraps ErrNotSent.
	ErrRateLimited = errors.New("connectors: rate limited by the bank")
)

// Reasons a bank is unavailable.
const (
	ReasonBreakerOpen = "breaker_open"
	// ReasonNoGateway: the payout's environment has no bank gateway
	// configured (a worker without --production-bank-url); nothing is
	// sent until one is.
	ReasonNoGateway   = "no_gateway"
	ReasonMaintenance = WindowMaintenance
	ReasonCutOff      = WindowCutOff
)

// UnavailableError says why a call was not made and when to try again.
type UnavailableError struct {
	Bank   string
	Reason string
	Until  time.Time
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("connectors: %s unavailable (%s) until %s", e.Bank, e.Reason, e.Until.Format(time.RFC3339))
}

// Unwrap: ErrBankUnavailable and ErrNotSent.
func (e *UnavailableError) Unwrap() []error { return []error{ErrBankUnavailable, ErrNotSent} }

// RetryDelay reads how long a bank asked to wait (Retry-After on 429 or
// 503) from an error whose type has a RetryDelay method; 0 when none.
func RetryDelay(err error) time.Duration {
	var r interface{ RetryDelay() time.Duration }
	if errors.As(err, &r) {
		return r.RetryDelay()
	}
	return 0
}

// Guard wraps a Connector with each bank's profile: a circuit breaker, a
// bulkhead (at most MaxInFlight calls at once), a client-side rate limit, a
// timeout per call, and the maintenance and cut-off windows for transfers.
// Calls are guarded per called bank: an e-wallet shares its host bank's.
//
// The breaker counts only what says the bank is in trouble: a call that did
// not reach it (connection refused, 503), a timeout, a 5xx or a malformed
// answer. A definite answer, FAILED included, is a success; a 429, an
// unknown bank code and a call whose caller gave up (context cancelled) are
// not counted at all.
type Guard struct {
	next     Connector
	profiles Profiles
	now      func() time.Time
	// env labels the metrics (SetEnvironment); "" when the guard serves
	// one environment only.
	env string
	// noGateway: an environment without a gateway (NewUnconfiguredGuard):
	// every call fails at once with ReasonNoGateway.
	noGateway bool

	mu    sync.Mutex
	banks map[string]*guarded
}

var _ Connector = (*Guard)(nil)

type guarded struct {
	code     string
	profile  Profile
	breaker  *gobreaker.TwoStepCircuitBreaker[struct{}]
	sem      chan struct{}
	limiter  *limiter
	mu       sync.Mutex
	openedAt time.Time
}

// NewGuard guards next with profiles. now is the clock of the windows (nil:
// time.Now); the breakers always run on real time.
func NewGuard(next Connector, profiles Profiles, now func() time.Time) *Guard {
	if now == nil {
		now = time.Now
	}
	return &Guard{next: next, profiles: profiles, now: now, banks: map[string]*guarded{}}
}

// NewUnconfiguredGuard is the guard of an environment that has no bank
// gateway: it admits nothing and calls nothing. Admit and every call fail
// with an *UnavailableError of reason ReasonNoGateway (which wraps
// ErrNotSent), so payouts wait parked and, after their profile's
// UnavailableLimit, fail with BANK_UNAVAILABLE like payouts to a bank that
// is down. profiles give those limits.
func NewUnconfiguredGuard(env string, profiles Profiles) *Guard {
	g := NewGuard(nil, profiles, nil)
	g.env, g.noGateway = env, true
	return g
}

// SetEnvironment names the environment whose payouts the guard serves, in
// the environment label of its metrics. Call it before the first call.
func (g *Guard) SetEnvironment(env string) *Guard {
	g.env = env
	return g
}

// Environment is the environment SetEnvironment named.
func (g *Guard) Environment() string { return g.env }

// Configured reports whether the guard has a gateway to call.
func (g *Guard) Configured() bool { return !g.noGateway }

// noGatewayRetry is how long a payout of an environment without a gateway
// waits before it is looked at again: a gateway comes only with a restart,
// so asking often is pointless; the payout's UnavailableLimit still counts.
const noGatewayRetry = 5 * time.Minute

// noGatewayError says the environment has no gateway, until when to wait
// (never past the profile's UnavailableLimit, so the payout comes back in
// time to fail on it).
func (g *Guard) noGatewayError(b *guarded) error {
	wait := noGatewayRetry
	if l := b.profile.UnavailableLimit; l > 0 && l < wait {
		wait = l
	}
	return &UnavailableError{Bank: b.code, Reason: ReasonNoGateway, Until: time.Now().Add(wait)}
}

// Profile is the profile the guard applies to code's calls.
func (g *Guard) Profile(code string) Profile { return g.profiles.For(code) }

// errExcluded marks an outcome the breaker must not count.
var errExcluded = errors.New("not counted")

// BreakerConfig turns breaker settings into gobreaker settings; onChange
// is told of every state change.
func BreakerConfig(name string, b BreakerSettings, onChange func(from, to gobreaker.State)) gobreaker.Settings {
	buckets := max(1, b.Buckets)
	return gobreaker.Settings{
		Name:         name,
		MaxRequests:  max(1, b.HalfOpenProbes),
		Interval:     b.Window,
		BucketPeriod: b.Window / time.Duration(buckets),
		Timeout:      b.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			counted := c.TotalSuccesses + c.TotalFailures
			return counted >= b.MinRequests && counted > 0 &&
				float64(c.TotalFailures)/float64(counted) >= b.FailureRatio
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errExcluded) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if onChange != nil {
				onChange(from, to)
			}
		},
	}
}

func stateValue(s gobreaker.State) float64 {
	switch s {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}

func (g *Guard) bank(code string) *guarded {
	host := HostOf(code)
	g.mu.Lock()
	defer g.mu.Unlock()
	if b := g.banks[host]; b != nil {
		return b
	}
	p := g.profiles.For(host)
	b := &guarded{code: host, profile: p, sem: make(chan struct{}, max(1, p.MaxInFlight)), limiter: newLimiter(p.RateLimit, p.Burst)}
	b.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](BreakerConfig(host, p.Breaker, func(from, to gobreaker.State) {
		if to == gobreaker.StateOpen {
			b.mu.Lock()
			b.openedAt = time.Now()
			b.mu.Unlock()
		}
		breakerState.WithLabelValues(g.env, host).Set(stateValue(to))
		breakerTransitions.WithLabelValues(g.env, host, from.String(), to.String()).Inc()
	}))
	if !g.noGateway {
		breakerState.WithLabelValues(g.env, host).Set(0)
	}
	g.banks[host] = b
	return b
}

// BankState is what the guard knows about a bank now.
type BankState struct {
	Breaker     string    // closed, half-open, open
	ClosedUntil time.Time // set while in a maintenance or cut-off window
	Window      string    // the window's kind, when ClosedUntil is set
}

// State reports code's breaker state and window.
func (g *Guard) State(code string) BankState {
	b := g.bank(code)
	st := BankState{Breaker: b.breaker.State().String()}
	st.ClosedUntil, st.Window = closedUntil(b.profile, g.now())
	return st
}

func closedUntil(p Profile, now time.Time) (time.Time, string) {
	until, closed := p.ClosedUntil(now)
	if !closed {
		return time.Time{}, ""
	}
	kind := WindowMaintenance
	for _, w := range p.Windows {
		if w.Kind == WindowCutOff {
			if u, ok := (Profile{Windows: []Window{w}}).ClosedUntil(now); ok && u.Equal(until) {
				kind = WindowCutOff
			}
		}
	}
	return until, kind
}

// Admit says whether a transfer to code may be attempted now: nil, or an
// *UnavailableError (a window, or an open breaker) saying until when not.
// It does not count as a call.
func (g *Guard) Admit(code string) error {
	b := g.bank(code)
	if g.noGateway {
		return g.noGatewayError(b)
	}
	if until, kind := closedUntil(b.profile, g.now()); !until.IsZero() {
		return &UnavailableError{Bank: b.code, Reason: kind, Until: until}
	}
	if b.breaker.State() == gobreaker.StateOpen {
		return b.openError()
	}
	return nil
}

func (b *guarded) openError() error {
	b.mu.Lock()
	until := b.openedAt.Add(b.profile.Breaker.OpenFor)
	b.mu.Unlock()
	if until.Before(time.Now()) {
		until = time.Now().Add(b.profile.Breaker.OpenFor / 4)
	}
	return &UnavailableError{Bank: b.code, Reason: ReasonBreakerOpen, Until: until}
}

// do runs one guarded call.
func (g *Guard) do(ctx context.Context, code string, call func(context.Context) error) error {
	b := g.bank(code)
	if g.noGateway {
		return g.noGatewayError(b)
	}
	if err := b.limiter.wait(ctx); err != nil {
		return fmt.Errorf("%w: waiting for the rate limit of %s: %w", ErrNotSent, b.code, err)
	}
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for a free slot at %s: %w", ErrNotSent, b.code, ctx.Err())
	}
	defer func() { <-b.sem }()
	done, err := b.breaker.Allow()
	if err != nil {
		// Open, or half-open with its probes taken.
		return b.openError()
	}
	bankInFlight.WithLabelValues(g.env, b.code).Inc()
	defer bankInFlight.WithLabelValues(g.env, b.code).Dec()
	cctx, cancel := context.WithTimeout(ctx, b.profile.Timeout)
	defer cancel()
	start := time.Now()
	err = call(cctx)
	result := "ok"
	if err != nil {
		result = "error"
	}
	bankCallSeconds.WithLabelValues(g.env, b.code, result).Observe(time.Since(start).Seconds())
	if errors.Is(err, ErrRateLimited) {
		bankRateLimited.WithLabelValues(g.env, b.code).Inc()
	}
	done(classify(ctx, err))
	return err
}

// classify is what a call's outcome means to the breaker: nil a success,
// errExcluded not counted, anything else a failure.
func classify(parent context.Context, err error) error {
	switch {
	case err == nil, errors.Is(err, ErrUnknownReference), errors.Is(err, ErrBadCursor):
		return nil
	case parent.Err() != nil, errors.Is(err, ErrRateLimited), errors.Is(err, ErrUnknownBank):
		return errExcluded
	}
	return err
}

// Transfer sends the payout unless the bank is in a window or its breaker is
// open (then an *UnavailableError, which wraps ErrNotSent).
func (g *Guard) Transfer(ctx context.Context, req TransferRequest) (Result, error) {
	if err := g.Admit(req.BankCode); err != nil {
		return Result{}, err
	}
	var res Result
	err := g.do(ctx, req.BankCode, func(ctx context.Context) (err error) {
		res, err = g.next.Transfer(ctx, req)
		return err
	})
	return res, err
}

// Status asks the bank about a reference, through its breaker.
func (g *Guard) Status(ctx context.Context, bankCode, reference string) (Result, error) {
	var res Result
	err := g.do(ctx, bankCode, func(ctx context.Context) (err error) {
		res, err = g.next.Status(ctx, bankCode, reference)
		return err
	})
	return res, err
}

// Statement reads a page of the bank's statement, through the bank's
// profile like every other call (rate limit, bulkhead, breaker, timeout).
// Windows do not apply: they close a bank to transfers, not to reading
// what it booked. A bad cursor is a definite answer, not a failure.
func (g *Guard) Statement(ctx context.Context, bankCode string, q StatementQuery) (StatementPage, error) {
	var page StatementPage
	err := g.do(ctx, bankCode, func(ctx context.Context) (err error) {
		page, err = g.next.Statement(ctx, bankCode, q)
		return err
	})
	return page, err
}

// Inquire looks up an account, through the bank's breaker.
func (g *Guard) Inquire(ctx context.Context, bankCode, accountNumber string) (Inquiry, error) {
	var inq Inquiry
	err := g.do(ctx, bankCode, func(ctx context.Context) (err error) {
		inq, err = g.next.Inquire(ctx, bankCode, accountNumber)
		return err
	})
	return inq, err
}

// limiter is a token bucket; rate 0 admits everything.
type limiter struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	b := max(1, float64(burst))
	return &limiter{rate: rate, burst: b, tokens: b, last: time.Now()}
}

// wait takes a token, sleeping until one is there or ctx ends.
func (l *limiter) wait(ctx context.Context) error {
	if l.rate <= 0 {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	l.last = now
	l.tokens-- // reserve; a negative balance is the queue before us
	var wait time.Duration
	if l.tokens < 0 {
		wait = time.Duration(-l.tokens / l.rate * float64(time.Second))
	}
	l.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		l.tokens++ // give the reservation back
		l.mu.Unlock()
		return ctx.Err()
	}
}
