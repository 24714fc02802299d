package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	embeddedpostgres "github.com/fergusstrange/embedded-postgres"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/connectors/banksim"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/processor/statement"
	"github.com/disburse/disburse/reports/chdb"
	"github.com/disburse/disburse/schemas"
	"github.com/disburse/disburse/schemas/events"
)

// exitEmbeddedPostgres tells `make run` to fall back to the local PostgreSQL.
const exitEmbeddedPostgres = 3

const demoMerchant = "demo"

// demoShop is the merchant of the dashboard's demo user.
const demoShop = "demo-shop"

type devConfig struct {
	apiAddr, operatorAddr, metricsAddr, banksimAddr string
	dataDir, operatorToken, sandboxKey, postgresURL string
	embeddedPort                                    int
	bankProfiles                                    string
	production                                      bankConfig
	banksimLatency                                  time.Duration
	partitions                                      int
	access                                          accessConfig
	callbacks                                       callbackConfig
	reports                                         reportsConfig
	dashboard                                       dashboardConfig
	demoEmail, demoPassword                         string
}

func runDev(ctx context.Context, args []string) error {
	var c devConfig
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.StringVar(&c.apiAddr, "api-addr", "127.0.0.1:8080", "merchant API address")
	fs.StringVar(&c.operatorAddr, "operator-addr", "127.0.0.1:8081", "operator API address")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "127.0.0.1:9090", "metrics and health address")
	fs.StringVar(&c.banksimAddr, "banksim-addr", "127.0.0.1:8082", "sandbox banks address")
	fs.StringVar(&c.dataDir, "data-dir", ".data", "where the embedded PostgreSQL keeps its data")
	fs.StringVar(&c.operatorToken, "operator-token", "", "operator API token (default: generated and printed)")
	fs.StringVar(&c.sandboxKey, "sandbox-key", "", "fix the demo merchant's sandbox key (sk_sandbox_ + at least 32 characters)")
	fs.StringVar(&c.postgresURL, "postgres-url", "", "use this PostgreSQL instead of the embedded one")
	fs.IntVar(&c.embeddedPort, "embedded-postgres-port", 54329, "port of the embedded PostgreSQL on 127.0.0.1")
	fs.IntVar(&c.partitions, "partitions", 6, "partitions of each in-process Kafka topic")
	fs.StringVar(&c.bankProfiles, "bank-profiles", "", "YAML file of the banks' profiles (docs/banks.md; deploy/profiles/fast.yaml for quick demos); default: the built-in profiles")
	c.production.prefix = "production-"
	fs.StringVar(&c.production.url, "production-bank-url", "", "base URL of a production bank gateway (none: production payouts are not sent; they wait and fail BANK_UNAVAILABLE after the unavailable limit)")
	fs.StringVar(&c.production.profilesPath, "production-bank-profiles", "", "YAML file of the production banks' profiles and base URLs (docs/banks.md); default: the built-in profiles")
	fs.StringVar(&c.production.credentials, "production-bank-credentials", "", "credential of --production-bank-url by reference: env:NAME or file:/path")
	fs.DurationVar(&c.banksimLatency, "banksim-latency", 0, "median latency of every sandbox bank, p99 8x that (0: each bank's realistic default, 120-350ms)")
	c.access.register(fs, true)
	c.callbacks.register(fs, true)
	c.reports.register(fs)
	c.dashboard.register(fs, "127.0.0.1:8083")
	fs.StringVar(&c.demoEmail, "demo-email", "demo@example.com", "email of the dashboard's demo user (owner of the demo merchant)")
	fs.StringVar(&c.demoPassword, "demo-password", "", "the demo user's password (default: generated and printed)")
	// The demo's sandbox posts callbacks to local receivers.
	insecure := fs.Lookup("callbacks-allow-insecure-sandbox")
	_ = insecure.Value.Set("true")
	insecure.DefValue = "true"
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := c.callbacks.validate(); err != nil {
		return err
	}
	if c.banksimLatency < 0 {
		return fmt.Errorf("--banksim-latency must not be negative, got %s", c.banksimLatency)
	}
	// A bad profiles file is reported before anything starts.
	if _, err := (bankConfig{profilesPath: c.bankProfiles}).profiles(); err != nil {
		return err
	}
	if err := c.access.apply(&api.Server{}); err != nil {
		return err
	}
	if c.reports.addr == "" && c.reports.chdbPath == "" {
		c.reports.chdbPath = filepath.Join(c.dataDir, "chdb") // the embedded default
	}
	if c.demoPassword == "" {
		b := make([]byte, 9)
		_, _ = rand.Read(b)
		c.demoPassword = "demo-" + hex.EncodeToString(b)
	}
	if c.operatorToken == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		c.operatorToken = "op_" + hex.EncodeToString(b)
	}
	log := slog.Default()

	// Postgres: the given URL, or an embedded server in the data directory.
	pgURL := c.postgresURL
	if pgURL == "" {
		dir, err := filepath.Abs(c.dataDir)
		if err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "starting embedded PostgreSQL (the first run downloads it; later runs use the cache)...")
		pg := embeddedpostgres.NewDatabase(embeddedpostgres.DefaultConfig().
			Port(uint32(c.embeddedPort)).
			DataPath(filepath.Join(dir, "postgres")).
			RuntimePath(filepath.Join(dir, "postgres-runtime")).
			Database("disburse").
			StartTimeout(60 * time.Second).
			Logger(nil))
		if err := pg.Start(); err != nil {
			return &exitError{code: exitEmbeddedPostgres, err: fmt.Errorf("embedded PostgreSQL could not start: %w\n"+
				"run `make run` (it falls back to the local PostgreSQL of deploy/postgres.sh) or pass --postgres-url", err)}
		}
		defer func() {
			if err := pg.Stop(); err != nil {
				log.Error("stop embedded postgres", "err", err)
			}
		}()
		pgURL = fmt.Sprintf("postgres://postgres:postgres@127.0.0.1:%d/disburse?sslmode=disable", c.embeddedPort)
	}
	if err := schemas.MigratePostgres(ctx, pgURL, func(f string, a ...any) { log.Info(fmt.Sprintf(f, a...)) }); err != nil {
		return err
	}
	pool, err := openPostgres(ctx, pgURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	// Kafka: franz-go's in-process broker.
	topics := events.NewTopics("disburse.")
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(int32(c.partitions), topics.All()...))
	if err != nil {
		return fmt.Errorf("in-process kafka: %w", err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	producer, err := processor.NewClient(brokers)
	if err != nil {
		return err
	}
	defer producer.Close()

	// The sandbox banks, over real HTTP inside the process.
	var srv servers
	defer srv.shutdown()
	bankAddr, err := srv.startPlain("banksim", c.banksimAddr, banksim.New(banksimOptions(c.banksimLatency)).Handler())
	if err != nil {
		return err
	}
	// Sandbox payouts go to the in-process sandbox banks; production ones
	// only to --production-bank-url, never to the simulator.
	eb := envBanks{sandbox: bankConfig{url: "http://" + bankAddr.String(), profilesPath: c.bankProfiles}, production: c.production}
	banks, err := eb.newBanks()
	if err != nil {
		return err
	}
	pf, err := eb.sandbox.profiles()
	if err != nil {
		return err
	}
	bank, profiles := banks.For(payout.Sandbox), pf.Profiles

	key, err := ensureDemoMerchant(ctx, merchant.NewStore(pool), c.sandboxKey)
	if err != nil {
		return err
	}

	// Reports: the ClickHouse engine in the process (or --clickhouse-addr).
	// Without the engine library the demo runs without reports.
	rs, err := c.reports.openMigrated(ctx)
	if errors.Is(err, chdb.ErrNotInstalled) {
		log.Warn("reports off: the ClickHouse engine library is not installed; run deploy/chdb.sh (make run does)", "err", err)
		rs, err = nil, nil
	}
	if err != nil {
		return err
	}
	if rs != nil {
		defer rs.Engine().Close()
	}

	apiServer := newAPIServer(pool, producer, topics, c.operatorToken, bank, 10*time.Minute, 0.8, c.callbacks)
	apiServer.Profiles = profiles
	apiServer.Banks = inquiryCaches(banks, 10*time.Minute)
	if err := c.access.apply(apiServer); err != nil {
		return err
	}
	if err := shareRateLimits(ctx, apiServer, pool); err != nil {
		return err
	}
	go apiServer.InquiryRunner().Run(ctx) // bulk account inquiries (issue 14)
	if rs != nil {
		apiServer.Reports = rs
	}
	// The dashboard first: the operator API reads apiServer.Dashboard.
	dashURL, dash, err := startDashboard(&srv, apiServer, pool, c.dashboard, false)
	if err != nil {
		return err
	}
	if dash != nil {
		// The demo user's business starts without disbursement, so that
		// its first click is Aktivasi (README, Dashboard).
		if err := merchant.NewStore(pool).Create(ctx, demoShop, "Demo Shop"); err != nil && !errors.Is(err, merchant.ErrExists) {
			return err
		}
		if err := dash.Store.EnsureUser(ctx, demoShop, c.demoEmail, c.demoPassword); err != nil {
			return err
		}
	}
	apiAddr, err := srv.start("api", c.apiAddr, apiServer.Handler())
	if err != nil {
		return err
	}
	opAddr, err := srv.start("operator", c.operatorAddr, apiServer.OperatorHandler())
	if err != nil {
		return err
	}
	metricsAddr, err := srv.startPlain("metrics", c.metricsAddr, healthHandler(pool, producer))
	if err != nil {
		return err
	}

	stageCtx, stopStages := context.WithCancel(context.WithoutCancel(ctx))
	var st stages
	for _, name := range stageNames {
		if name == "sink" && rs == nil {
			continue
		}
		if err := st.start(stageCtx, name, stageDeps{brokers: brokers, pool: pool, groupPrefix: "disburse.", topics: topics, banks: banks, callbacks: c.callbacks, reports: rs,
			// The in-process sandbox bank's statement starts empty at every start; the database persists.
			tuneStatement: func(f *statement.Follower, _ *statement.Reconciler) { f.RestartOnBadCursor = true }}); err != nil {
			stopStages()
			return err
		}
	}

	// Lag of every group and the books check every minute: dev is where
	// people watch the dashboards fill.
	var ob observers
	ob.start(stageCtx, producer, pool, "disburse.", stageNames, time.Minute)

	fmt.Printf(`
disburse dev is running (Ctrl-C stops it)

  dashboard      %[8]s
                 sign in as %[9]s, password %[10]s
  merchant API   http://%[1]s
  operator API   http://%[2]s   (token: %[3]s)
  metrics        http://%[4]s/metrics
  sandbox banks  http://%[5]s
  production     %[11]s

  demo merchant  %[6]s, sandbox secret key:
    %[7]s

Send a payout:
  curl -s -u '%[7]s:' -H 'Content-Type: application/json' -H "Idempotency-Key: $(date +%%s%%N)" \
    -d '{"reference_id":"order-'$RANDOM'","bank_code":"bca","account_number":"1234567890","amount":150000,"description":"demo payout"}' \
    http://%[1]s/v1/disbursements
Then:
  curl -s -u '%[7]s:' http://%[1]s/v1/disbursements/<id>
  curl -s -u '%[7]s:' http://%[1]s/v1/balance
  curl -s -u '%[7]s:' "http://%[1]s/v1/reports/summary?from=$(date -u +%%F)&to=$(date -u +%%F)&group_by=status"

`, apiAddr, opAddr, c.operatorToken, metricsAddr, bankAddr, demoMerchant, key, dashURL, c.demoEmail, c.demoPassword, productionLine(c.production.url))

	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "stopping: finishing in-flight requests and batches...")
	srv.shutdown()
	stopStages()
	ob.wait()
	return st.wait()
}

// ensureDemoMerchant creates the demo merchant with its sandbox on first
// start. The sandbox key is stored only as a hash, so on a later start a new
// key is added (or the fixed --sandbox-key, when it does not work yet).
func ensureDemoMerchant(ctx context.Context, merchants *merchant.Store, key string) (string, error) {
	if err := merchants.Create(ctx, demoMerchant, "Demo Marketplace"); err != nil && !errors.Is(err, merchant.ErrExists) {
		return "", err
	}
	got, err := merchants.ActivateSandbox(ctx, demoMerchant, key, api.DemoDeposit, api.DefaultSettings)
	if err == nil {
		return got, nil
	}
	if !errors.Is(err, merchant.ErrExists) {
		return "", err
	}
	if key != "" {
		if _, err := merchants.Authenticate(ctx, key, time.Now()); err == nil {
			return key, nil
		}
	} else if key, err = merchant.NewKey(payout.Sandbox); err != nil {
		return "", err
	}
	err = pgx.BeginFunc(ctx, merchants.DB(), func(tx pgx.Tx) error {
		_, err := merchant.AddKey(ctx, tx, demoMerchant, payout.Sandbox, key)
		return err
	})
	return key, err
}

// productionLine says where dev sends production payouts.
func productionLine(url string) string {
	if url == "" {
		return "no gateway (--production-bank-url): production payouts are not sent"
	}
	return url
}
