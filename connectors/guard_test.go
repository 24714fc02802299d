package connectors

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
)

func TestBreakerConfig(t *testing.T) {
	st := BreakerConfig("bca", BreakerSettings{Window: 10 * time.Second, Buckets: 5, MinRequests: 10, FailureRatio: 0.5, OpenFor: 3 * time.Second, HalfOpenProbes: 2}, nil)
	if st.BucketPeriod != 2*time.Second || st.Interval != 10*time.Second || st.MaxRequests != 2 || st.Timeout != 3*time.Second {
		t.Errorf("settings %+v", st)
	}
	trip := []struct {
		ok, failed uint32
		want       bool
	}{
		{0, 9, false}, // too few counted
		{5, 5, true},  // ratio reached
		{6, 4, false}, // below the ratio
		{0, 10, true},
		{90, 10, false},
	}
	for _, c := range trip {
		got := st.ReadyToTrip(gobreaker.Counts{Requests: c.ok + c.failed, TotalSuccesses: c.ok, TotalFailures: c.failed})
		if got != c.want {
			t.Errorf("ReadyToTrip(%d ok, %d failed) = %v, want %v", c.ok, c.failed, got, c.want)
		}
	}
	if !st.IsExcluded(errExcluded) || st.IsExcluded(errors.New("boom")) {
		t.Errorf("IsExcluded does not single out excluded outcomes")
	}
}

func TestClassify(t *testing.T) {
	live := context.Background()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	notSent := fmt.Errorf("%w: 503", ErrNotSent)
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want string // success, excluded, failure
	}{
		{"answer", live, nil, "success"},
		{"unknown reference is an answer", live, ErrUnknownReference, "success"},
		{"bad statement cursor is an answer", live, ErrBadCursor, "success"},
		{"not sent (503, refused)", live, notSent, "failure"},
		{"timeout", live, context.DeadlineExceeded, "failure"},
		{"429", live, fmt.Errorf("%w %w", ErrNotSent, ErrRateLimited), "excluded"},
		{"unknown bank", live, ErrUnknownBank, "excluded"},
		{"caller gave up", gone, context.Canceled, "excluded"},
	}
	for _, tt := range tests {
		got := "failure"
		switch err := classify(tt.ctx, tt.err); {
		case err == nil:
			got = "success"
		case errors.Is(err, errExcluded):
			got = "excluded"
		}
		if got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// fakeBank answers transfers with err after delay, counting calls in flight.
type fakeBank struct {
	err      error
	delay    time.Duration
	cur, top atomic.Int32
	calls    atomic.Int32
}

func (f *fakeBank) Transfer(ctx context.Context, req TransferRequest) (Result, error) {
	f.calls.Add(1)
	n := f.cur.Add(1)
	defer f.cur.Add(-1)
	for {
		t := f.top.Load()
		if n <= t || f.top.CompareAndSwap(t, n) {
			break
		}
	}
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	if f.err != nil {
		return Result{}, f.err
	}
	return Result{Reference: req.Reference, Status: StatusCompleted}, nil
}
func (f *fakeBank) Status(ctx context.Context, bank, ref string) (Result, error) {
	return Result{}, f.err
}
func (f *fakeBank) Statement(ctx context.Context, bank string, q StatementQuery) (StatementPage, error) {
	f.calls.Add(1)
	if f.err != nil {
		return StatementPage{}, f.err
	}
	return StatementPage{Next: q.After}, nil
}
func (f *fakeBank) Inquire(ctx context.Context, bank, acct string) (Inquiry, error) {
	f.calls.Add(1)
	return Inquiry{BankCode: bank, AccountNumber: acct, Status: InquiryValid, AccountHolderName: "BUDI"}, f.err
}

func guardProfiles() Profiles {
	ps := DefaultProfiles()
	p := ps["bca"]
	p.MaxInFlight, p.RateLimit, p.Timeout = 2, 0, time.Second
	p.Breaker = BreakerSettings{Window: 10 * time.Second, Buckets: 10, MinRequests: 4, FailureRatio: 0.5, OpenFor: 200 * time.Millisecond, HalfOpenProbes: 1}
	p.Windows = nil
	ps["bca"] = p
	return ps
}

func TestGuardBreakerOpensAndRecovers(t *testing.T) {
	bank := &fakeBank{err: fmt.Errorf("%w: connection refused", ErrNotSent)}
	g := NewGuard(bank, guardProfiles(), nil)
	ctx := context.Background()
	for range 4 {
		_, _ = g.Transfer(ctx, TransferRequest{Reference: "r", BankCode: "ovo"}) // an e-wallet counts at its host bank
	}
	if s := g.State("bca").Breaker; s != "open" {
		t.Fatalf("breaker %s after 4 failures, want open", s)
	}
	var ue *UnavailableError
	if _, err := g.Transfer(ctx, TransferRequest{Reference: "r", BankCode: "bca"}); !errors.As(err, &ue) || ue.Reason != ReasonBreakerOpen || !errors.Is(err, ErrNotSent) {
		t.Fatalf("transfer with the breaker open: %v", err)
	}
	if n := bank.calls.Load(); n != 4 {
		t.Errorf("the bank got %d calls, want 4 (none while open)", n)
	}
	time.Sleep(250 * time.Millisecond)
	bank.err = nil
	if _, err := g.Transfer(ctx, TransferRequest{Reference: "r", BankCode: "bca"}); err != nil {
		t.Fatalf("half-open probe: %v", err)
	}
	if s := g.State("bca").Breaker; s != "closed" {
		t.Errorf("breaker %s after a good probe, want closed", s)
	}
	// Cancelled calls do not count.
	bank.delay = time.Second
	for range 6 {
		c, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		_, _ = g.Transfer(c, TransferRequest{Reference: "r", BankCode: "bca"})
		cancel()
	}
	if s := g.State("bca").Breaker; s != "closed" {
		t.Errorf("breaker %s after cancelled calls, want closed", s)
	}
}

func TestGuardBulkhead(t *testing.T) {
	bank := &fakeBank{delay: 50 * time.Millisecond}
	g := NewGuard(bank, guardProfiles(), nil)
	done := make(chan struct{})
	for range 8 {
		go func() {
			_, _ = g.Transfer(context.Background(), TransferRequest{Reference: "r", BankCode: "bca"})
			done <- struct{}{}
		}()
	}
	for range 8 {
		<-done
	}
	if top := bank.top.Load(); top != 2 {
		t.Errorf("%d calls in flight at once, want the profile's 2", top)
	}
}

func TestGuardWindow(t *testing.T) {
	ps := guardProfiles()
	p := ps["bca"]
	p.Windows = []Window{{Kind: WindowMaintenance, Start: "23:50", End: "00:10"}}
	ps["bca"] = p
	at := time.Date(2025, 3, 4, 23, 55, 0, 0, Jakarta)
	g := NewGuard(&fakeBank{}, ps, func() time.Time { return at })
	var ue *UnavailableError
	if err := g.Admit("gopay"); !errors.As(err, &ue) || ue.Reason != ReasonMaintenance || !ue.Until.Equal(time.Date(2025, 3, 5, 0, 10, 0, 0, Jakarta)) {
		t.Fatalf("Admit in the window: %v", err)
	}
	at = time.Date(2025, 3, 5, 0, 10, 0, 0, Jakarta)
	if err := g.Admit("bca"); err != nil {
		t.Fatalf("Admit after the window: %v", err)
	}
}

func TestClosedUntil(t *testing.T) {
	p := Profile{Windows: []Window{
		{Kind: WindowMaintenance, Start: "23:45", End: "00:15"},
		{Kind: WindowCutOff, Start: "22:00", End: "23:00", Days: []time.Weekday{time.Friday}},
	}}
	j := func(d, h, m int) time.Time { return time.Date(2025, 3, d, h, m, 0, 0, Jakarta) } // 2025-03-07 is a Friday
	tests := []struct {
		at    time.Time
		until time.Time
	}{
		{j(7, 23, 50), j(8, 0, 15)},
		{j(8, 0, 5), j(8, 0, 15)},                                    // started the day before
		{j(8, 0, 15), time.Time{}},                                   // end is exclusive
		{j(7, 22, 30), j(7, 23, 0)},                                  // Friday cut-off
		{j(6, 22, 30), time.Time{}},                                  // not on Thursday
		{j(7, 12, 0).UTC(), time.Time{}},                             // any zone in, Jakarta decides
		{time.Date(2025, 3, 7, 16, 50, 0, 0, time.UTC), j(8, 0, 15)}, // 23:50 WIB
	}
	for _, tt := range tests {
		got, closed := p.ClosedUntil(tt.at)
		if closed != !tt.until.IsZero() || (closed && !got.Equal(tt.until)) {
			t.Errorf("ClosedUntil(%s) = %s %v, want %s", tt.at, got, closed, tt.until)
		}
	}
}

func TestDefaultProfilesValid(t *testing.T) {
	for code, p := range DefaultProfiles() {
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", code, err)
		}
	}
	if HostOf("dana") != "bni" || DefaultProfiles().For("dana").MaxInFlight != DefaultProfiles()["bni"].MaxInFlight {
		t.Errorf("an e-wallet does not use its host bank's profile")
	}
}

func TestInquiryCache(t *testing.T) {
	bank := &fakeBank{}
	c := NewInquiryCache(bank, time.Minute, 2)
	now := time.Now()
	c.now = func() time.Time { return now }
	ctx := context.Background()
	for range 3 {
		if _, err := c.Inquire(ctx, "bca", "1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := bank.calls.Load(); n != 1 {
		t.Fatalf("%d bank calls for one account asked 3 times, want 1", n)
	}
	_, _ = c.Inquire(ctx, "bca", "2")
	_, _ = c.Inquire(ctx, "bca", "3") // evicts "1", the least recently used
	_, _ = c.Inquire(ctx, "bca", "1")
	if n := bank.calls.Load(); n != 4 {
		t.Fatalf("%d bank calls, want 4 (1 evicted and asked again)", n)
	}
	now = now.Add(2 * time.Minute)
	_, _ = c.Inquire(ctx, "bca", "1")
	if n := bank.calls.Load(); n != 5 {
		t.Fatalf("%d bank calls, want 5 (expired entry asked again)", n)
	}
}

// TestGuardStatement: statement reads go through the bank's breaker (an
// open breaker refuses them without calling) and a bad cursor does not
// count as the bank's failure.
func TestGuardStatement(t *testing.T) {
	bank := &fakeBank{err: fmt.Errorf("%w: bad", ErrBadCursor)}
	g := NewGuard(bank, guardProfiles(), nil)
	ctx := context.Background()
	for range 6 {
		if _, err := g.Statement(ctx, "bca", StatementQuery{After: "x"}); !errors.Is(err, ErrBadCursor) {
			t.Fatalf("bad cursor: %v", err)
		}
	}
	if s := g.State("bca").Breaker; s != "closed" {
		t.Fatalf("breaker %s after bad cursors, want closed", s)
	}
	bank.err = fmt.Errorf("%w: connection refused", ErrNotSent)
	for range 8 { // 8 failures against the 6 answers: over the ratio
		_, _ = g.Statement(ctx, "bca", StatementQuery{})
	}
	calls := bank.calls.Load()
	var ue *UnavailableError
	if _, err := g.Statement(ctx, "ovo", StatementQuery{}); !errors.As(err, &ue) || ue.Reason != ReasonBreakerOpen {
		t.Fatalf("statement with the breaker open: %v, want breaker_open", err)
	}
	if bank.calls.Load() != calls {
		t.Errorf("the open breaker let a statement call through")
	}
}
