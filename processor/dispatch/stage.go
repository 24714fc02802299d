// Package dispatch is the consumer stage that sends debited payouts to their
// banks and settles the outcome. docs/dispatch.md explains the design; in
// short:
//
//   - The consume loop reads the dispatch topic (keyed by disbursement id)
//     and the dispatch-retry topic (parked payouts), and hands each payout
//     to its bank's lane without waiting for it. A lane has as many workers
//     as the bank's profile allows calls in flight (the bulkhead) and a
//     short queue.
//   - A payout whose bank is in a maintenance or cut-off window, whose
//     breaker is open, whose lane is full, or that the bank would not take
//     after the profile's send attempts, is parked: written to the
//     dispatch-retry topic with a not-before time, and re-driven when due.
//     So a slow or broken bank holds back only its own payouts.
//   - Offsets are committed per partition only up to the lowest unfinished
//     record; a parked record counts as finished once the retry topic has
//     acknowledged its copy.
//   - A payout's outcome still unknown after UnknownWindow is left to the
//     reconciler (reconcile.go), which keeps asking the bank and lists it
//     for operators.
//
// Sending is guarded so a payout is never paid twice: a worker claims the
// payout's lease in Postgres first; each transfer call is recorded before it
// is made; a payout whose transfer may have reached the bank (a timeout, a
// 5xx, a crash mid-call) is resolved by asking the bank for the status of
// its reference, and sent again only when the bank says it has never
// received it. The bank also dedups on the reference.
package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/schemas/events"
)

var (
	bankCalls = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "disburse_dispatch_bank_calls_total",
		Help: "Calls to banks by environment, bank, kind (transfer, status) and outcome.",
	}, []string{"environment", "bank", "kind", "outcome"})
	parkedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "disburse_dispatch_parked_total",
		Help: "Payouts parked on the dispatch-retry topic, by environment, called bank and reason (no_gateway: the environment has no bank gateway configured).",
	}, []string{"environment", "bank", "reason"})
	waitingGauge = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "disburse_dispatch_parked_waiting",
		Help: "Parked payouts read back from the retry topic and waiting in memory for their not-before time.",
	})
	laneQueue = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "disburse_dispatch_lane_queued",
		Help: "Payouts queued in a bank's lane, waiting for a free worker, by environment and bank.",
	}, []string{"environment", "bank"})
)

// Park reasons (events.Dispatch.Reason).
const (
	reasonLaneFull = "lane_full"
	reasonNotSent  = "not_sent"
	reasonLeased   = "leased"
)

// Stage sends payouts to banks.
type Stage struct {
	Payouts *payout.Store
	Ledger  *ledger.Store
	// Banks is each environment's bank connector with each bank's profile,
	// breaker, bulkhead and windows applied: a payout goes only to its own
	// environment's gateway, and an environment without one sends nothing.
	Banks  *connectors.Banks
	Kafka  *kgo.Client
	Topics events.Topics
	Log    *slog.Logger

	// LaneQueue is how many payouts may wait for a free worker of one bank
	// before more are parked (default 512).
	LaneQueue int
	// LeaseTTL is how long a payout's dispatch lease lasts without renewal
	// (default 10s). The heartbeat renews this process's leases every
	// LeaseTTL/3, so a crashed worker's payouts are free again within
	// LeaseTTL, and another worker takes them over (asking the bank first
	// about any that may have been sent).
	LeaseTTL time.Duration
	// UnknownWindow is how long a worker asks the bank about a sent payout
	// before leaving it to the reconciler (default 30s).
	UnknownWindow time.Duration
	// ParkBackoff spaces the re-drives of a payout parked again and again
	// (default 1s doubling to 30s, with jitter); a window or an open breaker
	// sets its own time.
	ParkBackoff BackoffConfig
	// MaxWaiting bounds parked payouts held in memory until due; above it
	// the retry topic is paused (default 10000).
	MaxWaiting int
	// MaxOutstanding bounds unfinished dispatch records; above it the
	// dispatch topic is paused (default 5000).
	MaxOutstanding int
	// RevokeGrace is how long the jobs of a revoked partition may run on
	// before they are cancelled (default 5s).
	RevokeGrace time.Duration
	// CommitEvery is how often finished offsets are committed (default 500ms).
	CommitEvery time.Duration

	// SettleGroup is the most bank outcomes settled in one transaction
	// (default 500); SettleEvery is the longest an outcome waits for its
	// group to fill (default 10ms).
	SettleGroup int
	SettleEvery time.Duration
	// NameThreshold is the NameScore a batch item's account_holder_name
	// needs against the bank's name (default connectors.DefaultNameThreshold).
	NameThreshold float64
	// Naive is the benchmark's baseline: one transaction per payout for
	// claims and settlements.
	Naive bool

	Reconcile ReconcileConfig

	// Pauses, when set, tells which environments are paused (the kill
	// switch, issue 14): their payouts are parked before a first send
	// (paused.go).
	Pauses Pauses

	settler   *settler
	renewedAt atomic.Int64 // last successful heartbeat (unix ns)
	dropped   droppedLeases
	instance  string
	tracker   *tracker
	lanesMu   sync.Mutex
	lanes     map[laneKey]*lane
	waiting   *waitQueue
	jobs      sync.WaitGroup // lane workers and parks in progress
	stopping  chan struct{}
}

// BackoffConfig is exponential backoff with jitter (internal/retry).
type BackoffConfig struct {
	Base, Max time.Duration
}

func (s *Stage) defaults() {
	if s.SettleGroup <= 0 {
		s.SettleGroup = 500
	}
	if s.SettleEvery <= 0 {
		s.SettleEvery = 10 * time.Millisecond
	}
	if s.LeaseTTL <= 0 {
		s.LeaseTTL = 10 * time.Second
	}
	if s.UnknownWindow <= 0 {
		s.UnknownWindow = 30 * time.Second
	}
	if s.ParkBackoff.Base <= 0 {
		s.ParkBackoff = BackoffConfig{Base: time.Second, Max: 30 * time.Second}
	}
	if s.MaxWaiting <= 0 {
		s.MaxWaiting = 10_000
	}
	if s.MaxOutstanding <= 0 {
		s.MaxOutstanding = 5_000
	}
	if s.RevokeGrace <= 0 {
		s.RevokeGrace = 5 * time.Second
	}
	if s.CommitEvery <= 0 {
		s.CommitEvery = 500 * time.Millisecond
	}
	s.Reconcile.defaults(s.UnknownWindow)
	if s.instance == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		s.instance = "dispatch-" + hex.EncodeToString(b)
	}
}

// GroupOpts are the options the stage's Kafka client needs on top of
// processor.ConsumerOpts: it commits the finished part of partitions that
// are revoked, and forgets partitions that are lost. Pass them when making
// the client for Kafka.
func (s *Stage) GroupOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
			s.partitionsGone(ctx, cl, revoked, true)
		}),
		kgo.OnPartitionsLost(func(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
			s.partitionsGone(ctx, cl, lost, false)
		}),
	}
}

func (s *Stage) partitionsGone(ctx context.Context, cl *kgo.Client, gone map[string][]int32, commit bool) {
	if s.tracker == nil {
		return
	}
	final := s.tracker.remove(gone, s.RevokeGrace)
	if commit && len(final) > 0 {
		if err := commitSync(ctx, cl, final); err != nil {
			s.Log.Warn("commit of revoked partitions failed; their finished records will be redelivered", "err", err)
		}
	}
}

func commitSync(ctx context.Context, cl *kgo.Client, offs map[string]map[int32]kgo.EpochOffset) error {
	var cerr error
	cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && cerr == nil {
					cerr = fmt.Errorf("commit %s/%d: %w", t.Topic, p.Partition, err)
				}
			}
		}
	})
	return cerr
}

// Run consumes until ctx ends, then finishes the payouts in hand, commits
// and returns.
func (s *Stage) Run(ctx context.Context) error {
	s.defaults()
	work := context.WithoutCancel(ctx)
	s.tracker = newTracker(work)
	s.lanes = map[laneKey]*lane{}
	s.stopping = make(chan struct{})
	s.waiting = newWaitQueue()
	s.settler = newSettler(s)

	var loops, redriving sync.WaitGroup
	loopCtx, stopLoops := context.WithCancel(work)
	defer stopLoops()
	redriving.Add(1)
	go func() { defer redriving.Done(); s.redrive() }()
	loops.Add(5)
	go func() { defer loops.Done(); s.settler.run(loopCtx) }()
	go func() { defer loops.Done(); s.heartbeat(loopCtx) }()
	go func() { defer loops.Done(); s.commitLoop(loopCtx) }()
	go func() { defer loops.Done(); s.reconcileLoop(loopCtx) }()
	go func() { defer loops.Done(); s.healthLoop(loopCtx) }()

	err := s.consume(ctx)

	// Shutdown: no new jobs; the running ones finish; queued and waiting
	// ones stay uncommitted and come again.
	close(s.stopping)
	redriving.Wait()
	s.jobs.Wait()
	s.releaseQueued()
	stopLoops()
	loops.Wait()
	s.commit(work)
	return err
}

// consume polls and hands each record on, without waiting for payouts.
func (s *Stage) consume(ctx context.Context) error {
	cl := s.Kafka
	pausedMain, pausedRetry := false, false
	for {
		// While a topic is paused the poll must come back on its own: with
		// the other topic idle it would otherwise wait forever and never
		// see that the pause can end.
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if pausedMain || pausedRetry {
			pollCtx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
		}
		fetches := cl.PollRecords(pollCtx, 500)
		cancel()
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			s.Log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
		})
		recs := fetches.Records()
		for _, r := range recs {
			s.tracker.get(r).track(r)
		}
		cl.AllowRebalance()
		s.accept(recs)
		// Back-pressure: too much unfinished, stop fetching that topic.
		if out := s.tracker.outstanding(s.Topics.Dispatch); out > s.MaxOutstanding && !pausedMain {
			cl.PauseFetchTopics(s.Topics.Dispatch)
			pausedMain = true
		} else if out <= s.MaxOutstanding/2 && pausedMain {
			cl.ResumeFetchTopics(s.Topics.Dispatch)
			pausedMain = false
		}
		if n := s.waiting.len(); n > s.MaxWaiting && !pausedRetry {
			cl.PauseFetchTopics(s.Topics.DispatchRetry)
			pausedRetry = true
		} else if n <= s.MaxWaiting/2 && pausedRetry {
			cl.ResumeFetchTopics(s.Topics.DispatchRetry)
			pausedRetry = false
		}
	}
}

// heartbeat renews this process's dispatch leases every LeaseTTL/3 while
// the stage runs, so they outlive the work however long a bank takes, and
// end within LeaseTTL of a crash. It first deletes the leases the process
// dropped (droppedLeases), so it never keeps one alive that nothing holds.
func (s *Stage) heartbeat(ctx context.Context) {
	t := time.NewTicker(s.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.releaseDropped(ctx)
			at := time.Now().UnixNano()
			if _, err := s.Payouts.RenewLeases(ctx, s.instance, s.LeaseTTL); err != nil {
				if ctx.Err() == nil {
					s.Log.Warn("lease heartbeat failed; leases may run out and be taken over (sends are fenced)", "err", err)
				}
				continue
			}
			s.renewedAt.Store(at)
		}
	}
}

// commitLoop commits finished offsets every CommitEvery.
func (s *Stage) commitLoop(ctx context.Context) {
	t := time.NewTicker(s.CommitEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.commit(ctx)
		}
	}
}

func (s *Stage) commit(ctx context.Context) {
	offs, parts := s.tracker.commitPoints()
	if len(offs) == 0 {
		return
	}
	if err := commitSync(context.WithoutCancel(ctx), s.Kafka, offs); err != nil {
		s.Log.Warn("commit failed; finished records may be redelivered", "err", err)
		return
	}
	for _, p := range parts {
		p.markCommitted(offs[p.topic][p.id].Offset)
	}
}
