package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/disburse/disburse/internal/trace"
)

// TestPrometheusScrapesPipeline runs the pipeline (in-process Kafka), sends a
// payout with an X-Request-Id, and has a real Prometheus (Debian's package,
// installed by deploy/promtool.sh) scrape the process's /metrics with the
// rules of deploy/prometheus loaded: the recording rule of terminal payouts
// per second must yield a value. disburse trace then shows the payout with
// the request id the API was given.
func TestPrometheusScrapesPipeline(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("DISBURSE_REQUIRE_SERVICES") == "1" {
			t.Fatal("prometheus not found: run deploy/promtool.sh (DISBURSE_REQUIRE_SERVICES=1)")
		}
		t.Skip("prometheus not found: run deploy/promtool.sh")
	}
	p := startPipeline(t, kfakeBrokers(t), "prom.")
	code, d, h := call(t, p.api.URL, p.key, "POST", "/v1/disbursements",
		map[string]string{"Idempotency-Key": "k-prom", "X-Request-Id": "rid-prom-1"}, payoutBody("r-prom", "1234567890", 50_000))
	if code != 202 || h.Get("X-Request-Id") != "rid-prom-1" {
		t.Fatalf("create: %d %v, X-Request-Id %q", code, d, h.Get("X-Request-Id"))
	}
	id := d["id"].(string)
	waitStatus(t, p.api.URL, p.key, id, "COMPLETED")

	metrics := httptest.NewServer(promhttp.Handler())
	defer metrics.Close()
	dir := t.TempDir()
	rules, err := filepath.Abs("../../deploy/prometheus/disburse-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	target := strings.TrimPrefix(metrics.URL, "http://")
	config := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [%q]\nscrape_configs:\n  - job_name: disburse\n    static_configs:\n      - targets: [%q]\n", rules, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()

	// The payout's terminal observation happened before the first scrape, so
	// keep sending payouts while Prometheus scrapes: rate() needs an increase
	// between two scrapes.
	deadline := time.Now().Add(60 * time.Second)
	for n := 0; ; n++ {
		if time.Now().After(deadline) {
			t.Fatalf("disburse:payouts_terminal:rate5m yielded nothing in 60s; prometheus log:\n%s", logs.String())
		}
		code, d, _ := call(t, p.api.URL, p.key, "POST", "/v1/disbursements",
			map[string]string{"Idempotency-Key": fmt.Sprintf("k-prom-%d", n)}, payoutBody(fmt.Sprintf("r-prom-%d", n), "1234567890", 50_000))
		if code != 202 {
			t.Fatalf("create: %d %v", code, d)
		}
		waitStatus(t, p.api.URL, p.key, d["id"].(string), "COMPLETED")
		if v, ok := promQuery(addr, `disburse:payouts_terminal:rate5m{status="COMPLETED"}`); ok && v > 0 {
			t.Logf("disburse:payouts_terminal:rate5m{status=COMPLETED} = %g after %d more payouts", v, n+1)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}

	checkQueriedMetricsExported(t)

	tl, err := trace.Build(context.Background(), p.pool, id)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	_ = tl.Write(&b)
	for _, want := range []string{"X-Request-Id rid-prom-1", "status COMPLETED", "transfer call: answered", "settle entry"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("trace lacks %q:\n%s", want, b.String())
		}
	}
	// Each step names who wrote it: this process's connections are named
	// by openPostgres (role@host/pid; the test binary has no role).
	actor := fmt.Sprintf("  by %s", instanceName())
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n")[1:] {
		if (strings.Contains(line, "settle entry") || strings.Contains(line, "transfer call") || strings.Contains(line, "status COMPLETED")) &&
			!strings.HasSuffix(line, actor) {
			t.Errorf("trace step without its actor %q: %s", actor, line)
		}
	}
}

// promQuery runs an instant query and returns the first sample's value.
func promQuery(addr, query string) (float64, bool) {
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Data.Result) == 0 {
		return 0, false
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	var v float64
	if _, err := fmt.Sscan(s, &v); err != nil {
		return 0, false
	}
	return v, true
}

// queriedMetric finds metric names in PromQL (recorded disburse:* names are
// rules, not metrics).
var queriedMetric = regexp.MustCompile(`\b(disburse_[a-z0-9_]+|process_[a-z0-9_]+)\b`)

// checkQueriedMetricsExported takes every metric the dashboards and the
// rules query and checks it against this process after payouts flowed:
// the core ones must have series in the scrape, every other must at least
// be registered (a vector whose labels have not occurred yet, such as an
// open breaker).
func checkQueriedMetricsExported(t *testing.T) {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	scraped := map[string]bool{}
	for _, f := range families {
		name := f.GetName()
		scraped[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				scraped[name+suf] = true
			}
		}
	}
	var sources []string
	files, _ := filepath.Glob("../../dashboards/*.json")
	rules, _ := filepath.Glob("../../deploy/prometheus/*.yml")
	for _, f := range append(files, rules...) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, string(raw))
	}
	queried := map[string]bool{}
	for _, src := range sources {
		for _, n := range queriedMetric.FindAllString(src, -1) {
			queried[n] = true
		}
	}
	if len(queried) < 40 {
		t.Fatalf("only %d metric names found in the dashboards and rules", len(queried))
	}
	withSeries := 0
	for n := range queried {
		if scraped[n] {
			withSeries++
			continue
		}
		base := n
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suf); ok {
				base = b
			}
		}
		if !registered(prometheus.DefaultRegisterer, base) && !registered(prometheus.DefaultRegisterer, n) {
			t.Errorf("%s is queried by a dashboard or rule but this binary does not export it", n)
		}
	}
	for _, core := range []string{"disburse_payout_terminal_seconds_bucket", "disburse_stage_records_total", "disburse_http_request_seconds_count",
		"disburse_dispatch_bank_calls_total", "disburse_ledger_movements_total", "disburse_relay_events_total", "disburse_bank_call_seconds_bucket",
		"disburse_kafka_produce_records_total", "disburse_kafka_fetch_records_total", "disburse_pg_pool_acquires_total", "disburse_callback_queue_depth"} {
		if !scraped[core] {
			t.Errorf("%s has no series after payouts flowed", core)
		}
	}
	t.Logf("%d of %d queried metric names had series after the payouts", withSeries, len(queried))
}
