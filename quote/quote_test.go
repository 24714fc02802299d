package quote

import (
	"testing"
	"time"

	"github.com/disburse/disburse/batch"
	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/payout"
)

func TestEstimate(t *testing.T) {
	// 10:00 Jakarta on a Monday.
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, connectors.Jakarta)
	open := connectors.Profile{RateLimit: 100}
	cases := []struct {
		name    string
		p       connectors.Profile
		n       int
		breaker bool
		want    time.Time
	}{
		{"one item", open, 1, false, start.Add(10 * time.Millisecond)},
		{"within the first minute", open, 3000, false, start.Add(30 * time.Second)},
		{"several minutes", open, 12000, false, start.Add(2 * time.Minute)},
		{"breaker open", open, 100, true, start.Add(time.Minute + time.Second)},
		{"in a window now", connectors.Profile{RateLimit: 100, Windows: []connectors.Window{{Kind: connectors.WindowMaintenance, Start: "09:30", End: "10:30"}}},
			100, false, start.Add(30*time.Minute + time.Second)},
		{"a cut-off crossed while sending", connectors.Profile{RateLimit: 1, Windows: []connectors.Window{{Kind: connectors.WindowCutOff, Start: "10:01", End: "11:00"}}},
			90, false, start.Add(60*time.Minute + 30*time.Second)}, // 60 sent by 10:01, 30 after 11:00
		{"a window on another weekday only", connectors.Profile{RateLimit: 100, Windows: []connectors.Window{{Kind: connectors.WindowMaintenance, Start: "09:00", End: "11:00", Days: []time.Weekday{time.Sunday}}}},
			100, false, start.Add(time.Second)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Estimate(c.p, c.n, start, c.breaker); !got.Equal(c.want) {
				t.Fatalf("got %s, want %s", got.In(connectors.Jakarta), c.want)
			}
		})
	}
}

func TestBuildAndDigest(t *testing.T) {
	item := func(row int, ref, bank string, amount int64) batch.Item {
		return batch.Item{Row: row, Request: payout.Request{ReferenceID: ref, BankCode: bank, AccountNumber: "081234567890", Amount: amount, Currency: "IDR"}}
	}
	p := &batch.Parsed{Header: batch.Header{ReferenceID: "b", Mode: batch.Partial}, Rows: 5, InvalidRows: 1,
		Items: []batch.Item{item(1, "a", "bca", 100_000), item(2, "b", "ovo", 50_000), item(3, "c", "bca", 2_000_000), item(5, "d", "bni", 10_000)}}
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	q := Build(p, Inputs{Fees: Fees{Flat: 1000, BPS: 100, MaxPerPayout: 1_000_000}, Balance: Balance{Billing: "deposit", Available: 2_000_000},
		Duplicates: map[string]batch.Duplicate{"d": {ReferenceID: "d", DisbursementID: "dsb_x", Status: "COMPLETED"}},
		Profiles:   connectors.DefaultProfiles(), Breakers: map[string]string{"bca": "open"}, Now: now})
	if !q.Acceptable || q.ItemCount != 3 || q.DuplicateCount != 1 || q.Duplicates[0].Row != 5 || q.OverLimitCount != 1 {
		t.Fatalf("quote %+v", q)
	}
	if q.TotalAmount != 2_150_000 || q.TotalFee != 3000+21_500 || q.TotalDebit != q.TotalAmount+q.TotalFee {
		t.Fatalf("totals %d + %d = %d", q.TotalAmount, q.TotalFee, q.TotalDebit)
	}
	if q.Balance.Covers || q.Balance.Shortfall != q.TotalDebit-2_000_000 {
		t.Fatalf("balance %+v", q.Balance)
	}
	if len(q.Banks) != 2 || q.Banks[0].BankCode != "bca" || q.Banks[0].Count != 2 || q.Banks[0].Available || q.Banks[0].Breaker != "open" {
		t.Fatalf("banks %+v", q.Banks)
	}
	if q.ExpectedCompletion == nil || !q.ExpectedCompletion.Equal(q.Banks[0].ExpectedCompletion) || !q.Banks[0].ExpectedCompletion.After(now.Add(time.Minute)) {
		t.Fatalf("expected completion %v, banks %+v", q.ExpectedCompletion, q.Banks)
	}

	// The digest changes with anything a batch would pay differently.
	base := Digest(p)
	changed := *p
	changed.Items = append([]batch.Item(nil), p.Items...)
	changed.Items[1].Amount++
	mode := *p
	mode.Header.Mode = batch.AllOrNothing
	for name, other := range map[string]*batch.Parsed{"amount": &changed, "mode": &mode} {
		if string(Digest(other)) == string(base) {
			t.Errorf("digest ignores the %s", name)
		}
	}

	// all_or_nothing with an invalid row pays nothing.
	q = Build(&mode, Inputs{Profiles: connectors.DefaultProfiles(), Now: now})
	if q.Acceptable || q.ItemCount != 0 || q.ExpectedCompletion != nil || !q.Balance.Covers {
		t.Fatalf("unacceptable quote %+v", q)
	}
}

func TestBuildStartsAtScheduledAt(t *testing.T) {
	p := &batch.Parsed{Header: batch.Header{ReferenceID: "b", Mode: batch.AllOrNothing}, Rows: 1,
		Items: []batch.Item{{Row: 1, Request: payout.Request{ReferenceID: "a", BankCode: "bca", AccountNumber: "1234567890", Amount: 10_000, Currency: "IDR"}}}}
	now := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	// 23:55 Jakarta: inside BCA's maintenance window (23:50 to 00:10).
	start := time.Date(2026, 12, 7, 23, 55, 0, 0, connectors.Jakarta)
	q := Build(p, Inputs{Profiles: connectors.DefaultProfiles(), Breakers: map[string]string{"bca": "open"}, Now: now, Start: start})
	b := q.Banks[0]
	if b.ClosedUntil == nil || !b.ExpectedCompletion.After(start.Add(15*time.Minute)) || b.ExpectedCompletion.After(start.Add(16*time.Minute)) {
		t.Fatalf("a batch scheduled into a window: %+v", b)
	}
}
