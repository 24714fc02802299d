package reports_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/schemas/events"
)

// BenchmarkInsertStatus measures the sink's write path: one batch of 5,000
// new status events (the sink's batch size), with the look-up of events
// already stored. Reports events per second.
func BenchmarkInsertStatus(b *testing.B) {
	st := fixture.Reports(b)
	ctx := context.Background()
	const batch = 5000
	at := time.Now().UTC()
	n := 0
	for b.Loop() {
		evs := make([]events.Status, batch)
		for i := range evs {
			n++
			evs[i] = events.Status{DisbursementID: fmt.Sprintf("dsb_%09d", n), MerchantID: fmt.Sprintf("m%d", n%20),
				Environment: "production", ReferenceID: "r", BankCode: "bca", Amount: 150000, Fee: 2500,
				Currency: "IDR", Status: "COMPLETED", Version: 3, At: at, CreatedAt: at}
		}
		if got, err := st.InsertStatus(ctx, evs); err != nil || got != batch {
			b.Fatalf("inserted %d, %v", got, err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
