package dispatch

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/internal/retry"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas/events"
)

// job is one dispatch record on its way through a lane.
type job struct {
	rec  *kgo.Record
	ev   events.Dispatch
	part *partition
	// claim is the payout and its lease, once claimed for a lane.
	claim *payout.Claim
	// called: the transfer call recorded with the claim was made.
	called bool
	// claimedAt is when the claim was asked for (unix ns): its lease is
	// live for at least LeaseTTL from then.
	claimedAt int64
	// requestID is the X-Request-Id the payout was created under (the
	// record's request_id header), for the logs; parked copies keep it.
	requestID string
}

// lane is one environment's called bank's queue and workers: at most the
// bank's MaxInFlight payouts (by that environment's profile) are worked on
// at once, and at most LaneQueue wait. Each environment has its own lanes,
// so production and sandbox never wait for each other's bank.
type lane struct {
	laneKey
	queue chan *job
}

// laneKey names a lane: the payout's environment and called bank.
type laneKey struct{ env, bank string }

// defaultLaneQueue is how many payouts of one bank may wait in memory for a
// worker. A large batch to a few banks then keeps every worker busy from
// memory; only beyond it (a bank far slower than its share of the traffic)
// are payouts parked on the retry topic, where each costs a produce and a
// re-read. MaxOutstanding bounds the total.
const defaultLaneQueue = 512

// releaseQueued gives back the claims of the payouts still waiting in the
// lanes when the stage stops, so their next owner need not wait for the
// leases to run out.
func (s *Stage) releaseQueued() {
	s.lanesMu.Lock()
	defer s.lanesMu.Unlock()
	for _, l := range s.lanes {
		for {
			select {
			case j := <-l.queue:
				laneQueue.WithLabelValues(l.env, l.bank).Dec()
				s.release(j, "stopping")
				continue
			default:
			}
			break
		}
	}
}

func (s *Stage) lane(env, bank string) *lane {
	k := laneKey{env, bank}
	s.lanesMu.Lock()
	defer s.lanesMu.Unlock()
	if l := s.lanes[k]; l != nil {
		return l
	}
	p := s.Banks.For(env).Profile(bank)
	depth := s.LaneQueue
	if depth <= 0 {
		depth = defaultLaneQueue
	}
	l := &lane{laneKey: k, queue: make(chan *job, depth)}
	s.lanes[k] = l
	for range max(1, p.MaxInFlight) {
		s.jobs.Add(1)
		go s.worker(l)
	}
	return l
}

func (s *Stage) worker(l *lane) {
	defer s.jobs.Done()
	for {
		select {
		case <-s.stopping:
			return
		case j := <-l.queue:
			laneQueue.WithLabelValues(l.env, l.bank).Dec()
			select {
			case <-s.stopping:
				s.release(j, "stopping") // left unfinished: it comes again after the restart
				return
			default:
			}
			s.run(j)
		}
	}
}

// accept takes the records of a poll: a parked one not yet due waits in
// memory, the others are routed together.
func (s *Stage) accept(recs []*kgo.Record) {
	due := make([]*job, 0, len(recs))
	for _, r := range recs {
		part := s.tracker.get(r)
		var ev events.Dispatch
		if err := json.Unmarshal(r.Value, &ev); err != nil || ev.DisbursementID == "" {
			s.Log.Error("skipping malformed dispatch record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			part.finish(r.Offset)
			continue
		}
		j := &job{rec: r, ev: ev, part: part, requestID: processor.RequestIDOf(r)}
		if time.Now().Before(ev.NotBefore) {
			s.waiting.push(j)
			continue
		}
		due = append(due, j)
	}
	s.route(due)
}

// route claims the due payouts as one set and puts each in its bank's lane;
// it parks those whose bank is closed, whose breaker is open or whose lane
// is full, and those someone else holds the lease of. It never waits for a
// bank. In naive mode (the benchmark's baseline) each payout is claimed in
// a transaction of its own.
func (s *Stage) route(jobs []*job) {
	if s.Naive && len(jobs) > 1 {
		for _, j := range jobs {
			s.route([]*job{j})
		}
		return
	}
	// 1. What no lane can take now is parked without a claim. The record's
	// environment picks the gateway here; the claimed payout's own (from
	// its row) picks it for the send.
	room := map[laneKey]int{}
	var claim []*job
	for _, j := range jobs {
		if j.part.isRevoked() {
			continue
		}
		if s.waitedTooLong(j) {
			s.failUnavailable(j)
			continue
		}
		var ue *connectors.UnavailableError
		if err := s.Banks.For(j.ev.Environment).Admit(j.ev.BankCode); errors.As(err, &ue) {
			s.park(j, s.unavailableUntil(ue, j.ev.Attempt), ue.Reason)
			continue
		}
		k := laneKey{j.ev.Environment, connectors.HostOf(j.ev.BankCode)}
		free, ok := room[k]
		if !ok {
			l := s.lane(k.env, k.bank)
			free = cap(l.queue) - len(l.queue)
		}
		if free <= 0 {
			s.park(j, time.Now().Add(s.parkDelay(j.ev.Attempt)), reasonLaneFull)
			continue
		}
		room[k] = free - 1
		claim = append(claim, j)
	}
	if len(claim) == 0 {
		return
	}
	// 2. One transaction claims the rest and records their transfer calls.
	ids := make([]string, 0, len(claim))
	byID := make(map[string][]*job, len(claim))
	for _, j := range claim {
		id := j.ev.DisbursementID
		if len(byID[id]) == 0 {
			ids = append(ids, id)
		}
		byID[id] = append(byID[id], j)
	}
	owner := s.instance + "/" + token()
	claimedAt := time.Now().UnixNano()
	got, err := s.Payouts.ClaimSet(context.Background(), ids, owner, s.instance, s.LeaseTTL, s.Reconcile.After)
	if err != nil {
		if mayHaveCommitted(err) { // an unanswered commit: leases nothing holds
			s.dropped.add(owner, ids...)
		}
		s.Log.Warn("claiming payouts failed; parking them to retry", "payouts", len(ids), "err", err)
		for _, j := range claim {
			s.park(j, time.Now().Add(s.parkDelay(j.ev.Attempt)), "error")
		}
		return
	}
	// 3. Each payout's jobs: the first claimed goes to its lane; a second
	// copy of it (a parked copy beside a redelivery) waits for the first.
	for id, status := range got.Settled {
		if status == "" {
			s.Log.Error("dispatch record for an unknown payout", "disbursement_id", id)
		}
		for _, j := range byID[id] {
			j.part.finish(j.rec.Offset) // nothing to send; the outbox announced any change
		}
	}
	for id, until := range got.Leased {
		for _, j := range byID[id] {
			s.park(j, until.Add(time.Second), reasonLeased)
		}
	}
	for i := range got.Claimed {
		c := &got.Claimed[i]
		js := byID[c.ID]
		for _, dup := range js[1:] {
			s.park(dup, time.Now().Add(s.LeaseTTL+time.Second), reasonLeased)
		}
		j := js[0]
		j.claim, j.claimedAt = c, claimedAt
		l := s.lane(c.Environment, connectors.HostOf(c.BankCode))
		select {
		case l.queue <- j:
			laneQueue.WithLabelValues(l.env, l.bank).Inc()
		default: // raced with another route: give the claim back
			s.release(j, reasonLaneFull)
			s.park(j, time.Now().Add(s.parkDelay(j.ev.Attempt)), reasonLaneFull)
		}
	}
}

// unavailableReasons are the park reasons that mean the bank would not
// take payouts (its breaker open, a window, or it refused every send):
// the first such park starts the clock of the profile's UnavailableLimit.
var unavailableReasons = map[string]bool{
	connectors.ReasonBreakerOpen: true, connectors.WindowMaintenance: true, connectors.WindowCutOff: true,
	connectors.ReasonNoGateway: true, reasonNotSent: true,
}

// waitedTooLong reports whether the payout has been waiting for its
// unavailable bank longer than the bank profile allows.
func (s *Stage) waitedTooLong(j *job) bool {
	since := j.ev.UnavailableSince
	limit := s.Banks.For(j.ev.Environment).Profile(j.ev.BankCode).UnavailableLimit
	return !since.IsZero() && limit > 0 && time.Since(since) >= limit
}

// failUnavailable fails a payout whose bank stayed unavailable past the
// profile's limit with BANK_UNAVAILABLE, its debit returned, unless a
// transfer of it may be at the bank (then it keeps waiting: only the bank
// can say what became of it).
func (s *Stage) failUnavailable(j *job) {
	id := j.ev.DisbursementID
	d, err := s.Ledger.FailUnsent(context.Background(), id, payout.BankUnavailable)
	switch {
	case err == nil || errors.Is(err, payout.ErrNotFound):
		if err == nil {
			s.Log.Warn("bank unavailable too long; payout failed and its debit returned", "disbursement_id", id, "request_id", j.requestID,
				"merchant_id", d.MerchantID, "bank", j.ev.BankCode, "waiting_since", j.ev.UnavailableSince, "status", d.Status)
		}
		j.part.finish(j.rec.Offset)
	case errors.Is(err, ledger.ErrNotCancellable):
		if d.Status.Terminal() {
			j.part.finish(j.rec.Offset)
			return
		}
		s.park(j, time.Now().Add(s.parkDelay(j.ev.Attempt)), j.ev.Reason)
	default:
		s.Log.Warn("failing a payout for an unavailable bank failed; parking it", "disbursement_id", id, "request_id", j.requestID, "err", err)
		s.park(j, time.Now().Add(s.parkDelay(j.ev.Attempt)), j.ev.Reason)
	}
}

// unavailableUntil is when to try a payout parked because its bank is
// unavailable: when the window ends or the breaker half-opens, but no
// sooner than the payout's own backoff, so that payouts parked again and
// again thin out instead of all coming back at the same moment.
func (s *Stage) unavailableUntil(ue *connectors.UnavailableError, attempt int) time.Time {
	own := time.Now().Add(s.parkDelay(attempt))
	if ue.Until.After(own) {
		return ue.Until
	}
	return own
}

// parkDelay is how long a payout parked for the attempt-th time waits.
func (s *Stage) parkDelay(attempt int) time.Duration {
	b := retry.Backoff{Base: s.ParkBackoff.Base, Max: s.ParkBackoff.Max}
	return s.ParkBackoff.Base/2 + b.Delay(attempt)
}

// park writes the payout to the retry topic with a not-before time. The
// record it came from is finished only once the copy is acknowledged, so a
// crash in between redelivers it (a second copy is harmless: the lease and
// the status guard make the later one a no-op).
func (s *Stage) park(j *job, until time.Time, reason string) {
	ev := j.ev
	ev.NotBefore = until.UTC()
	ev.Attempt++
	ev.Reason = reason
	if unavailableReasons[reason] && ev.UnavailableSince.IsZero() {
		ev.UnavailableSince = time.Now().UTC()
	}
	bank := connectors.HostOf(ev.BankCode)
	parkedTotal.WithLabelValues(ev.Environment, bank, reason).Inc()
	s.Log.Info("payout parked", "disbursement_id", ev.DisbursementID, "request_id", j.requestID, "merchant_id", ev.MerchantID,
		"environment", ev.Environment, "bank", bank, "reason", reason, "until", ev.NotBefore, "attempt", ev.Attempt)
	s.jobs.Add(1)
	s.produceParked(j, ev, 0)
}

func (s *Stage) produceParked(j *job, ev events.Dispatch, attempt int) {
	rec := processor.JSONRecord(s.Topics.DispatchRetry, ev.DisbursementID, ev)
	if j.requestID != "" {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: processor.RequestIDHeader, Value: []byte(j.requestID)})
	}
	s.Kafka.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
		if err == nil {
			j.part.finish(j.rec.Offset)
			s.jobs.Done()
			return
		}
		select {
		case <-s.stopping:
			s.jobs.Done() // left unfinished: it comes again
			return
		default:
		}
		if j.part.isRevoked() {
			s.jobs.Done()
			return
		}
		s.Log.Warn("parking failed; retrying", "disbursement_id", ev.DisbursementID, "request_id", j.requestID, "err", err)
		go func() {
			time.Sleep(retry.Backoff{Base: 100 * time.Millisecond, Max: 5 * time.Second}.Delay(attempt))
			s.produceParked(j, ev, attempt+1)
		}()
	})
}

// waitQueue holds parked payouts read back before their time, earliest
// first.
type waitQueue struct {
	mu   sync.Mutex
	h    jobHeap
	wake chan struct{}
}

func newWaitQueue() *waitQueue { return &waitQueue{wake: make(chan struct{}, 1)} }

func (q *waitQueue) push(j *job) {
	q.mu.Lock()
	heap.Push(&q.h, j)
	waitingGauge.Set(float64(len(q.h)))
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *waitQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.h)
}

// due pops every job due at now, and says when the next one is due.
func (q *waitQueue) due(now time.Time) ([]*job, time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*job
	for len(q.h) > 0 && !q.h[0].ev.NotBefore.After(now) {
		out = append(out, heap.Pop(&q.h).(*job))
	}
	waitingGauge.Set(float64(len(q.h)))
	if len(q.h) == 0 {
		return out, time.Time{}
	}
	return out, q.h[0].ev.NotBefore
}

type jobHeap []*job

func (h jobHeap) Len() int           { return len(h) }
func (h jobHeap) Less(i, k int) bool { return h[i].ev.NotBefore.Before(h[k].ev.NotBefore) }
func (h jobHeap) Swap(i, k int)      { h[i], h[k] = h[k], h[i] }
func (h *jobHeap) Push(x any)        { *h = append(*h, x.(*job)) }
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	*h = old[:len(old)-1]
	return j
}

// redrive routes parked payouts when they fall due, until the stage stops.
func (s *Stage) redrive() {
	for {
		jobs, next := s.waiting.due(time.Now())
		for len(jobs) > 0 {
			n := min(len(jobs), 500)
			s.route(jobs[:n])
			jobs = jobs[n:]
		}
		wait := time.Second
		if !next.IsZero() {
			wait = min(wait, max(time.Until(next), time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-s.stopping:
			t.Stop()
			return
		case <-s.waiting.wake:
		case <-t.C:
		}
		t.Stop()
	}
}
