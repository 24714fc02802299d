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
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas/events"
)

// job is one dispatch record on its way through a lane.
type job struct {
	rec  *kgo.Record
	ev   events.Dispatch
	part *partition
}

// lane is one called bank's queue and workers: at most the bank's
// MaxInFlight payouts are worked on at once, and at most LaneQueue wait.
type lane struct {
	bank  string
	queue chan *job
}

// defaultLaneQueue is how many payouts of one bank may wait in memory for a
// worker. A large batch to a few banks then keeps every worker busy from
// memory; only beyond it (a bank far slower than its share of the traffic)
// are payouts parked on the retry topic, where each costs a produce and a
// re-read. MaxOutstanding bounds the total.
const defaultLaneQueue = 512

func (s *Stage) lane(bank string) *lane {
	s.lanesMu.Lock()
	defer s.lanesMu.Unlock()
	if l := s.lanes[bank]; l != nil {
		return l
	}
	p := s.Bank.Profile(bank)
	depth := s.LaneQueue
	if depth <= 0 {
		depth = defaultLaneQueue
	}
	l := &lane{bank: bank, queue: make(chan *job, depth)}
	s.lanes[bank] = l
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
			laneQueue.WithLabelValues(l.bank).Dec()
			select {
			case <-s.stopping:
				return // left unfinished: it comes again after the restart
			default:
			}
			s.run(j)
		}
	}
}

// accept takes a polled record: a parked one not yet due waits in memory,
// anything else goes to its bank's lane.
func (s *Stage) accept(r *kgo.Record) {
	part := s.tracker.get(r)
	var ev events.Dispatch
	if err := json.Unmarshal(r.Value, &ev); err != nil || ev.DisbursementID == "" {
		s.Log.Error("skipping malformed dispatch record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
		part.finish(r.Offset)
		return
	}
	j := &job{rec: r, ev: ev, part: part}
	if time.Now().Before(ev.NotBefore) {
		s.waiting.push(j)
		return
	}
	s.route(j)
}

// route puts a due payout in its bank's lane, or parks it when the bank is
// closed, its breaker open or its lane full. It never blocks.
func (s *Stage) route(j *job) {
	if j.part.isRevoked() {
		return
	}
	var ue *connectors.UnavailableError
	if err := s.Bank.Admit(j.ev.BankCode); errors.As(err, &ue) {
		s.park(j, s.unavailableUntil(ue, j.ev.Attempt), ue.Reason)
		return
	}
	bank := connectors.HostOf(j.ev.BankCode)
	l := s.lane(bank)
	select {
	case l.queue <- j:
		laneQueue.WithLabelValues(bank).Inc()
	default:
		s.park(j, time.Now().Add(s.parkDelay(j.ev.Attempt)), reasonLaneFull)
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
	bank := connectors.HostOf(ev.BankCode)
	parkedTotal.WithLabelValues(bank, reason).Inc()
	s.Log.Info("payout parked", "disbursement_id", ev.DisbursementID, "merchant_id", ev.MerchantID,
		"bank", bank, "reason", reason, "until", ev.NotBefore, "attempt", ev.Attempt)
	s.jobs.Add(1)
	s.produceParked(j, ev, 0)
}

func (s *Stage) produceParked(j *job, ev events.Dispatch, attempt int) {
	rec := processor.JSONRecord(s.Topics.DispatchRetry, ev.DisbursementID, ev)
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
		s.Log.Warn("parking failed; retrying", "disbursement_id", ev.DisbursementID, "err", err)
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
		for _, j := range jobs {
			s.route(j)
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
