package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/connectors/banksim"
	"github.com/disburse/disburse/connectors/httpbank"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/reports"
	"github.com/disburse/disburse/schemas/events"
)

const testOperatorToken = "op-test-token-0123456789"

// pipeline is the whole service in the test process: the API on httptest,
// both stages, the sandbox banks over HTTP, on a fresh database.
type pipeline struct {
	pool    *pgxpool.Pool
	topics  events.Topics
	kafka   *kgo.Client
	bank    *banksim.Server
	api     *httptest.Server
	reports *reports.Store
	key     string // sandbox key of merchant m1
	stopped bool
	stop    func()
}

// fastBanks are sandbox banks quick enough for tests but still variable.
func fastBanks() banksim.Options {
	return banksim.Options{
		Latency:       banksim.Latency{Median: 5 * time.Millisecond, P99: 40 * time.Millisecond},
		Hang:          3 * time.Second,
		CompleteDelay: 300 * time.Millisecond,
		ReturnDelay:   600 * time.Millisecond,
	}
}

// kfakeBrokers starts franz-go's in-process broker.
func kfakeBrokers(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func startPipeline(t *testing.T, brokers []string, prefix string) *pipeline {
	t.Helper()
	ctx := context.Background()
	pool, _ := fixture.Postgres(t)
	p := &pipeline{pool: pool, topics: events.NewTopics(prefix)}
	p.key = fixture.Merchant(t, pool, "m1", 1_000_000_000, api.DefaultSettings)

	var err error
	p.kafka, err = processor.NewClient(brokers)
	if err != nil {
		t.Fatal(err)
	}
	if err := processor.EnsureTopics(ctx, p.kafka, 4, p.topics.All()...); err != nil {
		t.Fatal(err)
	}
	p.bank = banksim.New(fastBanks())
	bankSrv := httptest.NewServer(p.bank.Handler())

	stageCtx, cancel := context.WithCancel(ctx)
	var st stages
	p.reports = fixture.Reports(t)
	deps := stageDeps{brokers: brokers, pool: pool, groupPrefix: prefix, topics: p.topics,
		bank: httpbank.New(bankSrv.URL, httpbank.WithTimeout(time.Second)), reports: p.reports}
	for _, name := range stageNames {
		if err := st.start(stageCtx, name, deps); err != nil {
			t.Fatal(err)
		}
	}
	apiServer := newAPIServer(pool, p.kafka, p.topics, testOperatorToken)
	apiServer.Reports = p.reports
	p.api = httptest.NewServer(apiServer.Handler())
	p.stop = func() {
		if p.stopped {
			return
		}
		p.stopped = true
		p.api.Close()
		cancel()
		if err := st.wait(); err != nil {
			t.Errorf("stages: %v", err)
		}
		bankSrv.Close()
		p.kafka.Close()
	}
	t.Cleanup(p.stop)
	return p
}

// call makes an API request with the key and returns status and decoded body.
func call(t *testing.T, base, key, method, path string, headers map[string]string, body any) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && json.Unmarshal(raw, &out) != nil {
		t.Fatalf("%s %s: answer is not JSON: %q", method, path, raw)
	}
	return resp.StatusCode, out, resp.Header
}

func payoutBody(ref, account string, amount int64) map[string]any {
	return map[string]any{"reference_id": ref, "bank_code": "bca", "account_number": account, "amount": amount, "description": "test payout"}
}

// waitStatus polls a payout until it is terminal or the deadline passes.
func waitStatus(t *testing.T, base, key, id string, want string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last map[string]any
	for time.Now().Before(deadline) {
		_, d, _ := call(t, base, key, "GET", "/v1/disbursements/"+id, nil, nil)
		last = d
		if s, _ := d["status"].(string); s == want {
			return d
		} else if s == "COMPLETED" || s == "FAILED" || s == "REVERSED" {
			if want != "REVERSED" || s != "COMPLETED" {
				t.Fatalf("payout %s ended %s (%v), want %s", id, s, d["failure_code"], want)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("payout %s did not reach %s in time; last %v", id, want, last)
	return nil
}

// endOffsets sums the end offsets of a topic: how many records it ever got.
func endOffsets(t *testing.T, cl *kgo.Client, topic string) int64 {
	t.Helper()
	offs, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	offs.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func mustNumber(t *testing.T, m map[string]any, field string) int64 {
	t.Helper()
	f, ok := m[field].(float64)
	if !ok {
		t.Fatalf("field %s missing in %v", field, m)
	}
	return int64(f)
}

var _ = fmt.Sprintf

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
