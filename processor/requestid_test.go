package processor_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
)

// TestProduceCarriesRequestID: records produced under a context with the
// API's request id carry it as a header; others carry none.
func TestProduceCarriesRequestID(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	brokers := testenv.Kafka(t)
	topic := testenv.TopicPrefix(t) + "rid"
	cl, err := processor.NewClient(brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := processor.EnsureTopics(ctx, cl, 1, topic); err != nil {
		t.Fatal(err)
	}
	if err := processor.Produce(payout.WithRequestID(ctx, "rid-7"), cl, &kgo.Record{Topic: topic, Value: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if err := processor.Produce(ctx, cl, &kgo.Record{Topic: topic, Value: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	cons, err := processor.NewClient(brokers, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := map[string]string{}
	for len(got) < 2 {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = processor.RequestIDOf(r) })
	}
	if got["a"] != "rid-7" || got["b"] != "" {
		t.Fatalf("request_id headers = %v, want a: rid-7, b: none", got)
	}
}

// TestStatusEventNamesThePayout: a status record carries the payout's id
// as its disbursement_id header (it is keyed by merchant).
func TestStatusEventNamesThePayout(t *testing.T) {
	r := processor.StatusEvent("status", payout.Disbursement{ID: "dsb_1", MerchantID: "m1", Status: payout.Completed})
	if len(r.Headers) != 1 || r.Headers[0].Key != processor.DisbursementIDHeader || string(r.Headers[0].Value) != "dsb_1" {
		t.Fatalf("headers %v", r.Headers)
	}
}
