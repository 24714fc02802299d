package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/audit"
	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/connectors/banksim"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/reports"
	"github.com/disburse/disburse/schemas"
	"github.com/disburse/disburse/schemas/events"
)

// benchBanks are the six banks a run's payouts go to, in turn.
var benchBanks = []string{"bca", "bni", "bri", "mandiri", "cimb", "permata"}

// benchAccount is item i's account: ten digits, never a magic suffix of
// the sandbox (docs/banks.md), so every payout completes.
func benchAccount(i int) string { return fmt.Sprintf("12%07d5", i%10_000_000) }

// benchRun runs the pipeline once on its own database, topics and reports
// database, and measures it.
func benchRun(ctx context.Context, c benchConfig, admin *pgxpool.Pool, eng reports.Engine, naive bool) (res benchResult, err error) {
	mode := "set-based"
	if naive {
		mode = "naive"
	}
	res = benchResult{Mode: mode, Stages: c.stages, Merchants: c.merchants, BatchItems: c.batchItems, Singles: c.singles,
		Clients: c.clients, BankMedian: c.bankLatency.String(), Items: c.merchants * (c.batchItems + c.singles), Legs: map[string]Quantiles{}}
	id := fmt.Sprintf("%s_%d", map[bool]string{false: "sets", true: "naive"}[naive], time.Now().UnixMilli())
	dbName := "bench_" + id
	prefix := "bench." + id + "."
	say := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "bench %s: %s\n", mode, fmt.Sprintf(format, a...))
	}

	// --- the run's database, topics and reports database ---
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{dbName}.Sanitize()); err != nil {
		return res, fmt.Errorf("create database %s: %w", dbName, err)
	}
	u, err := url.Parse(c.postgresURL)
	if err != nil {
		return res, fmt.Errorf("--postgres-url: %w", err)
	}
	u.Path = "/" + dbName
	dbURL := u.String()
	brokers := splitList(c.kafkaBrokers)
	topics := events.NewTopics(prefix)
	rs, err := reportsDB(eng, "bench_"+id)
	if err != nil {
		return res, err
	}
	defer func() {
		if c.keep {
			say("kept database %s, topics %s*, reports database %s", dbName, prefix, rs.Database())
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, err := admin.Exec(cctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{dbName}.Sanitize()+" WITH (FORCE)"); err != nil {
			say("drop database %s: %v", dbName, err)
		}
		if err := eng.Exec(cctx, "DROP DATABASE IF EXISTS "+rs.Database()); err != nil {
			say("drop reports database: %v", err)
		}
		if cl, err := processor.NewClient(brokers); err == nil {
			_, _ = kadm.NewClient(cl).DeleteTopics(cctx, topics.All()...)
			cl.Close()
		}
	}()
	if err := schemas.MigratePostgres(ctx, dbURL, func(string, ...any) {}); err != nil {
		return res, err
	}
	if err := rs.Migrate(ctx, func(string, ...any) {}); err != nil {
		return res, err
	}
	kopts := []kgo.Opt{}
	if naive {
		kopts = naiveClientOpts()
	}
	producer, err := processor.NewClient(brokers, kopts...)
	if err != nil {
		return res, err
	}
	defer producer.Close()
	if err := processor.EnsureTopics(ctx, producer, int32(c.partitions), topics.All()...); err != nil {
		return res, err
	}

	// --- the merchants, before the measured part ---
	setup, err := openPostgres(ctx, dbURL)
	if err != nil {
		return res, err
	}
	keys := make([]string, c.merchants)
	perMerchant := int64(c.batchItems+c.singles) * 20_000
	for m := range keys {
		mid := fmt.Sprintf("bench-m%d", m+1)
		ms := merchant.NewStore(setup)
		if err := ms.Create(ctx, mid, "Bench merchant "+mid); err != nil {
			setup.Close()
			return res, err
		}
		// Enough money for every payout and its fee: the run measures
		// payouts, not refusals.
		if keys[m], err = ms.ActivateSandbox(ctx, mid, "", max(api.DemoDeposit, 2*perMerchant), api.DefaultSettings); err != nil {
			setup.Close()
			return res, err
		}
	}
	setup.Close()

	// --- the sandbox banks and the callback receiver, over HTTP on loopback ---
	var srv servers
	defer srv.shutdown()
	bank := newBankClock(banksim.New(banksimOptions(c.bankLatency)).Handler())
	bankAddr, err := srv.startPlain("banksim", "127.0.0.1:0", bank)
	if err != nil {
		return res, err
	}
	bankURL := "http://" + bankAddr.String()
	recv := newCallbackReceiver()
	recvAddr, err := srv.startPlain("callback receiver", "127.0.0.1:0", recv)
	if err != nil {
		return res, err
	}

	// --- the API and the stages ---
	pool, err := openPostgres(ctx, dbURL)
	if err != nil {
		return res, err
	}
	poolClosed := false
	defer func() {
		if !poolClosed {
			pool.Close()
		}
	}()
	guard, profiles, err := bankConfig{url: bankURL, profilesPath: c.bankProfiles}.newBank()
	if err != nil {
		return res, err
	}
	apiSrv := newAPIServer(pool, producer, topics, "op-bench-"+id, guard, time.Minute, 0.8, c.callbacks)
	apiSrv.Profiles = profiles
	apiSrv.Reports = rs
	apiSrv.AuthCacheTTL = api.DefaultAuthCacheTTL // as the api role runs by default
	// The bench sends faster than a merchant's default budget; the limiter's
	// own cost is still paid, with the limiter the api role uses: this
	// instance's share of each merchant's rate, in memory.
	apiSrv.Limits = merchant.Limits{CreatePerSecond: 1_000_000, ReadPerSecond: 1_000_000}
	instCtx, stopInstance := context.WithCancel(ctx)
	defer stopInstance()
	if err := shareRateLimits(instCtx, apiSrv, pool); err != nil {
		return res, err
	}
	apiAddr, err := srv.start("api", "127.0.0.1:0", apiSrv.Handler())
	if err != nil {
		return res, err
	}
	apiURL := "http://" + apiAddr.String()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.clients + c.merchants + 4}, Timeout: 10 * time.Minute}

	// Callback URL and secret of each merchant, through the settings API.
	for m, key := range keys {
		mid := fmt.Sprintf("bench-m%d", m+1)
		var st map[string]any
		if code, err := benchCall(ctx, hc, apiURL, key, "PATCH", "/v1/settings", nil, map[string]any{"callback_url": fmt.Sprintf("http://%s/hooks/%s", recvAddr, mid),
			"callback_batch_size": c.callbackBatch, "callback_concurrency": c.callbackConcurrency}, &st); err != nil || code != 200 {
			return res, fmt.Errorf("set callback url of %s: %d %v %v", mid, code, err, st)
		}
		if code, err := benchCall(ctx, hc, apiURL, key, "GET", "/v1/settings", nil, nil, &st); err != nil || code != 200 {
			return res, fmt.Errorf("get settings of %s: %d %v", mid, code, err)
		}
		secret, _ := st["callback_secret"].(string)
		if secret == "" {
			return res, fmt.Errorf("settings of %s show no callback_secret", mid)
		}
		recv.setSecret(mid, secret)
	}

	stageCtx, stopStages := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStages()
	var st stages
	var workers []*benchWorker
	inBench := []string{"api", "sandbox banks", "callback receiver", "progress"}
	deps := stageDeps{brokers: brokers, pool: pool, groupPrefix: prefix, topics: topics, banks: connectors.NewBanks(map[string]*connectors.Guard{payout.Sandbox: guard}, nil), callbacks: c.callbacks, reports: rs, naive: naive}
	if c.stages == "inprocess" {
		for _, name := range stageNames {
			if err := st.start(stageCtx, name, deps); err != nil {
				return res, err
			}
		}
		inBench = append(inBench, stageNames...)
	} else {
		exe, err := benchExecutable()
		if err != nil {
			return res, err
		}
		for _, name := range stageNames {
			// The embedded ClickHouse serves one process: with it, the sink
			// runs here; with a server (--clickhouse-addr) it is a process too.
			if name == "sink" && c.reports.addr == "" {
				if err := st.start(stageCtx, name, deps); err != nil {
					return res, err
				}
				inBench = append(inBench, "sink (embedded ClickHouse)")
				continue
			}
			w, err := startBenchWorker(ctx, exe, name, c, dbURL, prefix, bankURL, rs.Database(), naive)
			if err != nil {
				for _, w := range workers {
					w.stop()
				}
				return res, err
			}
			workers = append(workers, w)
		}
	}
	stopAll := func() {
		stopStages()
		if err := st.wait(); err != nil {
			say("stages: %v", err)
		}
		for _, w := range workers {
			w.stop()
		}
	}
	defer stopAll()
	// The clock starts when every stage's consumer group is formed: the
	// join is start-up, not throughput.
	if err := waitGroupsStable(ctx, producer, prefix); err != nil {
		return res, err
	}

	// Commits from here on are the pipeline's, less the bench's own queries.
	commits0, err := dbCommits(ctx, admin, dbName)
	if err != nil {
		return res, err
	}
	watch, err := pgxpool.New(ctx, dbURL+map[bool]string{true: "&", false: "?"}[strings.Contains(dbURL, "?")]+"pool_max_conns=1")
	if err != nil {
		return res, err
	}
	defer watch.Close()
	var ownTx atomic.Int64
	resetPeakRSS()
	cpu0 := selfCPU()
	pgServer, pgLocal := localPostgres(ctx, admin)
	pgCPU0 := pgServer.cpu()

	// --- send ---
	t0 := time.Now()
	var sendMu sync.Mutex
	sentAt := map[string]time.Time{} // "<merchant>/<reference_id>" -> sent
	var lastAccept atomic.Int64
	accepted := func() {
		now := time.Now().UnixNano()
		for {
			old := lastAccept.Load()
			if now <= old || lastAccept.CompareAndSwap(old, now) {
				return
			}
		}
	}
	var singleLat []float64
	sendErr := make(chan error, c.merchants+c.clients)
	var sendWG sync.WaitGroup
	if c.batchItems > 0 {
		for m, key := range keys {
			mid := fmt.Sprintf("bench-m%d", m+1)
			var csv bytes.Buffer
			csv.WriteString("reference_id,bank_code,account_number,amount\n")
			for i := 0; i < c.batchItems; i++ {
				fmt.Fprintf(&csv, "b%d,%s,%s,%d\n", i, benchBanks[i%len(benchBanks)], benchAccount(i), 10_000+i%1000)
			}
			sendWG.Add(1)
			go func() {
				defer sendWG.Done()
				sendMu.Lock()
				sentAt[mid+"/batch"] = time.Now()
				sendMu.Unlock()
				var out map[string]any
				code, err := benchCall(ctx, hc, apiURL, key, "POST", "/v1/batches?reference_id=bench-"+id, map[string]string{"Content-Type": "text/csv", "Idempotency-Key": "batch-" + id}, csv.Bytes(), &out)
				if err == nil && (code != 202 || out["item_count"] != float64(c.batchItems)) {
					err = fmt.Errorf("batch of %s: HTTP %d %v", mid, code, out["error"])
				}
				if err != nil {
					sendErr <- err
					return
				}
				accepted()
			}()
		}
	}
	if c.singles > 0 {
		jobs := make(chan [2]int)
		var latMu sync.Mutex
		for range c.clients {
			sendWG.Add(1)
			go func() {
				defer sendWG.Done()
				for j := range jobs {
					m, i := j[0], j[1]
					mid := fmt.Sprintf("bench-m%d", m+1)
					ref := fmt.Sprintf("s%d", i)
					body := map[string]any{"reference_id": ref, "bank_code": benchBanks[i%len(benchBanks)], "account_number": benchAccount(i + 5_000_000), "amount": 10_000 + i%1000}
					start := time.Now()
					sendMu.Lock()
					sentAt[mid+"/"+ref] = start
					sendMu.Unlock()
					var out map[string]any
					code, err := benchCall(ctx, hc, apiURL, keys[m], "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": "single-" + ref}, body, &out)
					if err == nil && code != 202 {
						err = fmt.Errorf("single payout of %s: HTTP %d %v", mid, code, out["error"])
					}
					if err != nil {
						sendErr <- err
						for range jobs { // drain: the run has failed
						}
						return
					}
					accepted()
					latMu.Lock()
					singleLat = append(singleLat, time.Since(start).Seconds())
					latMu.Unlock()
				}
			}()
		}
		go func() {
			defer close(jobs)
			for i := 0; i < c.singles; i++ {
				for m := range keys {
					select {
					case jobs <- [2]int{m, i}:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
	}

	// --- follow the run until every payout is terminal, called back and in the reports ---
	visible := newReportsWatch(rs)
	sendsDone := make(chan struct{})
	go func() { sendWG.Wait(); close(sendsDone) }()
	deadline := time.NewTimer(c.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(c.progress)
	defer tick.Stop()
	var prev benchProgress
	prevAt := t0
	n := int64(res.Items)
	for {
		select {
		case err := <-sendErr:
			return res, err
		case <-ctx.Done():
			return res, ctx.Err()
		case <-deadline.C:
			return res, fmt.Errorf("not finished after --timeout %s: %+v", c.timeout, prev)
		case <-tick.C:
		}
		p, err := readProgress(ctx, watch, &ownTx)
		if err != nil {
			return res, err
		}
		if err := visible.poll(ctx); err != nil {
			return res, err
		}
		p.callbacks = recv.payouts.Load()
		p.visible = int64(visible.count())
		now := time.Now()
		dt := now.Sub(prevAt).Seconds()
		fmt.Fprintf(os.Stderr, "bench %s %5.0fs  accepted %d (%s/s)  debited %d (%s/s)  terminal %d (%s/s)  callbacks %d (%s/s)  in reports %d\n",
			mode, now.Sub(t0).Seconds(), p.accepted, fmtRate(float64(p.accepted-prev.accepted)/dt), p.debited, fmtRate(float64(p.debited-prev.debited)/dt),
			p.terminal, fmtRate(float64(p.terminal-prev.terminal)/dt), p.callbacks, fmtRate(float64(p.callbacks-prev.callbacks)/dt), p.visible)
		prev, prevAt = p, now
		select {
		case <-sendsDone:
		default:
			continue
		}
		if p.terminal >= n && p.callbacks >= n && p.visible >= n && recv.badSig.Load() == 0 {
			break
		}
		if bad := recv.badSig.Load(); bad > 0 {
			return res, fmt.Errorf("%d callbacks with a bad signature", bad)
		}
	}
	// The receiver counts a callback when its POST arrives; the worker
	// records it delivered just after. Wait for the records, from which
	// the callback leg is measured.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var delivered int64
		ownTx.Add(1)
		if err := pool.QueryRow(ctx, `SELECT count(DISTINCT subject_id) FROM callbacks
			WHERE delivered_at IS NOT NULL AND type IN ('disbursement.completed', 'disbursement.failed')`).Scan(&delivered); err != nil {
			return res, err
		}
		if delivered >= n {
			break
		}
	}
	cpuBench := selfCPU() - cpu0
	rssBench := peakRSSMiB()
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.LoadAverage = strings.Fields(string(b))[0]
	}

	// --- stop, then count ---
	stopAll()
	stopInstance()
	watch.Close()
	pool.Close()
	poolClosed = true
	time.Sleep(time.Second) // closed backends report their statistics as they exit
	pgCPU := pgServer.cpu() - pgCPU0
	commits1, err := dbCommits(ctx, admin, dbName)
	if err != nil {
		return res, err
	}
	res.PGCommits = commits1 - commits0 - ownTx.Load()
	res.PGCommitsPerPayout = float64(res.PGCommits) / float64(n)
	if res.KafkaRecords, err = kafkaRecords(ctx, producer, topics); err != nil {
		return res, err
	}
	res.KafkaRecordsPerItem = float64(res.KafkaRecords) / float64(n)

	per1000 := func(cpu time.Duration) float64 { return cpu.Seconds() / float64(n) * 1000 }
	res.Processes = append(res.Processes, ProcessUsage{Name: "bench", Runs: strings.Join(inBench, ", "),
		CPUSeconds: cpuBench.Seconds(), CPUSecondsPer1000: per1000(cpuBench), PeakRSSMiB: rssBench})
	for _, w := range workers {
		res.Processes = append(res.Processes, ProcessUsage{Name: "worker " + w.stage, Runs: w.stage,
			CPUSeconds: w.cpu.Seconds(), CPUSecondsPer1000: per1000(w.cpu), PeakRSSMiB: w.rssMiB})
	}
	if pgLocal {
		res.Processes = append(res.Processes, ProcessUsage{Name: "postgres", Runs: "the PostgreSQL server, every client of it on this machine",
			CPUSeconds: pgCPU.Seconds(), CPUSecondsPer1000: per1000(pgCPU)})
	}

	// --- legs, from the timestamps ---
	an, err := openPostgres(ctx, dbURL)
	if err != nil {
		return res, err
	}
	defer an.Close()
	if err := benchLegs(ctx, an, &res, t0, sentAt, bank.times(), recv, visible.times()); err != nil {
		return res, err
	}
	res.AcceptSeconds = time.Duration(lastAccept.Load() - t0.UnixNano()).Seconds()
	res.AcceptedPerSecond = float64(n) / res.AcceptSeconds
	res.SingleCreateMS = quantiles(singleLat)

	// --- the books ---
	rep, err := audit.Run(ctx, an, audit.Options{})
	if err != nil {
		return res, fmt.Errorf("audit: %w", err)
	}
	res.BooksProblems = append(res.BooksProblems, rep.Violations...)
	rrep, err := audit.Reports(ctx, an, rs)
	if err != nil {
		return res, fmt.Errorf("audit of the reports: %w", err)
	}
	res.BooksProblems = append(res.BooksProblems, rrep.Violations...)
	var led banksim.Ledger
	if _, err := benchCall(ctx, hc, bankURL, "", "GET", "/admin/ledger", nil, nil, &led); err != nil {
		return res, fmt.Errorf("sandbox bank ledger: %w", err)
	}
	res.BankTransfers, res.BankDuplicates = led.Transfers, len(led.Duplicates)
	if len(led.Duplicates) > 0 {
		res.BooksProblems = append(res.BooksProblems, fmt.Sprintf("the sandbox bank received %d reference(s) more than once, e.g. %v", len(led.Duplicates), led.Duplicates[0]))
	}
	if len(led.Conflicts) > 0 {
		res.BooksProblems = append(res.BooksProblems, fmt.Sprintf("the sandbox bank received %d reference(s) with different details", len(led.Conflicts)))
	}
	if led.Transfers != res.Completed+res.Failed-res.RefusedAtDebit {
		res.BooksProblems = append(res.BooksProblems, fmt.Sprintf("the sandbox bank holds %d transfers; %d payouts were sent", led.Transfers, res.Completed+res.Failed-res.RefusedAtDebit))
	}
	if d := recv.duplicate.Load(); d > 0 {
		say("%d callbacks arrived again (at-least-once delivery; not an error)", d)
	}
	res.CallbackBadSigs = recv.badSig.Load()
	recv.mu.Lock()
	res.CallbacksBatches = recv.batches
	recv.mu.Unlock()
	if c.batchItems > 0 && res.CallbacksBatches != c.merchants {
		res.BooksProblems = append(res.BooksProblems, fmt.Sprintf("%d batch.completed callbacks for %d batches", res.CallbacksBatches, c.merchants))
	}
	res.BooksOK = len(res.BooksProblems) == 0
	return res, nil
}

// benchProgress is what the run has reached.
type benchProgress struct {
	accepted, debited, terminal, callbacks, visible int64
}

// readProgress counts the payout events. Each query is one transaction
// the pipeline did not make, subtracted from the commit count.
func readProgress(ctx context.Context, db *pgxpool.Pool, own *atomic.Int64) (benchProgress, error) {
	var p benchProgress
	own.Add(1)
	err := db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'PENDING'), count(*) FILTER (WHERE status = 'PROCESSING'),
		count(*) FILTER (WHERE status IN ('COMPLETED', 'FAILED')) FROM payout_events`).Scan(&p.accepted, &p.debited, &p.terminal)
	return p, err
}

// dbCommits is the database's committed transactions so far.
func dbCommits(ctx context.Context, admin *pgxpool.Pool, db string) (int64, error) {
	var n int64
	err := admin.QueryRow(ctx, `SELECT xact_commit FROM pg_stat_database WHERE datname = $1`, db).Scan(&n)
	return n, err
}

// kafkaRecords sums the end offsets of the run's topics: every record the
// run produced (its topics were new).
func kafkaRecords(ctx context.Context, cl *kgo.Client, topics events.Topics) (int64, error) {
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics.All()...)
	if err != nil {
		return 0, fmt.Errorf("kafka end offsets: %w", err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, ends.Error()
}

// benchLegs reads every payout's timestamps and fills the legs, rates and
// outcome counts.
func benchLegs(ctx context.Context, db *pgxpool.Pool, res *benchResult, t0 time.Time, sentAt map[string]time.Time,
	bankAt map[string]time.Time, recv *callbackReceiver, visibleAt map[string]time.Time) error {
	// Hash joins over the three tables: callbacks has no index on
	// subject_id, and a correlated subquery per payout is quadratic.
	rows, err := db.Query(ctx, `WITH ev AS (
			SELECT disbursement_id,
				extract(epoch FROM min(at) FILTER (WHERE status = 'PENDING'))::float8 AS pending,
				extract(epoch FROM min(at) FILTER (WHERE status = 'PROCESSING'))::float8 AS processing,
				extract(epoch FROM min(at) FILTER (WHERE status IN ('COMPLETED', 'FAILED')))::float8 AS terminal
			FROM payout_events GROUP BY disbursement_id),
		cb AS (
			SELECT subject_id, extract(epoch FROM min(delivered_at))::float8 AS delivered
			FROM callbacks WHERE type IN ('disbursement.completed', 'disbursement.failed') GROUP BY subject_id)
		SELECT d.id, d.merchant_id, d.reference_id, d.batch_id IS NOT NULL, ev.pending, ev.processing, ev.terminal, d.status, cb.delivered
		FROM disbursements d JOIN ev ON ev.disbursement_id = d.id LEFT JOIN cb ON cb.subject_id = d.id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	legs := map[string][]float64{}
	var debits, terminals []float64
	var lastTerminal, lastCallback, lastVisible float64
	start := float64(t0.UnixNano()) / 1e9
	refused := 0
	for rows.Next() {
		var id, mid, ref, status string
		var inBatch bool
		var pending, processing, terminal, delivered *float64
		if err := rows.Scan(&id, &mid, &ref, &inBatch, &pending, &processing, &terminal, &status, &delivered); err != nil {
			return err
		}
		key := mid + "/" + ref
		if inBatch {
			key = mid + "/batch"
		}
		sent := float64(sentAt[key].UnixNano()) / 1e9
		if pending != nil {
			legs["accept"] = append(legs["accept"], *pending-sent)
		}
		if processing != nil && pending != nil {
			legs["debit"] = append(legs["debit"], *processing-*pending)
			debits = append(debits, *processing)
		}
		var bankDone *float64
		if b, ok := bankAt[id]; ok && processing != nil {
			v := float64(b.UnixNano()) / 1e9
			bankDone = &v
			legs["bank"] = append(legs["bank"], v-*processing)
		}
		if terminal == nil {
			continue
		}
		terminals = append(terminals, *terminal)
		lastTerminal = max(lastTerminal, *terminal)
		legs["end_to_end"] = append(legs["end_to_end"], *terminal-sent)
		switch {
		case bankDone != nil:
			legs["terminal"] = append(legs["terminal"], *terminal-*bankDone)
		case processing == nil:
			refused++ // refused at the debit: never at a bank
		}
		if status == "COMPLETED" {
			res.Completed++
		} else {
			res.Failed++
		}
		if delivered != nil {
			legs["callback"] = append(legs["callback"], *delivered-*terminal)
			lastCallback = max(lastCallback, *delivered)
		}
		if v, ok := visibleAt[id]; ok {
			at := float64(v.UnixNano()) / 1e9
			legs["reports"] = append(legs["reports"], at-*terminal)
			lastVisible = max(lastVisible, at)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for name, v := range legs {
		res.Legs[name] = quantiles(v)
	}
	res.RefusedAtDebit = refused
	res.DebitedPerSecond, _ = sustainedRate(debits, start)
	res.CompletedPerSecond, res.RateMethod = sustainedRate(terminals, start)
	res.TerminalSeconds = lastTerminal - start
	res.CallbacksSeconds = lastCallback - start
	res.ReportsSeconds = lastVisible - start
	return nil
}

// reportsWatch polls the reports for terminal rows and keeps when each
// payout's first became visible (to the poll's resolution).
type reportsWatch struct {
	rs    *reports.Store
	mu    sync.Mutex
	at    map[string]time.Time
	since int64 // unix seconds: rows inserted before were seen
}

func newReportsWatch(rs *reports.Store) *reportsWatch {
	return &reportsWatch{rs: rs, at: map[string]time.Time{}}
}

func (w *reportsWatch) poll(ctx context.Context) error {
	now := time.Now()
	// inserted_at has one-second resolution: look back two seconds.
	q := fmt.Sprintf(`SELECT disbursement_id FROM %s.payout_events WHERE status IN ('COMPLETED', 'FAILED') AND inserted_at >= toDateTime(%d)`,
		w.rs.Database(), max(0, w.since-2))
	w.since = now.Unix()
	return w.rs.Engine().QueryJSON(ctx, q, func(row []byte) error {
		var r struct {
			ID string `json:"disbursement_id"`
		}
		if err := json.Unmarshal(row, &r); err != nil {
			return err
		}
		w.mu.Lock()
		if _, ok := w.at[r.ID]; !ok {
			w.at[r.ID] = now
		}
		w.mu.Unlock()
		return nil
	})
}

func (w *reportsWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.at)
}

func (w *reportsWatch) times() map[string]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.at
}

// benchCall makes one API request; body is []byte (sent as is) or JSON.
func benchCall(ctx context.Context, hc *http.Client, base, key, method, path string, headers map[string]string, body, out any) (int, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return 0, err
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
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil && !errors.Is(err, io.EOF) {
			return resp.StatusCode, fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// benchWorker is one stage as its own `disburse worker` process.
type benchWorker struct {
	stage  string
	cmd    *exec.Cmd
	log    *tailBuffer
	done   chan struct{}
	cpu    time.Duration
	rssMiB float64
	once   sync.Once
}

func startBenchWorker(ctx context.Context, exe, stage string, c benchConfig, dbURL, prefix, bankURL, reportsDB string, naive bool) (*benchWorker, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	metrics := ln.Addr().String()
	ln.Close()
	args := []string{"worker", "--stages", stage, "--postgres-url", dbURL, "--kafka-brokers", c.kafkaBrokers,
		"--topic-prefix", prefix, "--partitions", fmt.Sprint(c.partitions), "--metrics-addr", metrics,
		"--bank-url", bankURL, "--bank-profiles", c.bankProfiles,
		"--callbacks-allow-insecure-sandbox", "--callback-attempt-timeout", c.callbacks.attemptTimeout.String(),
		"--callback-retry-base", c.callbacks.retryBase.String(), "--callback-retry-max", c.callbacks.retryMax.String(),
		"--callback-per-endpoint", fmt.Sprint(c.callbacks.perEndpoint), "--callback-concurrency", fmt.Sprint(c.callbacks.concurrency)}
	if stage == "sink" {
		args = append(args, "--clickhouse-addr", c.reports.addr, "--clickhouse-user", c.reports.user,
			"--clickhouse-password", c.reports.password, "--clickhouse-database", reportsDB)
	}
	if naive {
		args = append(args, "--naive")
	}
	w := &benchWorker{stage: stage, cmd: exec.Command(exe, args...), log: &tailBuffer{max: 64 << 10}, done: make(chan struct{})}
	w.cmd.Stdout, w.cmd.Stderr = w.log, w.log
	w.cmd.Env = append(os.Environ(), "DISBURSE_LOG_LEVEL=warn")
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %s: %w", stage, err)
	}
	go func() { _ = w.cmd.Wait(); close(w.done) }()
	// Ready when its /readyz answers (Postgres and Kafka reached).
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-w.done:
			return nil, fmt.Errorf("worker %s exited at start: %s", stage, w.log.String())
		default:
		}
		if resp, err := http.Get("http://" + metrics + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return w, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			w.stop()
			return nil, fmt.Errorf("worker %s not ready after 30 s: %s", stage, w.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the worker with SIGTERM (it finishes its batch and commits)
// and reads its CPU time and peak RSS.
func (w *benchWorker) stop() {
	w.once.Do(func() {
		// Peak RSS from the process's own VmHWM: the rusage of wait4 also
		// counts the parent's memory at the fork.
		w.rssMiB = peakRSSMiBOf(fmt.Sprintf("/proc/%d/status", w.cmd.Process.Pid))
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.done:
		case <-time.After(30 * time.Second):
			_ = w.cmd.Process.Kill()
			<-w.done
		}
		if ru, ok := w.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			w.cpu = rusageCPU(ru)
		}
		if !w.cmd.ProcessState.Success() {
			slog.Warn("bench worker exited with an error", "stage", w.stage, "state", w.cmd.ProcessState.String(), "log", w.log.String())
		}
	})
}

// tailBuffer keeps the last max bytes written to it: a worker's log, for
// the error message when it fails.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// waitGroupsStable waits until each stage's consumer group has members and
// is Stable.
func waitGroupsStable(ctx context.Context, cl *kgo.Client, prefix string) error {
	var groups []string
	for _, name := range stageNames {
		if name != "relay" { // a producer only, no consumer group
			groups = append(groups, prefix+name)
		}
	}
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(60 * time.Second)
	for {
		described, err := adm.DescribeGroups(ctx, groups...)
		ready := err == nil
		for _, g := range groups {
			d, ok := described[g]
			if !ok || d.Err != nil || d.State != "Stable" || len(d.Members) == 0 {
				ready = false
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the stages' consumer groups are not stable after 60 s: %v %v", described.Names(), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
