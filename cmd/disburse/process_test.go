package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
)

// proc is one disburse role running as its own process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan error
}

// freeAddr is a loopback address free now, for a process the test starts
// (and may restart on the same address). The port comes from below the
// kernel's ephemeral range (32768-60999 on Linux): a port from that range,
// as ":0" hands out, can be taken by any outbound connection on the
// machine between the check and the process's bind, or between a
// process's exit and its restart (TestRollingRestart once lost its ledger
// instance's metrics port that way).
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 200 {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken: try another
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	t.Fatal("no free port found in 20000-31999")
	return ""
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "disburse")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startProc(t *testing.T, bin, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), log: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.Env = append(os.Environ(), "DISBURSE_OPERATOR_TOKEN="+testOperatorToken)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", name, tail(p.log.String(), 3000))
		}
	})
	return p
}

// stop sends SIGTERM and expects a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("%s exited with %v after SIGTERM", p.name, err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not stop within 30s of SIGTERM", p.name)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready within 60s", url)
}

// TestStagesAsSeparateProcesses runs the production shape: migrate, the API,
// each stage and the sandbox banks as their own processes on the real Kafka
// and Postgres, and sends payouts through it.
func TestStagesAsSeparateProcesses(t *testing.T) {
	pgURL := testenv.Postgres(t)
	brokers := strings.Join(testenv.Kafka(t), ",")
	prefix := testenv.TopicPrefix(t)
	bin := buildBinary(t)

	if out, err := exec.Command(bin, "migrate", "--postgres-url", pgURL).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	common := []string{"--postgres-url", pgURL, "--kafka-brokers", brokers, "--topic-prefix", prefix, "--partitions", "4"}
	bankAddr, apiAddr, opAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	mAPI, mLedger, mDispatch := freeAddr(t), freeAddr(t), freeAddr(t)

	banks := startProc(t, bin, "banksim", "banksim", "--addr", bankAddr)
	apiProc := startProc(t, bin, "api", append([]string{"api", "--api-addr", apiAddr, "--operator-addr", opAddr, "--metrics-addr", mAPI}, common...)...)
	ledgerProc := startProc(t, bin, "ledger", append([]string{"worker", "--stages", "ledger,relay", "--metrics-addr", mLedger}, common...)...)
	dispatchProc := startProc(t, bin, "dispatch", append([]string{"worker", "--stages", "dispatch", "--metrics-addr", mDispatch,
		"--bank-url", "http://" + bankAddr, "--bank-timeout", "1s"}, common...)...)
	for _, m := range []string{mAPI, mLedger, mDispatch} {
		waitReady(t, "http://"+m+"/readyz")
	}
	waitReady(t, "http://"+bankAddr+"/healthz")

	// Onboard a merchant through the operator API.
	op := "http://" + opAddr
	opCall := func(path, body string) map[string]any {
		req, _ := http.NewRequest("POST", op+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testOperatorToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = jsonDecode(resp.Body, &out)
		if resp.StatusCode >= 300 {
			t.Fatalf("operator %s: %d %v", path, resp.StatusCode, out)
		}
		return out
	}
	opCall("/operator/v1/merchants", `{"id":"shop","name":"Shop"}`)
	key := opCall("/operator/v1/merchants/shop/sandbox/activate", `{}`)["secret_key"].(string)

	base := "http://" + apiAddr
	_, before, _ := call(t, base, key, "GET", "/v1/balance", nil, nil)
	start := mustNumber(t, before, "available")

	ids := map[string]string{}
	for ref, acct := range map[string]string{"ok": "1234567890", "invalid": "1234560000", "timeout": "1234562222"} {
		code, d, _ := call(t, base, key, "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": "k-" + ref}, payoutBody(ref, acct, 100_000))
		if code != 202 {
			t.Fatalf("create %s: %d %v", ref, code, d)
		}
		ids[ref] = d["id"].(string)
	}
	code, again, _ := call(t, base, key, "POST", "/v1/disbursements", map[string]string{"Idempotency-Key": "k-ok"}, payoutBody("ok", "1234567890", 100_000))
	if code != 202 || again["id"] != ids["ok"] {
		t.Fatalf("replay: %d %v", code, again)
	}
	waitStatus(t, base, key, ids["ok"], "COMPLETED")
	if d := waitStatus(t, base, key, ids["invalid"], "FAILED"); d["failure_code"] != "INVALID_ACCOUNT" {
		t.Fatalf("invalid account: %v", d)
	}
	waitStatus(t, base, key, ids["timeout"], "COMPLETED")

	_, after, _ := call(t, base, key, "GET", "/v1/balance", nil, nil)
	if got, want := mustNumber(t, after, "available"), start-2*(100_000+2500); got != want {
		t.Fatalf("available %d, want %d", got, want)
	}
	// The bank's own ledger: each payout received once, no duplicates.
	for _, id := range ids {
		resp, err := http.Get("http://" + bankAddr + "/admin/ledger/" + id)
		if err != nil {
			t.Fatal(err)
		}
		var rec map[string]any
		_ = jsonDecode(resp.Body, &rec)
		resp.Body.Close()
		if rec["received"] != float64(1) {
			t.Errorf("bank received %s: %v", id, rec)
		}
	}
	// The counter moves after the batch's offsets are committed, which
	// can be a moment after the payouts' statuses are visible.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + mDispatch + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		var metrics bytes.Buffer
		_, _ = metrics.ReadFrom(resp.Body)
		resp.Body.Close()
		if strings.Contains(metrics.String(), `disburse_stage_records_total{stage="dispatch"}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("dispatch metrics lack disburse_stage_records_total after 5 s")
			break
		}
	}

	for _, p := range []*proc{apiProc, ledgerProc, dispatchProc, banks} {
		p.stop(t)
	}
	pool, err := pgxpool.New(context.Background(), pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	fixture.Audit(t, pool)
	_ = fmt.Sprint
}

// checkBankOnce reads the sandbox bank's own ledger at bankAddr and fails
// the test unless it holds exactly n transfers, none received twice.
func checkBankOnce(t *testing.T, bankAddr string, n int) {
	t.Helper()
	resp, err := http.Get("http://" + bankAddr + "/admin/ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ledger struct {
		Transfers  int              `json:"transfers"`
		Duplicates []map[string]any `json:"duplicates"`
	}
	if err := jsonDecode(resp.Body, &ledger); err != nil {
		t.Fatal(err)
	}
	if ledger.Transfers != n || len(ledger.Duplicates) != 0 {
		t.Fatalf("the bank received %d transfers for %d payouts, duplicates %v", ledger.Transfers, n, ledger.Duplicates)
	}
}
