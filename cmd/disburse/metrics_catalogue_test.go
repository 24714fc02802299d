package main

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/internal/obs"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas"
)

// catalogued is one row of docs/metrics.md.
type catalogued struct {
	typ    string   // counter, gauge, histogram; "" for a wildcard row
	labels []string // sorted
}

var catalogueRow = regexp.MustCompile("^\\| `([a-z0-9_:*]+)` \\| ([a-z—-]+) \\| ([^|]*) \\|")

// readCatalogue parses the tables of docs/metrics.md.
func readCatalogue(t *testing.T) map[string]catalogued {
	t.Helper()
	raw, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	cat := map[string]catalogued{}
	for _, line := range strings.Split(string(raw), "\n") {
		m := catalogueRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		c := catalogued{}
		if !strings.HasSuffix(m[1], "*") {
			c.typ = m[2]
		}
		for _, l := range strings.Split(m[3], ",") {
			if l = strings.TrimSpace(l); l != "" && l != "—" {
				c.labels = append(c.labels, l)
			}
		}
		sort.Strings(c.labels)
		if _, dup := cat[m[1]]; dup {
			t.Errorf("docs/metrics.md lists %s twice", m[1])
		}
		cat[m[1]] = c
	}
	if len(cat) < 20 {
		t.Fatalf("docs/metrics.md: only %d rows parsed; has the table format changed?", len(cat))
	}
	return cat
}

// lookup finds name in the catalogue, through a wildcard row if needed.
func (c catalogueMap) lookup(name string) (catalogued, bool) {
	if e, ok := c[name]; ok {
		return e, true
	}
	for k, e := range c {
		if strings.HasSuffix(k, "*") && strings.HasPrefix(name, strings.TrimSuffix(k, "*")) {
			return e, true
		}
	}
	return catalogued{}, false
}

type catalogueMap map[string]catalogued

// unboundedLabel names labels whose values grow with the business: a
// merchant, a payout, a request. None may label a metric.
var unboundedLabel = regexp.MustCompile(`(?i)merchant|disbursement|payout|reference|account|request|batch_id|^id$|_id$`)

// boundedIDs are the *_id labels whose values are bounded: the Kafka
// broker's node id and the process's Kafka client number.
var boundedIDs = map[string]bool{"node_id": true, "client_id": true}

func checkLabelNames(name string, labels []string) error {
	for _, l := range labels {
		if unboundedLabel.MatchString(l) && !boundedIDs[l] {
			return fmt.Errorf("%s is labelled %q: label values must be bounded (no merchant, payout or request ids)", name, l)
		}
	}
	return nil
}

// familyDiff compares gathered families with the catalogue: every
// exported metric listed, with its type and exact labels.
func familyDiff(cat catalogueMap, families []*dto.MetricFamily) []string {
	var problems []string
	for _, f := range families {
		name := f.GetName()
		e, ok := cat.lookup(name)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s is exported but docs/metrics.md does not list it", name))
			continue
		}
		if e.typ == "" { // a wildcard row: the standard collectors
			continue
		}
		if got := strings.ToLower(f.GetType().String()); got != e.typ {
			problems = append(problems, fmt.Sprintf("%s is a %s, docs/metrics.md says %s", name, got, e.typ))
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName())
			}
			sort.Strings(labels)
			if !slices.Equal(labels, e.labels) {
				problems = append(problems, fmt.Sprintf("%s has labels %v, docs/metrics.md says %v", name, labels, e.labels))
				break
			}
			if err := checkLabelNames(name, labels); err != nil {
				problems = append(problems, err.Error())
			}
		}
	}
	return problems
}

// registered reports whether reg holds a metric named name, by trying
// to register a gauge of that name: the registry refuses a second
// descriptor of an existing name with a different help string.
func registered(reg prometheus.Registerer, name string) bool {
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "catalogue probe " + name})
	if err := reg.Register(probe); err != nil {
		return true
	}
	reg.Unregister(probe)
	return false
}

var sourceMetric = regexp.MustCompile(`(?:Name:\s*|NewDesc\(\s*)"(disburse_[a-z0-9_]+)"`)

// declaredInSource lists the disburse_* metric names the repository's Go
// code declares, vectors that have no series yet included.
func declaredInSource(t *testing.T) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "../.." || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range sourceMetric.FindAllStringSubmatch(string(src), -1) {
			names = append(names, m[1])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestMetricsCatalogue keeps docs/metrics.md true: after Kafka clients
// have produced and consumed (kprom's per-broker series), consumer lag
// was measured and the Postgres pool and books check ran, every gathered
// metric must be catalogued with its type and labels; every disburse_*
// metric the code declares must be catalogued; and every catalogued
// metric must be registered in this binary.
func TestMetricsCatalogue(t *testing.T) {
	cat := catalogueMap(readCatalogue(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Kafka: produce, consume in a group and commit, measure the lag.
	brokers := testenv.Kafka(t)
	topic := testenv.TopicPrefix(t) + "catalogue"
	prod, err := processor.NewClient(brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := processor.EnsureTopics(ctx, prod, 1, topic); err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("x")}, &kgo.Record{Topic: topic, Value: []byte("y")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	group := topic + ".group"
	cons, err := processor.NewClient(brokers, processor.ConsumerOpts(group, topic)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for fetched := 0; fetched == 0; {
		fs := cons.PollRecords(ctx, 1)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fetched = fs.NumRecords()
		err := cons.CommitRecords(ctx, fs.Records()...)
		cons.AllowRebalance() // ConsumerOpts blocks rebalances between polls
		if err != nil {
			t.Fatal(err)
		}
	}
	obs.NewLagMonitor(prod, slog.Default(), group).Measure(ctx)

	// Postgres: the pool's statistics and one books check.
	url := testenv.Postgres(t)
	if err := schemas.MigratePostgres(ctx, url, t.Logf); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	obs.RegisterPool(prometheus.DefaultRegisterer, pool)
	(&obs.BooksCheck{DB: pool, Log: slog.Default()}).Check(ctx)

	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	gathered := map[string]bool{}
	for _, f := range families {
		gathered[f.GetName()] = true
	}
	for _, must := range []string{"disburse_kafka_produce_records_total", "disburse_kafka_fetch_records_total", "disburse_consumer_group_lag", "disburse_pg_pool_acquires_total", "disburse_books_violations"} {
		if !gathered[must] {
			t.Errorf("%s has no series after the round trip: the collector is not wired", must)
		}
	}
	for _, p := range familyDiff(cat, families) {
		t.Error(p)
	}
	for _, name := range declaredInSource(t) {
		if _, ok := cat[name]; !ok {
			t.Errorf("%s is declared in the code but docs/metrics.md does not list it", name)
		}
	}
	for name, e := range cat {
		if err := checkLabelNames(name, e.labels); err != nil {
			t.Error(err)
		}
		if strings.HasSuffix(name, "*") || gathered[name] {
			continue
		}
		if !registered(prometheus.DefaultRegisterer, name) {
			t.Errorf("docs/metrics.md lists %s but the binary does not export it", name)
		}
	}
}

// TestMetricsCatalogueCatchesDrift shows the comparisons fail on drift:
// an uncatalogued metric, wrong labels, a wrong type, an unbounded label,
// and a catalogued name nobody registers.
func TestMetricsCatalogueCatchesDrift(t *testing.T) {
	cat := catalogueMap{
		"disburse_a_total": {typ: "counter", labels: []string{"bank"}},
		"disburse_b":       {typ: "gauge"},
		"go_*":             {},
	}
	reg := prometheus.NewRegistry()
	a := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "disburse_a_total", Help: "a"}, []string{"bank", "merchant_id"})
	a.WithLabelValues("bca", "m1").Inc()
	b := prometheus.NewCounter(prometheus.CounterOpts{Name: "disburse_b", Help: "b"})
	c := prometheus.NewGauge(prometheus.GaugeOpts{Name: "disburse_c", Help: "c"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "go_whatever", Help: "g"})
	reg.MustRegister(a, b, c, g)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(familyDiff(cat, families), "\n")
	for _, want := range []string{
		"disburse_a_total has labels [bank merchant_id]",
		"disburse_b is a counter, docs/metrics.md says gauge",
		"disburse_c is exported but docs/metrics.md does not list it",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("drift not reported: %q\nreported:\n%s", want, got)
		}
	}
	if strings.Contains(got, "go_whatever") {
		t.Errorf("a wildcard row did not cover go_whatever:\n%s", got)
	}
	if err := checkLabelNames("x", []string{"bank", "merchant_id"}); err == nil {
		t.Error("merchant_id accepted as a label")
	}
	if err := checkLabelNames("x", []string{"disbursement"}); err == nil {
		t.Error("disbursement accepted as a label")
	}
	if err := checkLabelNames("x", []string{"bank", "node_id", "client_id", "topic", "partition"}); err != nil {
		t.Error(err)
	}
	if !registered(reg, "disburse_c") {
		t.Error("registered(disburse_c) = false, it is registered")
	}
	if registered(reg, "disburse_nobody") {
		t.Error("registered(disburse_nobody) = true")
	}
	if registered(reg, "disburse_nobody") { // the probe unregisters itself
		t.Error("the probe stayed registered")
	}
}
