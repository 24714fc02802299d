package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/connectors/banksim"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/processor/dispatch"
	"github.com/disburse/disburse/schemas"
	"github.com/disburse/disburse/schemas/events"
)

func runAPI(ctx context.Context, args []string) error {
	var c common
	var apiAddr, operatorAddr, operatorToken string
	var eb envBanks
	var inquiryTTL time.Duration
	var nameThreshold float64
	var access accessConfig
	var cb callbackConfig
	var rc reportsConfig
	var dc dashboardConfig
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	dc.register(fs, "")
	c.register(fs)
	access.register(fs, false)
	cb.register(fs, false)
	rc.register(fs)
	eb.register(fs, "http://127.0.0.1:8082", false)
	fs.DurationVar(&inquiryTTL, "inquiry-cache-ttl", 10*time.Minute, "how long an account inquiry's answer is reused")
	fs.Float64Var(&nameThreshold, "name-match-threshold", 0.8, "score (0-1) an account_holder_name needs against the bank's name")
	fs.StringVar(&apiAddr, "api-addr", "127.0.0.1:8080", "merchant API address")
	fs.StringVar(&operatorAddr, "operator-addr", "127.0.0.1:8081", "operator API address")
	fs.StringVar(&operatorToken, "operator-token", "", "operator API token (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	if nameThreshold <= 0 || nameThreshold > 1 {
		return fmt.Errorf("--name-match-threshold must be in (0, 1], got %v", nameThreshold)
	}
	if err := access.apply(&api.Server{}); err != nil {
		return err // a flag is wrong: say so before connecting to anything
	}
	if err := cb.validate(); err != nil {
		return err
	}
	if len(operatorToken) < 16 {
		return fmt.Errorf("--operator-token (DISBURSE_OPERATOR_TOKEN) must be at least 16 characters")
	}
	banks, err := eb.newBanks()
	if err != nil {
		return err // a gateway setting is wrong: say so before connecting to anything
	}
	pf, err := eb.sandbox.profiles()
	if err != nil {
		return err
	}
	pool, err := openPostgres(ctx, c.postgresURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	producer, err := processor.NewClient(splitList(c.kafkaBrokers))
	if err != nil {
		return err
	}
	defer producer.Close()
	topics := events.NewTopics(c.topicPrefix)
	if err := processor.EnsureTopicsWith(ctx, producer, c.topicSpec(), topics.All()...); err != nil {
		return err
	}
	s := newAPIServer(pool, producer, topics, operatorToken, banks.For(payout.Sandbox), inquiryTTL, nameThreshold, cb)
	s.Profiles = pf.Profiles
	s.Banks = inquiryCaches(banks, inquiryTTL)
	if err := access.apply(s); err != nil {
		return err
	}
	if err := shareRateLimits(ctx, s, pool); err != nil {
		return err
	}
	go s.InquiryRunner().Run(ctx) // bulk account inquiries (issue 14)
	rs, err := rc.open(ctx)
	if err != nil {
		return err
	}
	if rs != nil {
		defer rs.Engine().Close()
		s.Reports = rs
	}
	var srv servers
	defer srv.shutdown()
	// The dashboard first: the operator API reads s.Dashboard.
	dashURL, _, err := startDashboard(&srv, s, pool, dc, true)
	if err != nil {
		return err
	}
	if _, err := srv.start("api", apiAddr, s.Handler()); err != nil {
		return err
	}
	if _, err := srv.start("operator", operatorAddr, s.OperatorHandler()); err != nil {
		return err
	}
	if _, err := srv.startPlain("metrics", c.metricsAddr, healthHandler(pool, producer)); err != nil {
		return err
	}
	slog.Info("api serving", "api", apiAddr, "operator", operatorAddr, "metrics", c.metricsAddr, "dashboard", dashURL)
	<-ctx.Done()
	slog.Info("api stopping: finishing in-flight requests")
	return nil
}

func runWorker(ctx context.Context, args []string) error {
	var c common
	var rc reportsConfig
	var stageList string
	var eb envBanks
	var naive bool
	var settleEvery time.Duration
	var settleGroup int
	var cb callbackConfig
	var booksEvery time.Duration
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	c.register(fs)
	cb.register(fs, true)
	rc.register(fs)
	fs.StringVar(&stageList, "stages", "ledger,relay,dispatch", "comma-separated stages to run: ledger, relay (publishes status events; run at least one), dispatch, callbacks, sink (needs ClickHouse)")
	eb.register(fs, "http://127.0.0.1:8082", true)
	fs.IntVar(&settleGroup, "settle-group", 500, "most bank answers the dispatch stage settles in one transaction")
	fs.DurationVar(&settleEvery, "settle-every", 10*time.Millisecond, "longest a bank answer waits for its settle group to fill")
	fs.DurationVar(&booksEvery, "books-check-every", 5*time.Minute, "how often to run the checks of disburse audit and export disburse_books_violations (0: never)")
	fs.BoolVar(&naive, "naive", false, "the naive baseline of disburse bench: one record per transaction and per produce (benchmarks only, never production)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	if err := cb.validate(); err != nil {
		return err
	}
	if booksEvery < 0 {
		return fmt.Errorf("--books-check-every must be 0 (off) or positive, got %s", booksEvery)
	}
	if settleGroup < 1 || settleGroup > 10_000 || settleEvery <= 0 {
		return fmt.Errorf("--settle-group must be 1 to 10000 and --settle-every positive, got %d and %s", settleGroup, settleEvery)
	}
	names := splitList(stageList)
	if len(names) == 0 {
		return fmt.Errorf("--stages names no stage (known: %v)", stageNames)
	}
	banks, err := eb.newBanks()
	if err != nil {
		return err // a bank setting is wrong: say so before connecting to anything
	}
	pool, err := openPostgres(ctx, c.postgresURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	brokers := splitList(c.kafkaBrokers)
	admin, err := processor.NewClient(brokers)
	if err != nil {
		return err
	}
	defer admin.Close()
	topics := events.NewTopics(c.topicPrefix)
	if err := processor.EnsureTopicsWith(ctx, admin, c.topicSpec(), topics.All()...); err != nil {
		return err
	}
	rs, err := rc.open(ctx)
	if err != nil {
		return err
	}
	if rs != nil {
		defer rs.Engine().Close()
	}
	var srv servers
	defer srv.shutdown()
	if _, err := srv.startPlain("metrics", c.metricsAddr, healthHandler(pool, admin)); err != nil {
		return err
	}
	stageCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	var st stages
	for _, name := range names {
		deps := stageDeps{brokers: brokers, pool: pool, groupPrefix: c.topicPrefix, topics: topics, banks: banks, callbacks: cb, reports: rs, naive: naive,
			tune: func(d *dispatch.Stage) { d.SettleGroup, d.SettleEvery = settleGroup, settleEvery }}
		if err := st.start(stageCtx, name, deps); err != nil {
			stop()
			_ = st.wait()
			return err
		}
	}
	var ob observers
	ob.start(stageCtx, admin, pool, c.topicPrefix, names, booksEvery)
	<-ctx.Done()
	slog.Info("worker stopping: finishing the batches in hand, then committing")
	stop()
	ob.wait()
	return st.wait()
}

func runBanksim(ctx context.Context, args []string) error {
	var addr string
	fs := flag.NewFlagSet("banksim", flag.ContinueOnError)
	fs.StringVar(&addr, "addr", "127.0.0.1:8082", "address of the sandbox banks")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	slog.Info("sandbox banks serving", "addr", addr)
	return banksim.ListenAndServe(ctx, addr, banksim.New(banksim.DefaultOptions()))
}

func runMigrate(ctx context.Context, args []string) error {
	var url string
	var rc reportsConfig
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.StringVar(&url, "postgres-url", "", "Postgres connection URL")
	rc.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if url == "" && !rc.configured() {
		return fmt.Errorf("missing --postgres-url (DISBURSE_POSTGRES_URL), and no ClickHouse (--clickhouse-addr or --chdb-path) to migrate")
	}
	if url != "" {
		if err := schemas.MigratePostgres(ctx, url, func(f string, a ...any) { slog.Info(fmt.Sprintf(f, a...)) }); err != nil {
			return err
		}
	}
	st, err := rc.openMigrated(ctx)
	if st != nil {
		st.Engine().Close()
	}
	return err
}
