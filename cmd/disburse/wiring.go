package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	neturl "net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/batch"
	"github.com/disburse/disburse/callbacks"
	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/connectors/banksim"
	"github.com/disburse/disburse/connectors/httpbank"
	"github.com/disburse/disburse/controls"
	"github.com/disburse/disburse/hold"
	"github.com/disburse/disburse/internal/obs"
	"github.com/disburse/disburse/internal/retry"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/processor/callbackstage"
	"github.com/disburse/disburse/processor/dispatch"
	"github.com/disburse/disburse/processor/ledgerstage"
	"github.com/disburse/disburse/processor/relay"
	"github.com/disburse/disburse/processor/sink"
	"github.com/disburse/disburse/processor/statement"
	"github.com/disburse/disburse/reports"
	"github.com/disburse/disburse/schemas/events"
)

// instanceName names this process for Postgres (application_name, at
// most 63 bytes): role@host/pid, such as worker@disburse-7c9f-x2kqz/1.
func instanceName() string {
	role := "disburse"
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		role = os.Args[1]
	}
	host, _ := os.Hostname()
	name := fmt.Sprintf("%s@%s/%d", role, host, os.Getpid())
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

// openPostgres connects and checks the connection.
func openPostgres(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("--postgres-url: %w", err)
	}
	if cfg.MaxConns < 16 {
		cfg.MaxConns = 16
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		// The rows a connection writes in a payout's story carry it
		// (the actor columns, migration 00017): disburse trace shows
		// which role and instance wrote each step.
		cfg.ConnConfig.RuntimeParams["application_name"] = instanceName()
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres at %s does not answer: %w (is it running? `make services-up` starts one)", cfg.ConnConfig.Host, err)
	}
	obs.RegisterPool(prometheus.DefaultRegisterer, pool)
	return pool, nil
}

// newAPIServer wires the HTTP handlers.
// bank answers account inquiries; its answers are cached per instance for
// inquiryTTL.
func newAPIServer(pool *pgxpool.Pool, kafka *kgo.Client, topics events.Topics, operatorToken string, bank *connectors.Guard, inquiryTTL time.Duration, nameThreshold float64, cb callbackConfig) *api.Server {
	return &api.Server{
		Bank:               connectors.NewInquiryCache(bank, inquiryTTL, inquiryCacheSize),
		NameMatchThreshold: nameThreshold,
		Payouts:            payout.NewStore(pool),
		Merchants:          merchant.NewStore(pool),
		Ledger:             ledger.NewStore(pool),
		Callbacks:          cb.store(pool),
		CallbackPolicy:     cb.policy(),
		Kafka:              kafka,
		Topics:             topics,
		Log:                slog.Default(),
		OperatorToken:      operatorToken,
	}
}

// inquiryCacheSize bounds the account inquiries an API instance keeps.
const inquiryCacheSize = 100_000

// stageNames are the stages `worker --stages` accepts.
// relay is not a consumer: it publishes the outbox (Postgres) to Kafka.
var stageNames = []string{"ledger", "relay", "dispatch", "callbacks", "sink"}

// stages runs consumer stages, each with its own Kafka client and group.
type stages struct {
	wg      sync.WaitGroup
	clients []*kgo.Client
	errs    chan error
}

// stageDeps is what the stages are wired to.
type stageDeps struct {
	brokers []string
	pool    *pgxpool.Pool
	// groupPrefix names the consumer groups (<prefix>ledger, <prefix>dispatch).
	groupPrefix string
	topics      events.Topics
	// banks are each environment's bank connector with the banks' profiles
	// applied.
	banks *connectors.Banks
	// tune adjusts the dispatch stage before it starts (tests shorten its
	// windows); tuneStatement its statement follower and reconciler.
	tune          func(*dispatch.Stage)
	tuneStatement func(*statement.Follower, *statement.Reconciler)
	// callbacks configures the callback stage.
	callbacks callbackConfig
	// reports is the ClickHouse store of the sink stage.
	reports *reports.Store
	// naive is the baseline of `disburse bench --baseline`: every stage
	// takes one record per poll, so one Postgres transaction per payout, and
	// every Kafka client produces one record at a time, synchronously. Never
	// for production.
	naive bool
}

// naiveClientOpts make a Kafka client produce one record at a time: no
// linger, and a buffer of one record, so each produce waits for the
// previous record's acknowledgement.
func naiveClientOpts() []kgo.Opt {
	return []kgo.Opt{kgo.ProducerLinger(0), kgo.MaxBufferedRecords(1)}
}

// naiveDispatch is the naive baseline of the dispatch stage: one
// transaction per payout for claims and settlements.
func naiveDispatch(st *dispatch.Stage) { st.Naive = true }

// naiveRelay is the naive baseline of the relay: one status change read
// and published per round.
func naiveRelay(st *relay.Stage) { st.Limit = 1 }

// naiveRecords is the records per poll of the consume loops in the naive
// baseline: one, so each payout is its own transaction.
const naiveRecords = 1

// start launches the named stage; it consumes until ctx ends.
func (s *stages) start(ctx context.Context, name string, deps stageDeps) error {
	brokers, pool, topics, banks := deps.brokers, deps.pool, deps.topics, deps.banks
	if s.errs == nil {
		s.errs = make(chan error, len(stageNames))
	}
	if name == "relay" {
		return s.startRelay(ctx, deps)
	}
	var group string
	var subs []string
	switch name {
	case "ledger":
		group, subs = deps.groupPrefix+"ledger", []string{topics.Requests}
	case "dispatch":
		group, subs = deps.groupPrefix+"dispatch", []string{topics.Dispatch, topics.DispatchRetry}
	case "callbacks":
		group, subs = deps.groupPrefix+"callbacks", []string{topics.Status, topics.Batches}
	case "sink":
		if deps.reports == nil {
			return errors.New("stage sink needs ClickHouse: set --clickhouse-addr or --chdb-path")
		}
		group, subs = deps.groupPrefix+"sink", []string{topics.Status}
	default:
		return fmt.Errorf("unknown stage %q (known: %v)", name, stageNames)
	}
	log := slog.Default().With("stage", name)
	opts := processor.ConsumerOpts(group, subs...)
	var run func(context.Context) error
	var dst *dispatch.Stage
	if name == "dispatch" {
		dst = &dispatch.Stage{Payouts: payout.NewStore(pool), Ledger: ledger.NewStore(pool),
			Banks: banks, Topics: topics, Log: log}
		// The kill switch (issue 14): paused environments' payouts are parked before a send.
		pauses := &controls.Pauses{DB: pool, Log: log}
		if err := pauses.Load(ctx); err != nil {
			return fmt.Errorf("read paused environments: %w", err)
		}
		go pauses.Run(ctx)
		dst.Pauses = pauses
		if deps.tune != nil {
			deps.tune(dst)
		}
		if deps.naive {
			naiveDispatch(dst)
		}
		opts = append(opts, dst.GroupOpts()...)
	}
	if deps.naive {
		opts = append(opts, naiveClientOpts()...)
	}
	cl, err := processor.NewClient(brokers, opts...)
	if err != nil {
		return err
	}
	s.clients = append(s.clients, cl)
	switch name {
	case "ledger":
		st := &ledgerstage.Stage{Ledger: ledger.NewStore(pool), Kafka: cl, Topics: topics, Log: log,
			Gate: controls.NewGate(pool, log)} // kill switch and velocity limits (issue 14)
		run = st.Run
		if deps.naive {
			// The stage's own Run polls up to 1,000 records per transaction.
			run = func(ctx context.Context) error {
				return processor.Consume(ctx, "ledger", cl, naiveRecords, log, st.Handle)
			}
		}
	case "dispatch":
		dst.Kafka = cl
		run = withStatements(dst.Run, pool, banks, log, deps.tuneStatement)
	case "callbacks":
		store := deps.callbacks.store(pool)
		st := &callbackstage.Stage{Store: store, Worker: deps.callbacks.worker(store, log), Kafka: cl, Topics: topics, Log: log}
		run = st.Run
		if deps.naive {
			// callbackstage.Stage.Run with one record per poll: the worker
			// delivers beside the consume loop, as in Run.
			run = func(ctx context.Context) error {
				var wg sync.WaitGroup
				var workerErr error
				wg.Add(1)
				go func() {
					defer wg.Done()
					workerErr = st.Worker.Run(ctx)
				}()
				err := processor.Consume(ctx, "callbacks", cl, naiveRecords, log, st.Handle)
				wg.Wait()
				return errors.Join(err, workerErr)
			}
		}
	case "sink":
		// The sink keeps its batches in the naive baseline too: ClickHouse
		// takes no per-payout transactions, and one insert per row would
		// measure the engine's part-per-insert cost, not the pipeline's.
		st := &sink.Stage{Feeds: []sink.Feed{&sink.StatusFeed{Name: topics.Status, Reports: deps.reports, Log: log}}, Kafka: cl, Log: log}
		run = st.Run
	}
	topic := strings.Join(subs, ",")
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		log.Info("stage started", "group", group, "topic", topic)
		if err := run(ctx); err != nil {
			s.errs <- fmt.Errorf("stage %s: %w", name, err)
		}
		log.Info("stage stopped")
	}()
	return nil
}

// startRelay launches the outbox relay: a producer only, no consumer group.
func (s *stages) startRelay(ctx context.Context, deps stageDeps) error {
	var opts []kgo.Opt
	if deps.naive {
		opts = naiveClientOpts()
	}
	cl, err := processor.NewClient(deps.brokers, opts...)
	if err != nil {
		return err
	}
	s.clients = append(s.clients, cl)
	log := slog.Default().With("stage", "relay")
	st := &relay.Stage{Payouts: payout.NewStore(deps.pool), Batches: batch.NewStore(deps.pool), Kafka: cl, Topics: deps.topics, Log: log}
	if deps.naive {
		naiveRelay(st)
	}
	// The relay role also releases held payouts (issue 14): due schedules,
	// expired approvals, and releases a crash left unpublished. Both turn
	// committed Postgres state into Kafka records; extra instances skip
	// what another holds.
	hw := &hold.Worker{Store: hold.NewStore(deps.pool), Callbacks: callbacks.NewStore(deps.pool),
		Publish: hold.Publisher(cl, deps.topics.Requests), Log: slog.Default().With("stage", "holds")}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = hw.Run(ctx)
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		log.Info("stage started", "topic", deps.topics.Status)
		if err := st.Run(ctx); err != nil {
			s.errs <- fmt.Errorf("stage relay: %w", err)
		}
		log.Info("stage stopped")
	}()
	return nil
}

// wait blocks until every stage has returned, then closes their clients
// (leaving the consumer groups).
func (s *stages) wait() error {
	s.wg.Wait()
	for _, cl := range s.clients {
		cl.Close()
	}
	select {
	case err := <-s.errs:
		return err
	default:
		return nil
	}
}

// bankConfig is how a role reaches one environment's banks: the bank
// gateway's URL, an optional timeout replacing every profile's, an optional
// bank-profiles file (docs/banks.md) that sets each bank's profile and
// base URL, and an optional credential by reference (resolveCredential)
// sent with every call. prefix is the flags' ("" sandbox, "production-").
type bankConfig struct {
	url          string
	timeout      time.Duration
	profilesPath string
	credentials  string
	prefix       string
}

// register adds --bank-url (with def as its default), --bank-profiles and
// --bank-credentials; withTimeout adds --bank-timeout.
func (b *bankConfig) register(fs *flag.FlagSet, def string, withTimeout bool) {
	fs.StringVar(&b.url, "bank-url", def, "base URL of the sandbox bank gateway (the sandbox banks); a bank-profiles file may give banks other URLs")
	fs.StringVar(&b.profilesPath, "bank-profiles", "", "YAML file of the sandbox banks' profiles and base URLs (docs/banks.md; deploy/profiles/example.yaml); default: the built-in profiles")
	fs.StringVar(&b.credentials, "bank-credentials", "", "credential of --bank-url by reference: env:NAME or file:/path")
	if withTimeout {
		fs.DurationVar(&b.timeout, "bank-timeout", 0, "timeout of one bank call, replacing every bank profile's in both environments (0: the profiles'); a transfer that times out is resolved by status queries")
	}
}

// profiles loads the bank-profiles file, or the built-in profiles.
func (b bankConfig) profiles() (connectors.ProfileFile, error) {
	if b.profilesPath == "" {
		return connectors.ProfileFile{Profiles: connectors.DefaultProfiles()}, nil
	}
	pf, err := connectors.LoadProfileFile(b.profilesPath)
	if err != nil && b.prefix != "" {
		return pf, fmt.Errorf("--%sbank-profiles: %w", b.prefix, err)
	}
	return pf, err
}

// urls are every base URL the banks are called at: the default and the
// bank-profiles file's own.
func (b bankConfig) urls(pf connectors.ProfileFile) map[string]bool {
	out := map[string]bool{sameURL(pf.URLFor("", b.url)): true}
	for code := range pf.Profiles {
		out[sameURL(pf.URLFor(code, b.url))] = true
	}
	for _, u := range pf.URLs {
		out[sameURL(u)] = true
	}
	return out
}

// sameURL is a base URL in a form where two spellings of one gateway
// compare equal (case of scheme and host, a trailing slash).
func sameURL(s string) string {
	u, err := neturl.Parse(strings.TrimRight(s, "/"))
	if err != nil {
		return s
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	return u.String()
}

// newBank is the bank connector of the API and the workers: the HTTP
// clients of the banks' base URLs, guarded by every bank's profile
// (breaker, bulkhead, rate limit, windows). It also returns the profiles,
// for GET /v1/banks.
func (b bankConfig) newBank() (*connectors.Guard, connectors.Profiles, error) {
	token, err := resolveCredential(b.prefix+"bank-credentials", b.credentials)
	if err != nil {
		return nil, nil, err
	}
	pf, err := b.profiles()
	if err != nil {
		return nil, nil, err
	}
	profiles := pf.Profiles
	if b.timeout > 0 {
		for code, p := range profiles {
			p.Timeout = b.timeout
			profiles[code] = p
		}
	}
	// The guard applies each bank's timeout; the clients' own are off.
	opts := []httpbank.Option{httpbank.WithTimeout(0), httpbank.WithCredential(token)}
	def := pf.URLFor("", b.url)
	clients := map[string]connectors.Connector{def: httpbank.New(def, opts...)}
	byBank := map[string]connectors.Connector{}
	for code := range profiles {
		u := pf.URLFor(code, b.url)
		if clients[u] == nil {
			clients[u] = httpbank.New(u, opts...)
		}
		byBank[code] = clients[u]
	}
	return connectors.NewGuard(connectors.NewRouter(clients[def], byBank), profiles, nil), profiles, nil
}

// envBanks are the workers' bank gateways: sandbox payouts to the sandbox
// banks (--bank-url, --bank-profiles, --bank-credentials), production
// payouts to the production gateway (--production-bank-url,
// --production-bank-profiles, --production-bank-credentials), none when
// --production-bank-url is not set.
type envBanks struct {
	sandbox, production bankConfig
}

// register adds both environments' flags; def is --bank-url's default.
func (e *envBanks) register(fs *flag.FlagSet, def string, withTimeout bool) {
	e.sandbox.register(fs, def, withTimeout)
	e.production.prefix = "production-"
	fs.StringVar(&e.production.url, "production-bank-url", "", "base URL of the production bank gateway (none: production payouts are not sent; they wait and fail BANK_UNAVAILABLE after the unavailable limit)")
	fs.StringVar(&e.production.profilesPath, "production-bank-profiles", "", "YAML file of the production banks' profiles and base URLs (docs/banks.md); default: the built-in profiles")
	fs.StringVar(&e.production.credentials, "production-bank-credentials", "", "credential of --production-bank-url by reference: env:NAME or file:/path")
}

// newBanks builds each environment's guarded connector. It refuses a
// production setting without --production-bank-url, and a production
// gateway that any sandbox bank is also called at (or the other way):
// a production payout must never reach the simulator.
func (e envBanks) newBanks() (*connectors.Banks, error) {
	sb, _, err := e.sandbox.newBank()
	if err != nil {
		return nil, err
	}
	byEnv := map[string]*connectors.Guard{payout.Sandbox: sb}
	prod := e.production
	prod.timeout = e.sandbox.timeout
	if prod.url == "" {
		if prod.profilesPath != "" || prod.credentials != "" {
			return nil, fmt.Errorf("--production-bank-profiles and --production-bank-credentials need --production-bank-url")
		}
		return connectors.NewBanks(byEnv, nil), nil
	}
	spf, err := e.sandbox.profiles()
	if err != nil {
		return nil, err
	}
	ppf, err := prod.profiles()
	if err != nil {
		return nil, err
	}
	sandboxURLs := e.sandbox.urls(spf)
	for u := range prod.urls(ppf) {
		if sandboxURLs[u] {
			return nil, fmt.Errorf("production bank gateway %s is also a sandbox bank URL (--bank-url or --bank-profiles): production must not reach the simulated banks, nor sandbox the real ones", u)
		}
	}
	pg, _, err := prod.newBank()
	if err != nil {
		return nil, err
	}
	byEnv[payout.Production] = pg
	return connectors.NewBanks(byEnv, nil), nil
}

// banksimOptions are the sandbox banks with every bank's median latency set
// to median (p99 eight times that), or their realistic per-bank defaults
// when median is 0.
func banksimOptions(median time.Duration) banksim.Options {
	if median <= 0 {
		return banksim.DefaultOptions()
	}
	return banksim.Options{Latency: banksim.Latency{Median: median, P99: 8 * median}}
}

// callbackConfig is the callbacks' configuration, shared by the api role
// (URL checks, secret rotation) and the callbacks stage (delivery).
type callbackConfig struct {
	allowInsecureSandbox bool
	attemptTimeout       time.Duration
	retryBase, retryMax  time.Duration
	retryFor             time.Duration
	secretGrace          time.Duration
	perEndpoint          int
	concurrency          int
}

// register adds the callback flags; delivery adds the worker's.
func (c *callbackConfig) register(fs *flag.FlagSet, delivery bool) {
	fs.BoolVar(&c.allowInsecureSandbox, "callbacks-allow-insecure-sandbox", false,
		"let sandbox callback URLs use plain http and loopback or private addresses (development and tests; production is never relaxed)")
	fs.DurationVar(&c.retryFor, "callback-retry-for", callbacks.DefaultRetryFor, "how long a callback is retried before it is marked failed")
	fs.DurationVar(&c.secretGrace, "callback-secret-grace", callbacks.DefaultSecretGrace, "how long a rotated-out callback secret keeps signing")
	if !delivery {
		return
	}
	fs.DurationVar(&c.attemptTimeout, "callback-attempt-timeout", 10*time.Second, "timeout of one callback attempt")
	fs.DurationVar(&c.retryBase, "callback-retry-base", 10*time.Second, "first callback retry delay; doubles per attempt, with jitter")
	fs.DurationVar(&c.retryMax, "callback-retry-max", time.Hour, "longest callback retry delay")
	fs.IntVar(&c.perEndpoint, "callback-per-endpoint", 64, "ceiling on each merchant environment's callback_concurrency setting (POSTs in flight to one endpoint, across workers)")
	fs.IntVar(&c.concurrency, "callback-concurrency", 64, "callback attempts in flight per process")
}

func (c callbackConfig) validate() error {
	switch {
	case c.retryFor < time.Minute:
		return fmt.Errorf("--callback-retry-for must be at least 1m, got %s", c.retryFor)
	case c.secretGrace < 0:
		return fmt.Errorf("--callback-secret-grace must not be negative")
	case c.attemptTimeout < 0 || c.retryBase < 0 || c.retryMax < c.retryBase:
		return fmt.Errorf("--callback-attempt-timeout, --callback-retry-base must be positive and --callback-retry-max at least the base")
	case c.perEndpoint < 0 || c.concurrency < 0:
		return fmt.Errorf("--callback-per-endpoint and --callback-concurrency must be positive")
	}
	return nil
}

func (c callbackConfig) policy() callbacks.Policy {
	return callbacks.Policy{AllowInsecureSandbox: c.allowInsecureSandbox}
}

func (c callbackConfig) store(pool *pgxpool.Pool) *callbacks.Store {
	s := callbacks.NewStore(pool)
	if c.retryFor > 0 {
		s.RetryFor = c.retryFor
	}
	if c.secretGrace > 0 {
		s.SecretGrace = c.secretGrace
	}
	return s
}

func (c callbackConfig) worker(store *callbacks.Store, log *slog.Logger) *callbacks.Worker {
	return &callbacks.Worker{
		Store: store, Policy: c.policy(), Log: log,
		MaxConcurrent: c.concurrency, PerEndpoint: c.perEndpoint, AttemptTimeout: c.attemptTimeout,
		Backoff: retry.Backoff{Base: c.retryBase, Max: c.retryMax},
	}
}
