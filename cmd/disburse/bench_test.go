package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
)

// TestBenchCommand runs `disburse bench` on a tiny scenario against the
// real services (stages in process, the reports in the test process's
// ClickHouse engine): it must finish, print the documented JSON keys with
// figures that add up, and find the books in order.
func TestBenchCommand(t *testing.T) {
	pgURL := testenv.Postgres(t) // a database of the server; the bench makes its own
	brokers := testenv.Kafka(t)
	rs := fixture.Reports(t)
	c, err := parseBench([]string{"--postgres-url", pgURL, "--kafka-brokers", brokers[0],
		"--merchants", "2", "--batch-items", "200", "--singles", "20", "--clients", "8",
		"--bank-profiles", "../../deploy/profiles/fast.yaml", "--partitions", "4", "--json", "--timeout", "50s"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := benchWith(context.Background(), c, rs.Engine(), &out); err != nil {
		t.Fatalf("bench: %v\n%s", err, out.String())
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out.String())
	}
	for _, k := range []string{"items", "accept_seconds", "terminal_seconds", "completed_per_second", "callbacks_seconds",
		"baseline_completed_per_second", "ratio", "debited_per_second", "legs", "processes", "pg_commits_per_payout",
		"kafka_records_per_payout", "books_ok", "reports_seconds"} {
		if _, ok := got[k]; !ok {
			t.Errorf("JSON has no %q", k)
		}
	}
	if got["items"] != float64(2*(200+20)) || got["completed"] != float64(440) || got["bank_transfers"] != float64(440) {
		t.Errorf("items %v, completed %v, bank transfers %v; want 440 each", got["items"], got["completed"], got["bank_transfers"])
	}
	if got["books_ok"] != true || got["bank_duplicates"] != float64(0) || got["callbacks_batches"] != float64(2) {
		t.Errorf("books: ok %v, duplicates %v, batch callbacks %v, problems %v", got["books_ok"], got["bank_duplicates"], got["callbacks_batches"], got["books_problems"])
	}
	acc, term, cb := got["accept_seconds"].(float64), got["terminal_seconds"].(float64), got["callbacks_seconds"].(float64)
	if !(acc > 0 && term >= acc && cb >= term) || got["completed_per_second"].(float64) <= 0 {
		t.Errorf("accept %vs, terminal %vs, callbacks %vs, completed/s %v: not in order", acc, term, cb, got["completed_per_second"])
	}
	legs := got["legs"].(map[string]any)
	for _, l := range legOrder {
		q, _ := legs[l.name].(map[string]any)
		if q == nil || q["count"] != float64(440) {
			t.Errorf("leg %s: %v, want 440 samples", l.name, q)
		}
	}
	if got["pg_commits_per_payout"].(float64) <= 0 || got["kafka_records_per_payout"].(float64) < 3 {
		t.Errorf("commits per payout %v, records per payout %v", got["pg_commits_per_payout"], got["kafka_records_per_payout"])
	}
}
