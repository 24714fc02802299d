package banksim

import (
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Defaults for the timed magic accounts.
const (
	DefaultHang          = 30 * time.Second
	DefaultCompleteDelay = 2 * time.Second
	DefaultReturnDelay   = 5 * time.Second
)

// Options configures a Server. The zero value is a working sandbox with no
// latency, no injected errors and the default magic-account timings.
type Options struct {
	// Latency is the response latency of every bank not listed in Banks.
	// The zero value answers at once.
	Latency Latency
	// Banks is the starting configuration of individual banks, by code; a
	// listed bank uses its BankConfig as given, latency included.
	Banks map[string]BankConfig

	// Hang is how long the response for a ...2222 account hangs (it returns
	// earlier when the request's context ends). Zero: DefaultHang.
	Hang time.Duration
	// CompleteDelay is how long a transfer that answered PROCESSING takes to
	// become COMPLETED. Zero: DefaultCompleteDelay.
	CompleteDelay time.Duration
	// ReturnDelay is how long after a ...3333 transfer completes it is
	// RETURNED. Zero: DefaultReturnDelay.
	ReturnDelay time.Duration

	// Seed seeds the random source of latencies and injected errors. Zero: a
	// random seed.
	Seed uint64
	// Now is the clock that decides when transfers change status and refills
	// rate limits. Nil: time.Now. Latencies and hangs always sleep real time.
	Now func() time.Time
	// Logger gets admin changes (Info) and every request (Debug). Nil: discard.
	Logger *slog.Logger
}

// DefaultOptions is the sandbox as `disburse banksim` runs it: per-bank
// latencies like the real banks' online transfers, and default timings.
func DefaultOptions() Options {
	ms := time.Millisecond
	lat := map[string]Latency{
		"bca":     {Median: 120 * ms, P99: 900 * ms},
		"bni":     {Median: 180 * ms, P99: 1500 * ms},
		"bri":     {Median: 250 * ms, P99: 2500 * ms},
		"mandiri": {Median: 150 * ms, P99: 1200 * ms},
		"cimb":    {Median: 200 * ms, P99: 1800 * ms},
		"permata": {Median: 200 * ms, P99: 1800 * ms},
		"bsi":     {Median: 300 * ms, P99: 3000 * ms},
		"btn":     {Median: 350 * ms, P99: 3500 * ms},
		"danamon": {Median: 220 * ms, P99: 2000 * ms},
	}
	o := Options{Latency: Latency{Median: 200 * ms, P99: 2000 * ms}, Banks: map[string]BankConfig{}}
	for code, l := range lat {
		o.Banks[code] = BankConfig{Latency: l}
	}
	return o
}

// Latency is a log-normal response time given by its median and its 99th
// percentile. Samples are capped at twice P99. P99 at or below Median (or
// zero) makes the latency constant at Median.
type Latency struct {
	Median time.Duration
	P99    time.Duration
}

// z of the 99th percentile of the standard normal distribution.
const z99 = 2.3263478740408408

// sample turns a standard normal deviate into a latency.
func (l Latency) sample(z float64) time.Duration {
	if l.Median <= 0 {
		return 0
	}
	if l.P99 <= l.Median {
		return l.Median
	}
	sigma := math.Log(float64(l.P99)/float64(l.Median)) / z99
	d := time.Duration(float64(l.Median) * math.Exp(sigma*z))
	return min(d, 2*l.P99)
}

func (l Latency) validate() error {
	if l.Median < 0 || l.P99 < 0 {
		return fmt.Errorf("latency: negative duration")
	}
	if l.P99 != 0 && l.P99 < l.Median {
		return fmt.Errorf("latency: p99_ms %v is below median_ms %v", l.P99, l.Median)
	}
	return nil
}

// BankConfig is one bank's behaviour, changeable while the server runs.
type BankConfig struct {
	Latency Latency
	// ErrorRateBefore is the fraction of transfers answered 500 before they
	// are recorded: the client cannot tell, and a status query says 404.
	ErrorRateBefore float64
	// ErrorRateAfter is the fraction of transfers answered 500 after they
	// are recorded: an unknown outcome the client must resolve with a status
	// query, which finds the transfer.
	ErrorRateAfter float64
	// ProcessingRate is the fraction of ordinary transfers that answer
	// PROCESSING and complete after Options.CompleteDelay.
	ProcessingRate float64
	// RateLimit is requests per second the bank takes across its endpoints,
	// in bursts of up to max(1, RateLimit); over it the bank answers 429 with
	// Retry-After. Zero: unlimited.
	RateLimit float64
}

func (c BankConfig) validate() error {
	if err := c.Latency.validate(); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"error_rate_before", c.ErrorRateBefore}, {"error_rate_after", c.ErrorRateAfter}, {"processing_rate", c.ProcessingRate}} {
		if math.IsNaN(f.v) || f.v < 0 || f.v > 1 {
			return fmt.Errorf("%s: %v is not a fraction between 0 and 1", f.name, f.v)
		}
	}
	if math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) || c.RateLimit < 0 {
		return fmt.Errorf("rate_limit: %v is not a non-negative number of requests per second", c.RateLimit)
	}
	return nil
}

// bucket is a token bucket; the zero value with rate 0 admits everything.
type bucket struct {
	rate   float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, now time.Time) bucket {
	return bucket{rate: rate, tokens: burst(rate), last: now}
}

func burst(rate float64) float64 { return max(1, rate) }

// take spends a token, or says how long until one is available.
func (b *bucket) take(now time.Time) (time.Duration, bool) {
	if b.rate <= 0 {
		return 0, true
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(burst(b.rate), b.tokens+el*b.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / b.rate * float64(time.Second)), false
}
