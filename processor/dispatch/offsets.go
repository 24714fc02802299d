package dispatch

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/processor"
)

// partition tracks the records of one assigned topic partition that are
// not finished yet, so that its offset is committed only up to the lowest
// unfinished one: a payout finishes out of order (another bank, a slow one),
// and a crash must redeliver every payout not yet finished.
type partition struct {
	topic string
	id    int32

	// ctx ends when the partition is revoked (after a grace period): the
	// jobs of a partition this instance no longer owns stop at their next
	// step and are left to the new owner.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	offsets   []int64 // tracked offsets, in order
	done      map[int64]bool
	next      int64 // one past the highest offset tracked
	epoch     int32
	committed int64
	closing   bool           // being revoked: no job may start
	revoked   bool           // revoked: nothing more is tracked or committed
	running   sync.WaitGroup // jobs started and not finished
}

// track registers a polled record as unfinished.
func (p *partition) track(r *kgo.Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.offsets = append(p.offsets, r.Offset)
	p.next = r.Offset + 1
	p.epoch = r.LeaderEpoch
}

// finish marks an offset finished.
func (p *partition) finish(offset int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.revoked {
		return
	}
	p.done[offset] = true
	processor.CountFinished("dispatch", 1)
	for len(p.offsets) > 0 && p.done[p.offsets[0]] {
		delete(p.done, p.offsets[0])
		p.offsets = p.offsets[1:]
	}
}

// commitPoint is the offset to commit: the lowest unfinished one, or one past
// the last when all are finished; ok is false when nothing new.
func (p *partition) commitPoint() (kgo.EpochOffset, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := p.next
	if len(p.offsets) > 0 {
		at = p.offsets[0]
	}
	if p.revoked || at <= p.committed {
		return kgo.EpochOffset{}, false
	}
	return kgo.EpochOffset{Epoch: p.epoch, Offset: at}, true
}

func (p *partition) markCommitted(o int64) {
	p.mu.Lock()
	p.committed = max(p.committed, o)
	p.mu.Unlock()
}

// outstanding is the number of unfinished records.
func (p *partition) outstanding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.offsets)
}

// begin registers a job as started; false when the partition is revoked
// (the job is dropped unfinished, for the new owner to redo).
func (p *partition) begin() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing || p.revoked {
		return false
	}
	p.running.Add(1)
	return true
}

func (p *partition) end() { p.running.Done() }

func (p *partition) isRevoked() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closing || p.revoked
}

// tracker holds the assigned partitions.
type tracker struct {
	mu    sync.Mutex
	parts map[string]map[int32]*partition
	base  context.Context
}

func newTracker(base context.Context) *tracker {
	return &tracker{parts: map[string]map[int32]*partition{}, base: base}
}

// get returns the tracked partition of r, creating it on first sight.
func (t *tracker) get(r *kgo.Record) *partition {
	t.mu.Lock()
	defer t.mu.Unlock()
	ps := t.parts[r.Topic]
	if ps == nil {
		ps = map[int32]*partition{}
		t.parts[r.Topic] = ps
	}
	p := ps[r.Partition]
	if p == nil {
		ctx, cancel := context.WithCancel(t.base)
		p = &partition{topic: r.Topic, id: r.Partition, ctx: ctx, cancel: cancel, done: map[int64]bool{}, committed: -1}
		ps[r.Partition] = p
	}
	return p
}

// commitPoints is what may be committed now, across partitions.
func (t *tracker) commitPoints() (map[string]map[int32]kgo.EpochOffset, []*partition) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]map[int32]kgo.EpochOffset{}
	var parts []*partition
	for topic, ps := range t.parts {
		for id, p := range ps {
			if o, ok := p.commitPoint(); ok {
				if out[topic] == nil {
					out[topic] = map[int32]kgo.EpochOffset{}
				}
				out[topic][id] = o
				parts = append(parts, p)
			}
		}
	}
	return out, parts
}

// outstanding counts unfinished records per topic.
func (t *tracker) outstanding(topic string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, p := range t.parts[topic] {
		n += p.outstanding()
	}
	return n
}

// remove stops tracking the partitions: no job of theirs starts any more,
// the running ones get grace to finish and are then told to stop, and once
// all have returned the partitions' last commit points are returned.
func (t *tracker) remove(lost map[string][]int32, grace time.Duration) map[string]map[int32]kgo.EpochOffset {
	t.mu.Lock()
	var gone []*partition
	for topic, ids := range lost {
		for _, id := range ids {
			if p := t.parts[topic][id]; p != nil {
				gone = append(gone, p)
				delete(t.parts[topic], id)
			}
		}
	}
	t.mu.Unlock()
	for _, p := range gone {
		p.mu.Lock()
		p.closing = true
		p.mu.Unlock()
	}
	final := map[string]map[int32]kgo.EpochOffset{}
	for _, p := range gone {
		waited := make(chan struct{})
		go func() { p.running.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(grace):
			p.cancel()
			<-waited
		}
		p.cancel()
		if o, ok := p.commitPoint(); ok {
			if final[p.topic] == nil {
				final[p.topic] = map[int32]kgo.EpochOffset{}
			}
			final[p.topic][p.id] = o
		}
		p.mu.Lock()
		p.revoked = true
		p.mu.Unlock()
	}
	return final
}

// all returns every tracked partition, for shutdown.
func (t *tracker) all() map[string][]int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string][]int32{}
	for topic, ps := range t.parts {
		for id := range ps {
			out[topic] = append(out[topic], id)
		}
	}
	return out
}
