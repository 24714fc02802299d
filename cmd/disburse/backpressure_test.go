package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/processor/dispatch"
)

// TestDispatchBackPressureResumes: more payouts than the lanes hold park on
// the retry topic; with so many parked that the stage pauses fetching them,
// and the main topic drained, the stage must still resume and finish every
// payout (it once waited forever in a poll that could not return).
func TestDispatchBackPressureResumes(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t), func(c *pipelineConfig) {
		c.stage = func(st *dispatch.Stage) { st.MaxOutstanding, st.MaxWaiting = 100, 50 }
	})
	const n = 1500 // more than one poll (500) brings
	var csv strings.Builder
	csv.WriteString("reference_id,bank_code,account_number,amount\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&csv, "bp-%d,%s,12%07d5,%d\n", i, []string{"bca", "bni", "bri"}[i%3], i, 10_000+i)
	}
	code, acc, _ := postBatch(t, p.api.URL, p.key, "reference_id=bp", "bp", csv.String())
	if code != 202 {
		t.Fatalf("batch: %d %v", code, acc)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, b, _ := call(t, p.api.URL, p.key, "GET", "/v1/batches/"+acc["id"].(string), nil, nil)
		if b["status"] == "COMPLETED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch stalled under back-pressure: %v", b["counts"])
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE status = 'COMPLETED'`); got != n {
		t.Fatalf("%d of %d completed", got, n)
	}
	fixture.Audit(t, p.pool)
}
