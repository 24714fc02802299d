package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/connectors/banksim"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor/statement"
)

// productionKey activates m1's production environment with a funded
// balance and returns its key.
func productionKey(t *testing.T, p *pipeline) string {
	t.Helper()
	ctx := context.Background()
	key, err := merchant.NewStore(p.pool).ActivateProduction(ctx, "m1", api.DefaultSettings)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.NewStore(p.pool).Deposit(ctx, "m1", payout.Production, "IDR", 1_000_000_000, "test top-up"); err != nil {
		t.Fatal(err)
	}
	return key
}

// submitWith creates one payout with key and returns its id.
func submitWith(t *testing.T, p *pipeline, key, ref, bank, account string, amount int64) string {
	t.Helper()
	body := map[string]any{"reference_id": ref, "bank_code": bank, "account_number": account, "amount": amount}
	code, d, _ := call(t, p.api.URL, key, "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": ref}, body)
	if code != 202 {
		t.Fatalf("create %s: %d %v", ref, code, d)
	}
	return d["id"].(string)
}

// adminLedger reads a sandbox bank server's own ledger over its admin API.
func adminLedger(t *testing.T, base string) banksim.Ledger {
	t.Helper()
	resp, err := http.Get(base + "/admin/ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l banksim.Ledger
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		t.Fatal(err)
	}
	return l
}

// metricSum adds up the samples of a counter or gauge whose labels include
// want.
func metricSum(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			if m.Counter != nil {
				sum += m.Counter.GetValue()
			} else if m.Gauge != nil {
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

// TestProductionRoutedToItsGateway runs sandbox and production payouts
// through one dispatch worker with two gateways (a second sandbox bank
// server stands in for production): each payout reaches only its own
// environment's gateway, once; the returns each gateway books are applied
// by that environment's statement follower; both statements have cursors
// and both environments health rows of their own.
func TestProductionRoutedToItsGateway(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t), func(c *pipelineConfig) { c.production = true })
	prodKey := productionKey(t, p)
	var sandbox, production, returned []string
	for i := range 10 {
		acct := "1234567890"
		if i < 2 {
			acct = "1234563333" // COMPLETED, then RETURNED on the bank's statement
		}
		bank := []string{"bca", "bni", "mandiri"}[i%3]
		sb := submit(t, p, fmt.Sprintf("sb-%d", i), bank, acct, 60_000)
		pr := submitWith(t, p, prodKey, fmt.Sprintf("pr-%d", i), bank, acct, 70_000)
		sandbox, production = append(sandbox, sb), append(production, pr)
		if i < 2 {
			returned = append(returned, sb, pr)
		}
	}
	waitAll(t, p, 60*time.Second)
	for _, id := range returned {
		key := p.key
		if slices.Contains(production, id) {
			key = prodKey
		}
		waitStatus(t, p.api.URL, key, id, "REVERSED")
	}

	for _, id := range sandbox {
		if n, m := p.bank.Received(id), p.prodBank.Received(id); n != 1 || m != 0 {
			t.Errorf("sandbox payout %s: received %d times by the sandbox banks, %d by the production gateway", id, n, m)
		}
	}
	for _, id := range production {
		if n, m := p.prodBank.Received(id), p.bank.Received(id); n != 1 || m != 0 {
			t.Errorf("production payout %s: received %d times by the production gateway, %d by the sandbox banks", id, n, m)
		}
	}
	// Each bank server's own ledger, over its admin API: only its own
	// environment's transfers, each once.
	for name, base := range map[string]string{"sandbox": p.bankURL, "production": p.prodURL} {
		l := adminLedger(t, base)
		if l.Transfers != 10 || l.Receipts != 10 || len(l.Duplicates) != 0 {
			t.Errorf("%s gateway's ledger: %d transfers, %d receipts, duplicates %v; want 10 and 10", name, l.Transfers, l.Receipts, l.Duplicates)
		}
		if l.ByBank["bca"].Returned != 1 || l.ByBank["bni"].Returned != 1 {
			t.Errorf("%s gateway's ledger: returns %+v", name, l.ByBank)
		}
	}
	for _, env := range []string{"sandbox", "production"} {
		if n := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE environment = $1 AND status = 'REVERSED'`, env); n != 2 {
			t.Errorf("%s: %d payouts REVERSED, want 2 (the returns its gateway booked)", env, n)
		}
		if n := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE environment = $1 AND status = 'COMPLETED'`, env); n != 8 {
			t.Errorf("%s: %d payouts COMPLETED, want 8", env, n)
		}
		if n := fixture.Count(t, p.pool, `SELECT count(*) FROM statement_cursors WHERE environment = $1 AND bank IN ('bca', 'bni') AND cursor <> ''`, env); n != 2 {
			t.Errorf("%s: %d of bca's and bni's statements have a cursor of their own, want 2", env, n)
		}
	}
	waitFor(t, 10*time.Second, func() bool {
		return fixture.Count(t, p.pool, `SELECT count(DISTINCT environment) FROM bank_health`) == 2
	}, "health rows of both environments")
	fixture.Audit(t, p.pool)
}

// TestProductionOutageLeavesSandboxFlowing takes the production gateway's
// bca down: production's bca breaker opens and its payouts wait, while
// sandbox payouts to bca complete, sandbox's breaker stays closed and GET
// /v1/banks shows bca available to sandbox. When the gateway is back the
// production payouts complete, each sent to it once.
func TestProductionOutageLeavesSandboxFlowing(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t), func(c *pipelineConfig) { c.production = true })
	prodKey := productionKey(t, p)
	if err := p.prodBank.SetDown("bca", true); err != nil {
		t.Fatal(err)
	}
	var sandbox, production []string
	for i := range 20 {
		production = append(production, submitWith(t, p, prodKey, fmt.Sprintf("pr-%d", i), "bca", "1234567890", 70_000))
		sandbox = append(sandbox, submit(t, p, fmt.Sprintf("sb-%d", i), "bca", "1234567890", 60_000))
	}
	prodOpened, sandboxOpened := false, false
	deadline := time.Now().Add(60 * time.Second)
	for {
		if p.prodGuard.State("bca").Breaker != "closed" {
			prodOpened = true
		}
		if p.guard.State("bca").Breaker != "closed" {
			sandboxOpened = true
		}
		done := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE id = ANY($1) AND status = 'COMPLETED'`, sandbox)
		if done == len(sandbox) && prodOpened {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("during production's bca outage: %d of %d sandbox payouts completed; production breaker opened: %v", done, len(sandbox), prodOpened)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if sandboxOpened {
		t.Errorf("sandbox's bca breaker left closed during production's outage")
	}
	if n := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE id = ANY($1) AND status <> 'PROCESSING'`, production); n != 0 {
		t.Fatalf("%d production payouts left PROCESSING while their gateway was down", n)
	}
	// The workers' health: production's bca not closed, sandbox's closed,
	// and GET /v1/banks tells each environment its own.
	waitFor(t, 15*time.Second, func() bool {
		return fixture.Count(t, p.pool, `SELECT count(*) FROM bank_health WHERE environment = 'production' AND bank = 'bca' AND breaker <> 'closed'`) > 0
	}, "production's bca breaker in bank_health")
	if n := fixture.Count(t, p.pool, `SELECT count(*) FROM bank_health WHERE environment = 'sandbox' AND breaker <> 'closed'`); n != 0 {
		t.Errorf("%d sandbox health rows not closed", n)
	}
	_, banks, _ := call(t, p.api.URL, p.key, "GET", "/v1/banks", nil, nil)
	for _, b := range banks["data"].([]any) {
		if b := b.(map[string]any); b["code"] == "bca" && (b["breaker"] != "closed" || b["available"] != true) {
			t.Errorf("sandbox GET /v1/banks during production's outage: %v", b)
		}
	}
	for _, id := range production {
		if n := p.bank.Received(id); n != 0 {
			t.Fatalf("production payout %s reached the sandbox banks", id)
		}
	}

	if err := p.prodBank.SetDown("bca", false); err != nil {
		t.Fatal(err)
	}
	waitAll(t, p, 60*time.Second)
	if n := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE status <> 'COMPLETED'`); n != 0 {
		t.Errorf("%d payouts did not complete", n)
	}
	for _, id := range production {
		if n, m := p.prodBank.Received(id), p.bank.Received(id); n != 1 || m != 0 {
			t.Errorf("production payout %s: received %d times by its gateway, %d by the sandbox banks", id, n, m)
		}
	}
	fixture.Audit(t, p.pool)
}

// TestNoProductionGateway: a worker without a production gateway sends
// no production payout anywhere. They wait parked (reason no_gateway)
// and, past their profile's unavailable limit, fail BANK_UNAVAILABLE with
// the money back; sandbox payouts complete meanwhile.
func TestNoProductionGateway(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t), func(c *pipelineConfig) {
		bca := c.profiles["bca"]
		bca.UnavailableLimit = 3 * time.Second
		c.profiles["bca"] = bca
	})
	prodKey := productionKey(t, p)
	balance := `SELECT balance FROM accounts WHERE merchant_id = 'm1' AND environment = 'production' AND kind = 'available'`
	before := fixture.Count(t, p.pool, balance)
	parked := metricSum(t, "disburse_dispatch_parked_total", map[string]string{"environment": "production", "reason": "no_gateway"})
	var production []string
	for i := range 10 {
		production = append(production, submitWith(t, p, prodKey, fmt.Sprintf("pr-%d", i), "bca", "1234567890", 70_000))
		submit(t, p, fmt.Sprintf("sb-%d", i), "bca", "1234567890", 60_000)
	}
	waitAll(t, p, 60*time.Second)
	if n := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE id = ANY($1) AND status = 'FAILED' AND failure_code = 'BANK_UNAVAILABLE'`, production); n != len(production) {
		t.Fatalf("%d of %d production payouts failed BANK_UNAVAILABLE", n, len(production))
	}
	if n := fixture.Count(t, p.pool, `SELECT count(*) FROM disbursements WHERE environment = 'sandbox' AND status = 'COMPLETED'`); n != 10 {
		t.Errorf("%d of 10 sandbox payouts completed", n)
	}
	for _, id := range production {
		if n := p.bank.Received(id); n != 0 {
			t.Fatalf("production payout %s reached the sandbox banks", id)
		}
	}
	if after := fixture.Count(t, p.pool, balance); after != before {
		t.Errorf("production available went from %d to %d; every debit should have come back", before, after)
	}
	if got := metricSum(t, "disburse_dispatch_parked_total", map[string]string{"environment": "production", "reason": "no_gateway"}) - parked; got < float64(len(production)) {
		t.Errorf("disburse_dispatch_parked_total{environment=production,reason=no_gateway} rose by %v, want at least %d", got, len(production))
	}
	if n := fixture.Count(t, p.pool, `SELECT count(*) FROM statement_cursors WHERE environment = 'production'`); n != 0 {
		t.Errorf("%d production statement cursors without a production gateway", n)
	}
	fixture.Audit(t, p.pool)
}

// TestWorkerGateways: the workers' gateway flags build a connector per
// environment, the production one sending its credential; they refuse a
// production gateway that is also a sandbox bank URL (directly or through
// either profiles file), production settings without a URL, and a secret
// given in place of a reference, without showing it.
func TestWorkerGateways(t *testing.T) {
	sandbox, production := newRecordingBank(t), newRecordingBank(t)
	t.Setenv("DISBURSE_TEST_GATEWAY_TOKEN", "prod-secret-2")
	ctx := context.Background()

	banks, err := envBanks{sandbox: bankConfig{url: sandbox.srv.URL},
		production: bankConfig{url: production.srv.URL, credentials: "env:DISBURSE_TEST_GATEWAY_TOKEN", prefix: "production-"}}.newBanks()
	if err != nil {
		t.Fatal(err)
	}
	if !banks.Configured(payout.Production) || !banks.Configured(payout.Sandbox) {
		t.Fatalf("configured: %v", banks.Environments())
	}
	for _, env := range []string{payout.Sandbox, payout.Production} {
		if inq, err := banks.For(env).Inquire(ctx, "bca", "1234567890"); err != nil || inq.Status != "VALID" {
			t.Fatalf("%s inquiry: %+v %v", env, inq, err)
		}
	}
	if got := sandbox.calls(); len(got) != 1 || got[0] != "" {
		t.Errorf("sandbox gateway calls %q: want one, without a credential", got)
	}
	if got := production.calls(); len(got) != 1 || got[0] != "Bearer prod-secret-2" {
		t.Errorf("production gateway calls %q: want one, with the production credential", got)
	}

	// No production gateway: production calls go nowhere.
	banks, err = envBanks{sandbox: bankConfig{url: sandbox.srv.URL}}.newBanks()
	if err != nil || banks.Configured(payout.Production) {
		t.Fatalf("sandbox only: %v %v", banks.Environments(), err)
	}
	if err := banks.For(payout.Production).Admit("bca"); err == nil || !strings.Contains(err.Error(), "no_gateway") {
		t.Errorf("production without a gateway admitted a transfer: %v", err)
	}
	if _, err := banks.For(payout.Production).Inquire(ctx, "bca", "1234567890"); err == nil {
		t.Errorf("production without a gateway answered an inquiry")
	}
	if len(sandbox.calls()) != 1 {
		t.Errorf("a production call reached the sandbox gateway: %q", sandbox.calls())
	}

	dir := t.TempDir()
	profilesTo := func(name, url string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("banks:\n  bni:\n    base_url: "+url+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	prodToSim := profilesTo("prod-to-sim.yaml", sandbox.srv.URL)
	simToProd := profilesTo("sim-to-prod.yaml", production.srv.URL)
	for name, bad := range map[string]envBanks{
		"same URL":                     {sandbox: bankConfig{url: sandbox.srv.URL}, production: bankConfig{url: strings.ToUpper(sandbox.srv.URL) + "/"}},
		"production profile to sim":    {sandbox: bankConfig{url: sandbox.srv.URL}, production: bankConfig{url: production.srv.URL, profilesPath: prodToSim}},
		"sandbox profile to prod":      {sandbox: bankConfig{url: sandbox.srv.URL, profilesPath: simToProd}, production: bankConfig{url: production.srv.URL}},
		"profiles without URL":         {sandbox: bankConfig{url: sandbox.srv.URL}, production: bankConfig{profilesPath: prodToSim}},
		"credentials without URL":      {sandbox: bankConfig{url: sandbox.srv.URL}, production: bankConfig{credentials: "env:DISBURSE_TEST_GATEWAY_TOKEN"}},
		"a secret, not a reference":    {sandbox: bankConfig{url: sandbox.srv.URL}, production: bankConfig{url: production.srv.URL, credentials: "prod-secret-2", prefix: "production-"}},
		"unset environment variable":   {sandbox: bankConfig{url: sandbox.srv.URL}, production: bankConfig{url: production.srv.URL, credentials: "env:NOPE_UNSET", prefix: "production-"}},
		"missing production profiles ": {sandbox: bankConfig{url: sandbox.srv.URL}, production: bankConfig{url: production.srv.URL, profilesPath: filepath.Join(dir, "nope.yaml"), prefix: "production-"}},
	} {
		if _, err := bad.newBanks(); err == nil || strings.Contains(err.Error(), "prod-secret-2") {
			t.Errorf("%s: %v, want an error that does not show the secret", name, err)
		}
	}
}

// TestReconcileCommandPerEnvironment: `disburse reconcile --environment`
// compares one environment's gateway statement with that environment's
// payouts only. A sandbox payout booked on the production gateway's
// statement is a difference of production's (unknown there) and not of
// sandbox's; production without a gateway, or an unknown environment, is a
// usage error.
func TestReconcileCommandPerEnvironment(t *testing.T) {
	p := startPipeline(t, testenv.Kafka(t), testenv.TopicPrefix(t), func(c *pipelineConfig) { c.production = true })
	prodKey := productionKey(t, p)
	var sandbox []string
	for i, acct := range []string{"1234567890", "1234563333"} {
		sandbox = append(sandbox, submit(t, p, fmt.Sprintf("sb-%d", i), "bca", acct, 60_000))
		pr := submitWith(t, p, prodKey, fmt.Sprintf("pr-%d", i), "bca", acct, 70_000)
		if i == 1 {
			waitStatus(t, p.api.URL, prodKey, pr, "REVERSED")
			waitStatus(t, p.api.URL, p.key, sandbox[i], "REVERSED")
		}
	}
	waitAll(t, p, 30*time.Second)
	date := time.Now().In(connectors.Jakarta).Format(time.DateOnly)
	run := func(args ...string) (statement.Report, error) {
		var out bytes.Buffer
		err := reconcile(context.Background(), append([]string{"--postgres-url", p.pgURL, "--bank-url", p.bankURL,
			"--bank", "bca", "--date", date, "--grace", "0s", "--json"}, args...), &out)
		var rep statement.Report
		if out.Len() > 0 {
			if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
				t.Fatalf("--json output: %v\n%s", jerr, out.String())
			}
		}
		return rep, err
	}
	prodArgs := []string{"--environment", "production", "--production-bank-url", p.prodURL}
	for name, args := range map[string][]string{"sandbox": nil, "production": prodArgs} {
		rep, err := run(args...)
		if err != nil || rep.Environment != name || rep.BankEntries != 3 || rep.Movements != 3 {
			t.Fatalf("%s: %+v, %v; want no difference, 3 entries and 3 movements of its own", name, rep, err)
		}
	}

	if _, err := p.prodBank.Inject("bca", connectors.StatementEntry{Reference: sandbox[0], Kind: connectors.EntryPaid, Amount: 60_000}); err != nil {
		t.Fatal(err)
	}
	rep, err := run(prodArgs...)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitDifferences || len(rep.Differences) != 1 ||
		rep.Differences[0].Reference != sandbox[0] || rep.Differences[0].Kind != statement.PaidNotCompleted || rep.Differences[0].Status != "" {
		t.Errorf("production with a sandbox payout on its statement: %+v, %v", rep.Differences, err)
	}
	if rep, err := run(); err != nil || !rep.OK() {
		t.Errorf("sandbox after production's stray entry: %+v, %v", rep.Differences, err)
	}
	for _, bad := range [][]string{
		{"--environment", "production"},
		{"--environment", "staging"},
		{"--environment", "production", "--production-bank-url", p.bankURL},
	} {
		if _, err := run(bad...); !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("%v: %v, want exit 2", bad, err)
		}
	}
}
