package callbacks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/disburse/disburse/callbacks/signature"
	"github.com/disburse/disburse/internal/retry"
)

var (
	deliveries = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "disburse_callback_attempts_total",
		Help: "Callback delivery attempts by outcome: delivered, retry (will be tried again), failed (retries used up).",
	}, []string{"outcome"})
	attemptSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "disburse_callback_attempt_seconds",
		Help:    "Duration of one callback HTTP attempt.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
	})
	deliveryLatency = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "disburse_callback_delivery_latency_seconds",
		Help:    "From the status change to the callback's successful delivery.",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 12),
	})
	queueDepth = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "disburse_callback_queue_depth",
		Help: "Callbacks pending delivery (due now or waiting to be retried).",
	})
	inFlight = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "disburse_callback_in_flight",
		Help: "Callback attempts this process is making now.",
	})
)

// Worker delivers recorded callbacks. It claims due callbacks from Postgres
// (at most the endpoint's callback_concurrency POSTs per merchant
// environment at a time, so one slow or failing endpoint cannot take every
// slot), POSTs each with its signature, and records the outcome. An
// endpoint whose callback_batch_size is above 1 gets up to that many
// callbacks in one signed POST (BatchType); every callback in it records
// the attempt. Nothing is held only in memory: a callback claimed by a
// worker that dies is due again when its lease expires.
type Worker struct {
	Store  *Store
	Policy Policy
	Log    *slog.Logger

	// MaxConcurrent bounds this process's POSTs in flight (default 64).
	MaxConcurrent int
	// PerEndpoint caps every merchant environment's callback_concurrency
	// (its POSTs in flight across workers, 1 to 64, default 4): the
	// operator's ceiling (default 64, no ceiling below the settings range).
	PerEndpoint int
	// AttemptTimeout bounds one attempt, connection to last byte (default
	// 10s: API.md's "a 2xx within 10 s").
	AttemptTimeout time.Duration
	// LeaseMargin is added to AttemptTimeout for a claim's lease, covering
	// the signing and the recording around the HTTP call (default
	// AttemptTimeout + 5s). A crashed worker's callbacks are due again
	// after the lease.
	LeaseMargin time.Duration
	// Backoff spaces retries: attempt n waits Backoff.Base plus a random
	// share of min(Max, Base*2^n) (default 10s doubling to 1h).
	Backoff retry.Backoff
	// PollInterval is how often due callbacks are looked for when nothing
	// wakes the worker (default 500ms).
	PollInterval time.Duration
	// MaxResponseBody is how much of a response is read and logged (default 1 KiB).
	MaxResponseBody int64

	once    sync.Once
	wake    chan struct{}
	strict  *http.Client
	relaxed *http.Client
}

func (w *Worker) init() {
	w.once.Do(func() {
		if w.MaxConcurrent <= 0 {
			w.MaxConcurrent = 64
		}
		if w.PerEndpoint <= 0 {
			w.PerEndpoint = 64
		}
		if w.AttemptTimeout <= 0 {
			w.AttemptTimeout = 10 * time.Second
		}
		if w.LeaseMargin <= 0 {
			w.LeaseMargin = w.AttemptTimeout + 5*time.Second
		}
		if w.Backoff.Base <= 0 {
			w.Backoff = retry.Backoff{Base: 10 * time.Second, Max: time.Hour}
		}
		if w.PollInterval <= 0 {
			w.PollInterval = 500 * time.Millisecond
		}
		if w.MaxResponseBody <= 0 {
			w.MaxResponseBody = 1 << 10
		}
		if w.Log == nil {
			w.Log = slog.Default()
		}
		w.wake = make(chan struct{}, 1)
		w.strict = newClient(true)
		w.relaxed = newClient(false)
	})
}

// newClient is the HTTP client of deliveries: no proxy (it would hide the
// address dialed), no redirects, and, when checked, a dialer that refuses
// non-public addresses after DNS resolution (against DNS rebinding).
func newClient(checked bool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if checked {
		d.Control = dialControl
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         d.DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			// As many as an endpoint may have in flight (its
			// callback_concurrency, at most 64): fewer would close and
			// dial connections on every round of deliveries.
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     60 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Wake tells the worker that callbacks were recorded, so it looks at once.
func (w *Worker) Wake() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, then waits for the attempts in flight (each
// bounded by AttemptTimeout) to be recorded.
func (w *Worker) Run(ctx context.Context) error {
	w.init()
	work := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, w.MaxConcurrent)
	tick := time.NewTicker(w.PollInterval)
	defer tick.Stop()
	depth := time.NewTicker(5 * time.Second)
	defer depth.Stop()
	w.sampleDepth(ctx)
	claimBackoff := 0
	for {
		free := w.MaxConcurrent - len(slots)
		if free > 0 && ctx.Err() == nil {
			// Batched endpoints first: one slot per POST of up to 100.
			groups, err := w.Store.ClaimBatches(ctx, free, w.PerEndpoint, w.AttemptTimeout+w.LeaseMargin)
			var claimed []Claimed
			if err == nil && free-len(groups) > 0 {
				claimed, err = w.Store.Claim(ctx, free-len(groups), w.PerEndpoint, w.AttemptTimeout+w.LeaseMargin)
			}
			if err != nil && ctx.Err() == nil {
				w.Log.Error("claim callbacks", "err", err)
				_ = w.Backoff.Sleep(ctx, min(claimBackoff, 3))
				claimBackoff++
			} else {
				claimBackoff = 0
			}
			for _, g := range groups {
				slots <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					w.attemptBatch(work, g)
					<-slots
					w.Wake()
				}()
			}
			for _, c := range claimed {
				slots <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					w.attempt(work, c)
					<-slots
					w.Wake()
				}()
			}
			if len(groups)+len(claimed) == free {
				continue // there may be more due right now
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		case <-tick.C:
		case <-depth.C:
			w.sampleDepth(ctx)
		}
	}
}

func (w *Worker) sampleDepth(ctx context.Context) {
	if n, err := w.Store.PendingCount(ctx); err == nil {
		queueDepth.Set(float64(n))
	}
}

// retryIn is the wait before retry number attempts (from 1): Base plus
// full jitter over the exponential ceiling, so retries never come at once.
func (w *Worker) retryIn(attempts int) time.Duration {
	return w.Backoff.Base + w.Backoff.Delay(max(attempts-1, 0))
}

// attempt makes one delivery attempt and records it.
func (w *Worker) attempt(ctx context.Context, c Claimed) {
	inFlight.Inc()
	r := w.send(ctx, c)
	inFlight.Dec()
	attemptSeconds.Observe(r.Duration.Seconds())
	status, err := w.Store.Finish(ctx, c, r, w.retryIn(c.Attempts+1))
	log := w.Log.With("callback_id", c.ID, subjectKey(c.Type), c.SubjectID, "request_id", c.RequestID,
		"merchant_id", c.MerchantID, "environment", c.Environment, "type", c.Type, "attempt", c.Attempts+1)
	if err != nil {
		// The lease expires and the callback is tried again.
		log.Error("record callback attempt", "err", err)
		return
	}
	switch status {
	case Delivered:
		deliveries.WithLabelValues("delivered").Inc()
		deliveryLatency.Observe(time.Since(c.EventAt).Seconds())
		log.Info("callback delivered", "status_code", r.StatusCode, "ms", r.Duration.Milliseconds())
	case Pending:
		deliveries.WithLabelValues("retry").Inc()
		log.Warn("callback attempt failed; will retry", "status_code", r.StatusCode, "err", r.Err)
	case Failed:
		deliveries.WithLabelValues("failed").Inc()
		log.Error("callback failed: retries used up", "status_code", r.StatusCode, "err", r.Err)
	default:
		log.Warn("callback lease lost before its attempt was recorded")
	}
}

// subjectKey is the log attribute naming what a callback of typ announces.
func subjectKey(typ string) string {
	if typ == TypeBatchCompleted {
		return "batch_id"
	}
	return "disbursement_id"
}

// send POSTs the callback once, naming what it announces in a header
// (X-Disbursement-Id or X-Batch-Id) beside the X-Request-Id of the call
// that created it, so the merchant can route and quote it unparsed.
func (w *Worker) send(ctx context.Context, c Claimed) Result {
	h := http.Header{}
	if c.Type == TypeBatchCompleted {
		h.Set("X-Batch-Id", c.SubjectID)
	} else if c.SubjectID != "" {
		h.Set("X-Disbursement-Id", c.SubjectID)
	}
	if c.RequestID != "" {
		h.Set("X-Request-Id", c.RequestID)
	}
	return w.post(ctx, c, c.ID, h, c.Body)
}

// post sends body, signed, to c's endpoint once, with X-Callback-Id id and
// the extra headers.
func (w *Worker) post(ctx context.Context, c Claimed, id string, extra http.Header, body []byte) Result {
	r := Result{URL: c.URL, StartedAt: time.Now()}
	fail := func(format string, args ...any) Result {
		r.Err = fmt.Sprintf(format, args...)
		r.Duration = time.Since(r.StartedAt)
		return r
	}
	if c.URL == "" {
		return fail("no callback_url is set for this environment")
	}
	if _, err := w.Policy.checkForm(c.Environment, c.URL); err != nil {
		return fail("%v", err)
	}
	secrets, err := w.Store.SigningSecrets(ctx, c.MerchantID, c.Environment)
	if err != nil {
		return fail("signing secret: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return fail("build request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "disburse-callbacks/1")
	req.Header.Set("X-Callback-Id", id)
	for k, v := range extra {
		req.Header[k] = v
	}
	req.Header.Set(signature.HeaderName, signature.Sign(time.Now(), body, secrets...))
	client := w.strict
	if w.Policy.Relaxed(c.Environment) {
		client = w.relaxed
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fail("no answer within %s", w.AttemptTimeout)
		}
		return fail("%v", err) // errForbiddenDial among others
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, w.MaxResponseBody))
	r.StatusCode = resp.StatusCode
	// Stored as text: valid UTF-8 without NUL bytes.
	r.ResponseBody = strings.ReplaceAll(strings.ToValidUTF8(string(answer), string(utf8.RuneError)), "\x00", "")
	if !r.OK() {
		r.Err = fmt.Sprintf("HTTP %d (only a 2xx counts as delivered; redirects are not followed)", resp.StatusCode)
	}
	r.Duration = time.Since(r.StartedAt)
	return r
}

// attemptBatch makes one POST carrying every callback of group (one lease)
// and records the attempt on each: all delivered on a 2xx, all retried
// otherwise, after one backoff (that of the most tried callback in it) so
// they stay together.
func (w *Worker) attemptBatch(ctx context.Context, group []Claimed) {
	id, body := BatchBody(group)
	inFlight.Inc()
	r := w.post(ctx, group[0], id, nil, body) // many payouts: each event's ids are in the log below
	inFlight.Dec()
	attemptSeconds.Observe(r.Duration.Seconds())
	attempts := 0
	for _, c := range group {
		attempts = max(attempts, c.Attempts+1)
	}
	log := w.Log.With("delivery_id", id, "merchant_id", group[0].MerchantID, "environment", group[0].Environment,
		"callbacks", len(group))
	statuses, err := w.Store.FinishBatch(ctx, group, r, w.retryIn(attempts))
	if err != nil {
		// The leases expire and the callbacks are tried again.
		log.Error("record callback batch attempt", "err", err)
		return
	}
	counts := map[string]int{}
	for _, c := range group {
		status, ok := statuses[c.ID]
		if !ok {
			status = "lease_lost"
		}
		counts[status]++
		// One line per callback, so a payout's request id finds its
		// delivery; the summary line below is about the POST.
		log.Info("callback in batch attempt", "callback_id", c.ID, subjectKey(c.Type), c.SubjectID,
			"request_id", c.RequestID, "type", c.Type, "outcome", status)
		switch status {
		case Delivered:
			deliveries.WithLabelValues("delivered").Inc()
			deliveryLatency.Observe(time.Since(c.EventAt).Seconds())
		case Pending:
			deliveries.WithLabelValues("retry").Inc()
		case Failed:
			deliveries.WithLabelValues("failed").Inc()
		}
	}
	switch {
	case r.OK():
		log.Info("callback batch delivered", "status_code", r.StatusCode, "ms", r.Duration.Milliseconds(),
			"delivered", counts[Delivered], "lease_lost", counts["lease_lost"])
	case counts[Failed] > 0:
		log.Error("callback batch attempt failed; some callbacks used up their retries", "status_code", r.StatusCode,
			"err", r.Err, "failed", counts[Failed], "retry", counts[Pending])
	default:
		log.Warn("callback batch attempt failed; will retry", "status_code", r.StatusCode, "err", r.Err,
			"retry", counts[Pending], "lease_lost", counts["lease_lost"])
	}
}

// TestType is the type of the callback Test sends.
const TestType = "callback.test"

// Test POSTs one signed callback of type TestType to url, as a delivery
// would (the same signature, client and URL policy), and returns the
// receiver's answer. Nothing is recorded: it is the dashboard's "send test
// callback", for a merchant checking their receiver before payouts flow.
func (w *Worker) Test(ctx context.Context, merchantID, environment, url string, now time.Time) Result {
	w.init()
	id := "cb_test_" + strconv.FormatInt(now.UnixNano(), 36)
	body := encode(map[string]any{"id": id, "type": TestType, "created_at": now.UTC().Format(time.RFC3339),
		"data": map[string]string{"message": "test callback from disburse; answer 2xx"}})
	return w.post(ctx, Claimed{URL: url, MerchantID: merchantID, Environment: environment}, id, nil, body)
}
