package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
)

// TestBankUnavailableTooLong keeps a bank down: its payouts park behind
// its open breaker, and once they have waited past the profile's
// UnavailableLimit they fail with BANK_UNAVAILABLE and their money comes
// back, while another bank's payouts complete. None reached the down bank.
func TestBankUnavailableTooLong(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t), func(c *pipelineConfig) {
		bni := c.profiles["bni"]
		bni.UnavailableLimit = 3 * time.Second
		c.profiles["bni"] = bni
	})
	if err := p.bank.SetDown("bni", true); err != nil {
		t.Fatal(err)
	}
	before := fixture.Count(t, p.pool, `SELECT balance FROM accounts WHERE merchant_id = 'm1' AND environment = 'sandbox' AND kind = 'available'`)
	var down []string
	for i := range 30 {
		down = append(down, submit(t, p, fmt.Sprintf("down-%d", i), "bni", "1234567890", 50_000))
		submit(t, p, fmt.Sprintf("up-%d", i), "bca", "1234567890", 50_000)
	}
	waitAll(t, p, 90*time.Second)

	if got := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE id = ANY($1) AND status = 'FAILED' AND failure_code = 'BANK_UNAVAILABLE'`, down); got != len(down) {
		t.Fatalf("%d of %d payouts to the down bank failed BANK_UNAVAILABLE", got, len(down))
	}
	if got := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE bank_code = 'bca' AND status = 'COMPLETED'`); got != 30 {
		t.Fatalf("%d of 30 payouts to the other bank completed", got)
	}
	for _, id := range down {
		if n := p.bank.Received(id); n != 0 {
			t.Fatalf("the down bank received %s %d times", id, n)
		}
	}
	// Only the 30 completed payouts (and their fees) left the balance.
	after := fixture.Count(t, p.pool, `SELECT balance FROM accounts WHERE merchant_id = 'm1' AND environment = 'sandbox' AND kind = 'available'`)
	fee := fixture.Count(t, p.pool, `SELECT coalesce(max(fee), 0) FROM disbursements WHERE bank_code = 'bca'`)
	if before-after != 30*(50_000+fee) {
		t.Fatalf("available went from %d to %d; want %d less", before, after, 30*(50_000+fee))
	}
	fixture.Audit(t, p.pool)
}
