package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCommitPoint: a partition commits only up to its lowest unfinished
// record, whatever order records finish in.
func TestCommitPoint(t *testing.T) {
	tr := newTracker(context.Background())
	var p *partition
	for off := int64(10); off < 15; off++ {
		r := &kgo.Record{Topic: "d", Partition: 0, Offset: off}
		p = tr.get(r)
		p.track(r)
	}
	want := func(offset int64, ok bool) {
		t.Helper()
		o, got := p.commitPoint()
		if got != ok || (ok && o.Offset != offset) {
			t.Fatalf("commit point %d %v, want %d %v", o.Offset, got, offset, ok)
		}
	}
	want(10, true)
	p.finish(12)
	p.finish(11)
	want(10, true) // 10 still unfinished
	p.finish(10)
	want(13, true)
	p.markCommitted(13)
	want(0, false) // nothing new
	p.finish(14)
	want(13, false)
	p.finish(13)
	want(15, true)
	if n := tr.outstanding("d"); n != 0 {
		t.Errorf("%d outstanding, want 0", n)
	}
}

// TestRemoveWaitsForRunningJobs: revoking a partition stops new jobs,
// waits for running ones and returns the finished part to commit.
func TestRemoveWaitsForRunningJobs(t *testing.T) {
	tr := newTracker(context.Background())
	r0 := &kgo.Record{Topic: "d", Partition: 3, Offset: 0}
	r1 := &kgo.Record{Topic: "d", Partition: 3, Offset: 1}
	p := tr.get(r0)
	p.track(r0)
	p.track(r1)
	if !p.begin() {
		t.Fatal("begin refused on a live partition")
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		p.finish(0)
		p.end()
	}()
	final := tr.remove(map[string][]int32{"d": {3}}, time.Second)
	if o := final["d"][3]; o.Offset != 1 {
		t.Errorf("final commit %v, want offset 1 (record 1 unfinished)", final)
	}
	if p.begin() {
		t.Error("a job started on a revoked partition")
	}
	if p.ctx.Err() == nil {
		t.Error("the revoked partition's context is still live")
	}
}
