package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/processor/dispatch"
	"github.com/disburse/disburse/processor/ledgerstage"
	"github.com/disburse/disburse/processor/sink"
	"github.com/disburse/disburse/reports"
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
func newAPIServer(pool *pgxpool.Pool, kafka *kgo.Client, topics events.Topics, operatorToken string) *api.Server {
	return &api.Server{
		Payouts:       payout.NewStore(pool),
		Merchants:     merchant.NewStore(pool),
		Ledger:        ledger.NewStore(pool),
		Kafka:         kafka,
		Topics:        topics,
		Log:           slog.Default(),
		OperatorToken: operatorToken,
	}
}

// stageNames are the stages `worker --stages` accepts.
var stageNames = []string{"ledger", "dispatch", "sink"}

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
	bank        connectors.Connector
	// reports is the ClickHouse store of the sink stage.
	reports *reports.Store
}

// start launches the named stage; it consumes until ctx ends.
func (s *stages) start(ctx context.Context, name string, deps stageDeps) error {
	brokers, pool, topics, bank := deps.brokers, deps.pool, deps.topics, deps.bank
	if s.errs == nil {
		s.errs = make(chan error, len(stageNames))
	}
	var group, topic string
	switch name {
	case "ledger":
		group, topic = deps.groupPrefix+"ledger", topics.Requests
	case "dispatch":
		group, topic = deps.groupPrefix+"dispatch", topics.Dispatch
	case "sink":
		if deps.reports == nil {
			return errors.New("stage sink needs ClickHouse: set --clickhouse-addr or --chdb-path")
		}
		group, topic = deps.groupPrefix+"sink", topics.Status
	default:
		return fmt.Errorf("unknown stage %q (known: %v)", name, stageNames)
	}
	cl, err := processor.NewClient(brokers, processor.ConsumerOpts(group, topic)...)
	if err != nil {
		return err
	}
	s.clients = append(s.clients, cl)
	log := slog.Default().With("stage", name)
	var run func(context.Context) error
	switch name {
	case "ledger":
		st := &ledgerstage.Stage{Ledger: ledger.NewStore(pool), Kafka: cl, Topics: topics, Log: log}
		run = st.Run
	case "dispatch":
		st := &dispatch.Stage{Payouts: payout.NewStore(pool), Ledger: ledger.NewStore(pool), Bank: bank, Kafka: cl, Topics: topics, Log: log}
		run = st.Run
	case "sink":
		st := &sink.Stage{Feeds: []sink.Feed{&sink.StatusFeed{Name: topics.Status, Reports: deps.reports, Log: log}}, Kafka: cl, Log: log}
		run = st.Run
	}
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
