package api

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas/events"
)

// Group commit defaults: a create waits at most DefaultGroupWindow for
// others to share its transaction and produce, a group holds at most
// DefaultGroupMax creates, and at most DefaultGroupsInFlight groups are in
// their transaction at once; while they are, the next group keeps gathering.
const (
	DefaultGroupWindow    = 2 * time.Millisecond
	DefaultGroupMax       = 256
	DefaultGroupsInFlight = 8
)

// groupTimeout bounds one group's commit and produce; the group does not
// stop when the request that opened it goes away.
const groupTimeout = 10 * time.Second

var groupSize = promauto.NewHistogram(prometheus.HistogramOpts{
	Name:    "disburse_api_create_group_size",
	Help:    "Payout creates that shared one transaction and one produce (group commit).",
	Buckets: prometheus.ExponentialBuckets(1, 2, 10),
})

// GroupCommit configures how concurrent POST /v1/disbursements share
// commits; zero fields take the defaults.
type GroupCommit struct {
	Window   time.Duration
	Max      int
	InFlight int
}

// errPublish: the payout is stored but its request record was not
// acknowledged by Kafka; the caller answers 503 and the merchant retries
// with the same key (the replay publishes again).
var errPublish = errors.New("publish payout request")

// createResult is one create's answer from its group.
type createResult struct {
	d       payout.Disbursement
	created bool
	err     error
}

type createGroup struct {
	items   []payout.NewPayout
	results []createResult
	full    chan struct{} // closed when the group reached Max
	done    chan struct{} // closed when results are set
}

// committer gathers concurrent creates into groups. There is no
// background goroutine: the request that opens a group leads it (waits the
// window, commits, produces) and the others wait for its results.
type committer struct {
	cfg   GroupCommit
	store *payout.Store
	kafka *kgo.Client
	topic string
	now   func() time.Time
	log   *slog.Logger

	mu    sync.Mutex
	open  *createGroup
	slots chan struct{}
}

func (s *Server) creates() *committer {
	s.committerOnce.Do(func() {
		cfg := s.GroupCommit
		if cfg.Window <= 0 {
			cfg.Window = DefaultGroupWindow
		}
		if cfg.Max <= 0 {
			cfg.Max = DefaultGroupMax
		}
		if cfg.InFlight <= 0 {
			cfg.InFlight = DefaultGroupsInFlight
		}
		s.committer = &committer{cfg: cfg, store: s.Payouts, kafka: s.Kafka, topic: s.Topics.Requests,
			now: time.Now, log: s.Log, slots: make(chan struct{}, cfg.InFlight)}
	})
	return s.committer
}

// create stores p and publishes its request record together with the
// other creates of its group, and returns once both are done (or failed):
// the same answer payout.Store.Create gives, or errPublish.
func (c *committer) create(ctx context.Context, p payout.NewPayout) createResult {
	c.mu.Lock()
	g := c.open
	leader := g == nil
	if leader {
		g = &createGroup{full: make(chan struct{}), done: make(chan struct{})}
		c.open = g
	}
	i := len(g.items)
	g.items = append(g.items, p)
	if len(g.items) >= c.cfg.Max {
		c.open = nil
		close(g.full)
	}
	c.mu.Unlock()

	if leader {
		c.lead(g)
	}
	select {
	case <-g.done:
		return g.results[i]
	case <-ctx.Done():
		// The client left; the group still commits and publishes its payout,
		// so a retry with the same key replays it.
		return createResult{err: ctx.Err()}
	}
}

// lead waits the window (or until the group is full), then for a commit
// slot, meanwhile letting more creates join, then runs the group.
func (c *committer) lead(g *createGroup) {
	t := time.NewTimer(c.cfg.Window)
	select {
	case <-t.C:
	case <-g.full:
		t.Stop()
	}
	c.slots <- struct{}{}
	c.mu.Lock()
	if c.open == g {
		c.open = nil
	}
	c.mu.Unlock()
	go func() {
		defer close(g.done)
		g.results = c.run(g.items)
	}()
}

// run commits a group's payouts in one transaction, gives back its commit
// slot, then produces the request records of those still PENDING together
// and waits for Kafka to acknowledge every one. The slots bound concurrent
// transactions only: a group waiting for Kafka holds no connection.
func (c *committer) run(items []payout.NewPayout) []createResult {
	released := false
	release := func() {
		if !released {
			released = true
			<-c.slots
		}
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	groupSize.Observe(float64(len(items)))
	out := make([]createResult, len(items))
	start := time.Now()
	set, err := c.store.CreateSet(ctx, items)
	committed := time.Since(start)
	if err != nil && len(items) > 1 {
		// Nothing of the group was stored. Each create runs alone, so that
		// a row only one request can fail fails only that request.
		set = make([]payout.Created, len(items))
		for i, p := range items {
			d, created, err := c.store.Create(payout.WithRequestID(ctx, p.RequestID), p.MerchantID, p.Environment, p.IdempotencyKey, p.Request)
			set[i] = payout.Created{Disbursement: d, Created: created, Err: err}
		}
	} else if err != nil {
		out[0].err = err
		return out
	}
	var records []*kgo.Record
	owners := map[*kgo.Record]int{}
	for i, r := range set {
		out[i] = createResult{d: r.Disbursement, created: r.Created, err: r.Err}
		// A replay of a payout still PENDING publishes again: the first
		// publish may have failed after the row was written. The ledger
		// stage dedups.
		if r.Err == nil && r.Disbursement.Status == payout.Pending {
			d := r.Disbursement
			rec := processor.WithDisbursementID(processor.JSONRecord(c.topic, d.MerchantID, events.Request{
				DisbursementID: d.ID, MerchantID: d.MerchantID, Environment: d.Environment,
				ReferenceID: d.ReferenceID, BankCode: d.BankCode, Amount: d.Amount, Currency: d.Currency,
				AcceptedAt: c.now().UTC(),
			}), d.ID)
			if rid := items[i].RequestID; rid != "" {
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: processor.RequestIDHeader, Value: []byte(rid)})
			}
			records = append(records, rec)
			owners[rec] = i
		}
	}
	release()
	if len(records) == 0 {
		return out
	}
	// One produce call for the group: the client sends the records in as
	// few batches as their partitions allow, and each result says whether
	// that record was acknowledged (in acknowledgement order, not ours).
	for _, pr := range c.kafka.ProduceSync(ctx, records...) {
		if pr.Err != nil {
			out[owners[pr.Record]].err = errors.Join(errPublish, pr.Err)
		}
	}
	c.log.Debug("create group", "size", len(items), "commit_ms", committed.Milliseconds(),
		"produce_ms", (time.Since(start) - committed).Milliseconds())
	return out
}
