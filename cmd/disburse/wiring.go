package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/batch"
	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/connectors/httpbank"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/processor/dispatch"
	"github.com/disburse/disburse/processor/ledgerstage"
	"github.com/disburse/disburse/schemas/events"
)

// openPostgres connects and checks the connection.
func openPostgres(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("--postgres-url: %w", err)
	}
	if cfg.MaxConns < 16 {
		cfg.MaxConns = 16
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
	return pool, nil
}

// newAPIServer wires the HTTP handlers.
// bank answers account inquiries; its answers are cached per instance for
// inquiryTTL.
func newAPIServer(pool *pgxpool.Pool, kafka *kgo.Client, topics events.Topics, operatorToken string, bank *connectors.Guard, inquiryTTL time.Duration, nameThreshold float64) *api.Server {
	return &api.Server{
		Bank:               connectors.NewInquiryCache(bank, inquiryTTL, inquiryCacheSize),
		NameMatchThreshold: nameThreshold,
		Payouts:            payout.NewStore(pool),
		Merchants:          merchant.NewStore(pool),
		Ledger:             ledger.NewStore(pool),
		Kafka:              kafka,
		Topics:             topics,
		Log:                slog.Default(),
		OperatorToken:      operatorToken,
	}
}

// inquiryCacheSize bounds the account inquiries an API instance keeps.
const inquiryCacheSize = 100_000

// stageNames are the stages `worker --stages` accepts.
var stageNames = []string{"ledger", "dispatch"}

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
	// bank is the bank connector with the banks' profiles applied.
	bank *connectors.Guard
	// tune adjusts the dispatch stage before it starts (tests shorten its
	// windows).
	tune func(*dispatch.Stage)
}

// start launches the named stage; it consumes until ctx ends.
func (s *stages) start(ctx context.Context, name string, deps stageDeps) error {
	brokers, pool, topics, bank := deps.brokers, deps.pool, deps.topics, deps.bank
	if s.errs == nil {
		s.errs = make(chan error, len(stageNames))
	}
	var group string
	var subs []string
	switch name {
	case "ledger":
		group, subs = deps.groupPrefix+"ledger", []string{topics.Requests}
	case "dispatch":
		group, subs = deps.groupPrefix+"dispatch", []string{topics.Dispatch, topics.DispatchRetry}
	default:
		return fmt.Errorf("unknown stage %q (known: %v)", name, stageNames)
	}
	log := slog.Default().With("stage", name)
	opts := processor.ConsumerOpts(group, subs...)
	var run func(context.Context) error
	var dst *dispatch.Stage
	if name == "dispatch" {
		dst = &dispatch.Stage{Payouts: payout.NewStore(pool), Ledger: ledger.NewStore(pool), Batches: batch.NewStore(pool),
			Bank: bank, Topics: topics, Log: log}
		if deps.tune != nil {
			deps.tune(dst)
		}
		opts = append(opts, dst.GroupOpts()...)
	}
	cl, err := processor.NewClient(brokers, opts...)
	if err != nil {
		return err
	}
	s.clients = append(s.clients, cl)
	switch name {
	case "ledger":
		st := &ledgerstage.Stage{Ledger: ledger.NewStore(pool), Batches: batch.NewStore(pool), Kafka: cl, Topics: topics, Log: log}
		run = st.Run
	case "dispatch":
		dst.Kafka = cl
		run = dst.Run
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

// newBank is the bank connector of the API and the workers: the HTTP client
// of the bank gateway at url, guarded by every bank's profile (breaker,
// bulkhead, rate limit, windows). timeout, when positive, replaces the
// profiles' call timeouts.
func newBank(url string, timeout time.Duration) *connectors.Guard {
	profiles := connectors.DefaultProfiles()
	if timeout > 0 {
		for code, p := range profiles {
			p.Timeout = timeout
			profiles[code] = p
		}
	}
	// The guard applies each bank's timeout; the client's own is off.
	return connectors.NewGuard(httpbank.New(url, httpbank.WithTimeout(0)), profiles, nil)
}
