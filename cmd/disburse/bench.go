package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/disburse/disburse/reports"
	"github.com/disburse/disburse/reports/chdb"
)

// benchConfig is `disburse bench`'s configuration.
type benchConfig struct {
	callbackBatch, callbackConcurrency int

	postgresURL  string // an existing database of the server; each run creates its own
	kafkaBrokers string
	reports      reportsConfig
	callbacks    callbackConfig

	merchants, batchItems, singles, clients int
	bankLatency                             time.Duration
	stages                                  string // inprocess or processes
	jsonOut, baseline                       bool
	jsonFile                                string
	cpuProfile                              string
	bankProfiles                            string
	partitions                              int
	timeout                                 time.Duration
	keep                                    bool
	progress                                time.Duration
}

// benchResult is one run of the pipeline (the set-based one, or the naive
// baseline) as `--json` prints it.
type benchResult struct {
	Mode       string `json:"mode"`
	Stages     string `json:"stages"`
	Merchants  int    `json:"merchants"`
	BatchItems int    `json:"batch_items_per_merchant"`
	Singles    int    `json:"singles_per_merchant"`
	Clients    int    `json:"clients"`
	BankMedian string `json:"bank_latency_median"`
	Items      int    `json:"items"`

	AcceptSeconds    float64 `json:"accept_seconds"`
	TerminalSeconds  float64 `json:"terminal_seconds"`
	CallbacksSeconds float64 `json:"callbacks_seconds"`
	ReportsSeconds   float64 `json:"reports_seconds"`

	AcceptedPerSecond  float64 `json:"accepted_per_second"`
	DebitedPerSecond   float64 `json:"debited_per_second"`
	CompletedPerSecond float64 `json:"completed_per_second"`
	RateMethod         string  `json:"rate_method"`

	Legs           map[string]Quantiles `json:"legs"`
	SingleCreateMS Quantiles            `json:"single_create_http"`
	Processes      []ProcessUsage       `json:"processes"`

	PGCommits           int64   `json:"pg_commits"`
	PGCommitsPerPayout  float64 `json:"pg_commits_per_payout"`
	KafkaRecords        int64   `json:"kafka_records"`
	KafkaRecordsPerItem float64 `json:"kafka_records_per_payout"`

	Completed        int      `json:"completed"`
	Failed           int      `json:"failed"`
	RefusedAtDebit   int      `json:"refused_at_debit"` // failed without reaching a bank
	BooksOK          bool     `json:"books_ok"`
	BooksProblems    []string `json:"books_problems,omitempty"`
	BankTransfers    int      `json:"bank_transfers"`
	BankDuplicates   int      `json:"bank_duplicates"`
	CallbackBadSigs  int64    `json:"callback_bad_signatures"`
	CallbacksBatches int      `json:"callbacks_batches"`
	// LoadAverage is the machine's 1-minute load average at the end of the
	// run: on a shared machine it says how much else was running.
	LoadAverage string `json:"load_average"`
}

// benchReport is the whole invocation's output.
type benchReport struct {
	benchResult
	BaselineCompletedPerSecond float64      `json:"baseline_completed_per_second"`
	Ratio                      float64      `json:"ratio"`
	Baseline                   *benchResult `json:"baseline,omitempty"`
	Machine                    string       `json:"machine"`
	Date                       string       `json:"date"`
}

// legOrder is the order the legs print in, with what each measures.
var legOrder = []struct{ name, span string }{
	{"accept", "request sent -> PENDING stored (payout_events)"},
	{"debit", "PENDING -> PROCESSING (debited)"},
	{"bank", "PROCESSING -> sandbox bank answered"},
	{"terminal", "bank answered -> COMPLETED/FAILED stored"},
	{"callback", "terminal -> callback delivered (callbacks.delivered_at)"},
	{"reports", "terminal -> row visible in the reports (ClickHouse)"},
	{"end_to_end", "request sent -> terminal"},
}

func runBench(ctx context.Context, args []string) error {
	c, err := parseBench(args)
	if err != nil {
		return err
	}
	if _, ok := os.LookupEnv("DISBURSE_LOG_LEVEL"); !ok {
		// Quiet the stages' per-payout logs: they would cost more than the work.
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	}
	// One ClickHouse engine for the invocation (the embedded one serves one
	// process); each run has its own database in it.
	if !c.reports.configured() {
		dir, err := os.MkdirTemp("", "disburse-bench-chdb-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c.reports.chdbPath = dir
	}
	engine, err := c.reports.open(ctx)
	if errors.Is(err, chdb.ErrNotInstalled) {
		return fmt.Errorf("the bench measures the reports leg and needs the ClickHouse engine: run deploy/chdb.sh install (make bench does) or pass --clickhouse-addr: %w", err)
	}
	if err != nil {
		return err
	}
	defer engine.Engine().Close()
	return benchWith(ctx, c, engine.Engine(), os.Stdout)
}

// parseBench reads and checks bench's flags, and the profiles file.
func parseBench(args []string) (benchConfig, error) {
	var c benchConfig
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&c.postgresURL, "postgres-url", "", "PostgreSQL to run on (any database of the server; each run creates and drops its own)")
	fs.StringVar(&c.kafkaBrokers, "kafka-brokers", "", "comma-separated Kafka brokers (each run uses its own topic prefix)")
	c.reports.register(fs)
	c.callbacks.register(fs, true)
	fs.IntVar(&c.merchants, "merchants", 1, "merchants, each sending one batch and its singles at once")
	fs.IntVar(&c.batchItems, "batch-items", 10_000, "items of each merchant's batch (0: no batch)")
	fs.IntVar(&c.callbackBatch, "callback-batch-size", 100, "each merchant's callback_batch_size setting (1: one POST per callback)")
	fs.IntVar(&c.callbackConcurrency, "callback-endpoint-concurrency", 16, "each merchant's callback_concurrency setting (1-64)")
	fs.IntVar(&c.singles, "singles", 0, "single payouts per merchant, sent concurrently by --clients")
	fs.IntVar(&c.clients, "clients", 16, "concurrent HTTP clients sending the singles (shared by the merchants)")
	fs.DurationVar(&c.bankLatency, "bank-latency", 5*time.Millisecond, "median latency of the sandbox banks (p99 eight times it)")
	fs.StringVar(&c.stages, "stages", "inprocess", "inprocess: every stage in this process; processes: each stage its own disburse worker process")
	fs.BoolVar(&c.jsonOut, "json", false, "print one JSON object instead of the table")
	fs.StringVar(&c.jsonFile, "json-out", "", "also write the JSON object to this file (the table still prints)")
	fs.BoolVar(&c.baseline, "baseline", false, "also run the naive baseline (one transaction per payout, one synchronous produce per record) and print the ratio")
	fs.StringVar(&c.bankProfiles, "bank-profiles", "deploy/profiles/fast.yaml", "YAML file of the banks' profiles (docs/banks.md)")
	fs.IntVar(&c.partitions, "partitions", 12, "partitions of the run's topics")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Minute, "give up on a run after this long")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the bench process over the set-based run to this file (with --stages inprocess: every stage; go tool pprof reads it)")
	fs.BoolVar(&c.keep, "keep", false, "keep each run's database, topics and reports database")
	fs.DurationVar(&c.progress, "progress-every", time.Second, "how often progress is printed on stderr")
	// The bench's receiver is on loopback over plain HTTP.
	_ = fs.Lookup("callbacks-allow-insecure-sandbox").Value.Set("true")
	// Bench callbacks retry fast: a receiver hiccup must not stall a run for 10 s.
	_ = fs.Lookup("callback-retry-base").Value.Set("1s")
	_ = fs.Lookup("callback-retry-max").Value.Set("10s")
	if err := parseFlags(fs, args); err != nil {
		return c, err
	}
	if err := c.validate(); err != nil {
		return c, err
	}
	if _, err := (bankConfig{profilesPath: c.bankProfiles}).profiles(); err != nil {
		return c, err
	}
	return c, nil
}

// benchWith runs the set-based pipeline (and the baseline when asked) with
// the reports in eng, prints the figures to out, and fails when the books
// do not hold.
func benchWith(ctx context.Context, c benchConfig, eng reports.Engine, out io.Writer) error {
	admin, err := openPostgres(ctx, c.postgresURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	var sc string
	if err := admin.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&sc); err != nil {
		return err
	}
	if sc != "on" {
		return fmt.Errorf("synchronous_commit is %q on this server; the bench measures durable commits only (deploy/postgres.sh keeps it on)", sc)
	}
	rep := benchReport{Machine: machine(), Date: time.Now().UTC().Format(time.RFC3339)}
	var prof *os.File
	if c.cpuProfile != "" {
		if prof, err = os.Create(c.cpuProfile); err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(prof); err != nil {
			prof.Close()
			return err
		}
	}
	main, err := benchRun(ctx, c, admin, eng, false)
	if prof != nil {
		pprof.StopCPUProfile()
		if cerr := prof.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	rep.benchResult = main
	if c.baseline && ctx.Err() == nil {
		// The first run's figures, on stderr at once: the baseline takes
		// long, and an interrupted invocation still leaves them.
		if !c.jsonOut {
			printRun(os.Stderr, main)
		}
		base, err := benchRun(ctx, c, admin, eng, true)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		rep.Baseline = &base
		rep.BaselineCompletedPerSecond = base.CompletedPerSecond
		if base.CompletedPerSecond > 0 {
			rep.Ratio = main.CompletedPerSecond / base.CompletedPerSecond
		}
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	js = append(js, '\n')
	if c.jsonFile != "" {
		if err := os.WriteFile(c.jsonFile, js, 0o644); err != nil {
			return err
		}
	}
	if c.jsonOut {
		if _, err := out.Write(js); err != nil {
			return err
		}
	} else {
		printBench(out, rep)
	}
	var bad []string
	for _, r := range []*benchResult{&rep.benchResult, rep.Baseline} {
		if r != nil && !r.BooksOK {
			bad = append(bad, fmt.Sprintf("%s run: %s", r.Mode, strings.Join(r.BooksProblems, "; ")))
		}
	}
	if len(bad) > 0 {
		fmt.Fprintf(os.Stderr, "\n!!! THE BOOKS DO NOT HOLD !!!\n  %s\n", strings.Join(bad, "\n  "))
		return &exitError{code: 1, err: errors.New("the books do not hold (see above)")}
	}
	return ctx.Err()
}

func (c benchConfig) validate() error {
	var missing []string
	if c.postgresURL == "" {
		missing = append(missing, "--postgres-url (DISBURSE_POSTGRES_URL)")
	}
	if c.kafkaBrokers == "" {
		missing = append(missing, "--kafka-brokers (DISBURSE_KAFKA_BROKERS)")
	}
	switch {
	case len(missing) > 0:
		return fmt.Errorf("missing settings: %s (make bench starts the services and passes them)", strings.Join(missing, ", "))
	case c.merchants < 1 || c.merchants > 1000:
		return fmt.Errorf("--merchants must be 1 to 1000, got %d", c.merchants)
	case c.batchItems < 0 || c.batchItems > 1_000_000:
		return fmt.Errorf("--batch-items must be 0 to 1,000,000, got %d", c.batchItems)
	case c.singles < 0:
		return fmt.Errorf("--singles must not be negative, got %d", c.singles)
	case c.batchItems == 0 && c.singles == 0:
		return errors.New("nothing to send: set --batch-items or --singles")
	case c.clients < 1 || c.clients > 1024:
		return fmt.Errorf("--clients must be 1 to 1024, got %d", c.clients)
	case c.bankLatency < 0:
		return fmt.Errorf("--bank-latency must not be negative")
	case c.stages != "inprocess" && c.stages != "processes":
		return fmt.Errorf("--stages must be inprocess or processes, got %q", c.stages)
	case c.partitions < 1 || c.partitions > 1000:
		return fmt.Errorf("--partitions must be 1 to 1000, got %d", c.partitions)
	case c.timeout <= 0 || c.progress <= 0:
		return errors.New("--timeout and --progress-every must be positive")
	}
	return c.callbacks.validate()
}

// machine describes the box the figures come from.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %f kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB", kb/(1<<20))
		}
	}
	return fmt.Sprintf("%d cores%s, %s, %s/%s", runtime.NumCPU(), mem, model, runtime.GOOS, runtime.GOARCH)
}

func printBench(w io.Writer, r benchReport) {
	printRun(w, r.benchResult)
	if b := r.Baseline; b != nil {
		fmt.Fprintln(w)
		printRun(w, *b)
		fmt.Fprintf(w, "\ncompleted/s: %s set-based vs %s naive baseline: %.1fx\n", fmtRate(r.CompletedPerSecond), fmtRate(b.CompletedPerSecond), r.Ratio)
	}
	fmt.Fprintf(w, "\nmachine: %s; date: %s\n", r.Machine, r.Date)
}

func printRun(w io.Writer, r benchResult) {
	fmt.Fprintf(w, "== %s pipeline, stages %s: %d merchant(s) x (%d batch items + %d singles at %d clients) = %d payouts, bank median %s\n",
		r.Mode, r.Stages, r.Merchants, r.BatchItems, r.Singles, r.Clients, r.Items, r.BankMedian)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "accepted (HTTP 202 / single answered)\t%.2f s\t%s/s (total / elapsed)\n", r.AcceptSeconds, fmtRate(r.AcceptedPerSecond))
	fmt.Fprintf(tw, "debited/s\t\t%s/s (%s)\n", fmtRate(r.DebitedPerSecond), r.RateMethod)
	fmt.Fprintf(tw, "every item terminal\t%.2f s\t%s/s completed (%s)\n", r.TerminalSeconds, fmtRate(r.CompletedPerSecond), r.RateMethod)
	fmt.Fprintf(tw, "every callback delivered\t%.2f s\t\n", r.CallbacksSeconds)
	fmt.Fprintf(tw, "every row in the reports\t%.2f s\t\n", r.ReportsSeconds)
	fmt.Fprintf(tw, "Postgres commits per payout\t%.2f\t(%d commits, pg_stat_database)\n", r.PGCommitsPerPayout, r.PGCommits)
	fmt.Fprintf(tw, "Kafka records per payout\t%.2f\t(%d records, end offsets of the run's topics)\n", r.KafkaRecordsPerItem, r.KafkaRecords)
	tw.Flush()
	fmt.Fprintln(w, "\nleg latency\tp50 ms\tp95 ms\tp99 ms\tcount\tspan")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	for _, l := range legOrder {
		q := r.Legs[l.name]
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%d\t  %s\n", l.name, q.P50, q.P95, q.P99, q.Count, l.span)
	}
	if q := r.SingleCreateMS; q.Count > 0 {
		fmt.Fprintf(tw, "single create\t%.1f\t%.1f\t%.1f\t%d\t  HTTP round trip of POST /v1/disbursements\n", q.P50, q.P95, q.P99, q.Count)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "process\tCPU s\tCPU s / 1,000 payouts\tpeak RSS MiB\truns")
	for _, p := range r.Processes {
		rss := "-" // not measured (the Postgres server's many processes)
		if p.PeakRSSMiB > 0 {
			rss = fmt.Sprintf("%.0f", p.PeakRSSMiB)
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.3f\t%s\t%s\n", p.Name, p.CPUSeconds, p.CPUSecondsPer1000, rss, p.Runs)
	}
	tw.Flush()
	books := "books: audit clean, no duplicate at the bank"
	if !r.BooksOK {
		books = "BOOKS DO NOT HOLD: " + strings.Join(r.BooksProblems, "; ")
	}
	fmt.Fprintf(w, "%s (%d completed, %d failed, %d bank transfers, %d batch callbacks)\n", books, r.Completed, r.Failed, r.BankTransfers, r.CallbacksBatches)
	fmt.Fprintf(w, "load average at the end of the run: %s\n", r.LoadAverage)
}

// reportsDB is a run's ClickHouse database in the shared engine.
func reportsDB(eng reports.Engine, name string) (*reports.Store, error) {
	return reports.NewStore(eng, name)
}

// benchExecutable is the binary the processes mode starts workers from.
func benchExecutable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if strings.HasSuffix(filepath.Base(exe), ".test") {
		return "", errors.New("--stages processes re-executes the disburse binary; build it (make build) and run bin/disburse bench")
	}
	return exe, nil
}
