package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/internal/testenv"
)

// rollingRole is one role run as instances, each restartable with the same
// arguments (and so the same addresses).
type rollingRole struct {
	name      string
	args      [][]string // per instance
	readyURLs []string   // per instance
	procs     []*proc
}

// retryingClient sends payouts as a merchant's client should: a unique
// Idempotency-Key per payout, and on a transport error, a 5xx or a 429
// the same request again, to the next API instance, after a pause. It
// records every answer that was not a success.
type retryingClient struct {
	bases []string
	key   string
	http  *http.Client
	next  atomic.Uint64

	transportErrs, status5xx, status429 atomic.Int64
	mu                                  sync.Mutex
	failures                            []string // final answers that were errors
}

func (c *retryingClient) create(ref string) (string, bool) {
	body, _ := json.Marshal(payoutBody(ref, "1234567890", 10_000))
	deadline := time.Now().Add(60 * time.Second)
	for attempt := 0; ; attempt++ {
		base := c.bases[c.next.Add(1)%uint64(len(c.bases))]
		req, _ := http.NewRequest("POST", base+"/v1/disbursements", bytes.NewReader(body))
		req.SetBasicAuth(c.key, "")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "roll-"+ref)
		resp, err := c.http.Do(req)
		retry := false
		var answer string
		if err != nil {
			c.transportErrs.Add(1)
			retry, answer = true, err.Error()
		} else {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK:
				var d map[string]any
				if json.Unmarshal(raw, &d) == nil {
					if id, _ := d["id"].(string); id != "" {
						return id, true
					}
				}
				answer = fmt.Sprintf("%d without an id: %s", resp.StatusCode, raw)
			case resp.StatusCode == http.StatusTooManyRequests:
				c.status429.Add(1)
				retry, answer = true, "429"
			case resp.StatusCode >= 500:
				c.status5xx.Add(1)
				retry, answer = true, fmt.Sprintf("%d %s", resp.StatusCode, raw)
			default:
				answer = fmt.Sprintf("%d %s", resp.StatusCode, raw)
			}
		}
		if !retry || time.Now().After(deadline) {
			c.mu.Lock()
			c.failures = append(c.failures, fmt.Sprintf("%s: %s (after %d attempts)", ref, answer, attempt+1))
			c.mu.Unlock()
			return "", false
		}
		time.Sleep(time.Duration(min(50*(attempt+1), 500)) * time.Millisecond)
	}
}

// TestRollingRestart runs two instances of every role (the API, and each
// worker stage in its own processes) on the real Kafka and Postgres, and
// while payouts flow restarts each role one instance at a time: SIGTERM,
// a clean exit after the drain, a new instance, ready, then the next. A
// client that retries correctly never gets an error, every payout ends
// once at the bank, every merchant callback arrives, and the audit holds.
// The sink stage is left out: two sink processes need a ClickHouse server
// (the embedded engine serves one process), and none runs here.
func TestRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs eleven processes for a minute")
	}
	pgURL := testenv.Postgres(t)
	brokers := strings.Join(testenv.Kafka(t), ",")
	prefix := testenv.TopicPrefix(t)
	bin := buildBinary(t)
	if out, err := exec.Command(bin, "migrate", "--postgres-url", pgURL).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	pool, err := pgxpool.New(context.Background(), pgURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	bankAddr := freeAddr(t)
	startProc(t, bin, "banksim", "banksim", "--addr", bankAddr)
	waitReady(t, "http://"+bankAddr+"/healthz")

	common := []string{"--postgres-url", pgURL, "--kafka-brokers", brokers, "--topic-prefix", prefix, "--partitions", "4",
		"--callbacks-allow-insecure-sandbox"}
	var apiBases, opBases []string
	roles := []*rollingRole{{name: "api"}}
	for i := 0; i < 2; i++ {
		a, o, m := freeAddr(t), freeAddr(t), freeAddr(t)
		apiBases, opBases = append(apiBases, "http://"+a), append(opBases, "http://"+o)
		roles[0].args = append(roles[0].args, append([]string{"api", "--api-addr", a, "--operator-addr", o, "--metrics-addr", m,
			"--bank-url", "http://" + bankAddr, "--rate-create", "100000", "--rate-read", "100000"}, common...))
		roles[0].readyURLs = append(roles[0].readyURLs, "http://"+m+"/readyz")
	}
	stages := []string{"ledger", "dispatch", "callbacks"}
	if slices.Contains(stageNames, "relay") {
		stages = []string{"ledger", "relay", "dispatch", "callbacks"}
	}
	for _, st := range stages {
		r := &rollingRole{name: st}
		for i := 0; i < 2; i++ {
			m := freeAddr(t)
			args := append([]string{"worker", "--stages", st, "--metrics-addr", m, "--bank-url", "http://" + bankAddr}, common...)
			if st == "callbacks" {
				args = append(args, "--callback-retry-base", "500ms", "--callback-retry-max", "2s")
			}
			r.args = append(r.args, args)
			r.readyURLs = append(r.readyURLs, "http://"+m+"/readyz")
		}
		roles = append(roles, r)
	}
	for _, r := range roles {
		for i := range r.args {
			r.procs = append(r.procs, startProc(t, bin, fmt.Sprintf("%s-%d", r.name, i+1), r.args[i]...))
		}
	}
	for _, r := range roles {
		for _, u := range r.readyURLs {
			waitReady(t, u)
		}
	}

	key := onboard(t, opBases[0], "shop")
	var cbMu sync.Mutex
	callbacksGot := map[string]int{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var cb struct {
			Type string         `json:"type"`
			Data map[string]any `json:"data"`
		}
		_ = json.NewDecoder(r.Body).Decode(&cb)
		if id, _ := cb.Data["id"].(string); id != "" && strings.HasPrefix(cb.Type, "disbursement.") {
			cbMu.Lock()
			callbacksGot[id]++
			cbMu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)
	if code, s, _ := call(t, apiBases[0], key, "PATCH", "/v1/settings", nil, map[string]string{"callback_url": recv.URL + "/hooks"}); code != 200 {
		t.Fatalf("set callback_url: %d %v", code, s)
	}

	// The load: four clients creating payouts until the restarts are done.
	client := &retryingClient{bases: apiBases, key: key, http: &http.Client{Timeout: 15 * time.Second}}
	var idsMu sync.Mutex
	var ids []string
	stop := make(chan struct{})
	var load sync.WaitGroup
	for g := 0; g < 4; g++ {
		load.Add(1)
		go func() {
			defer load.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if id, ok := client.create(fmt.Sprintf("g%d-%d", g, i)); ok {
					idsMu.Lock()
					ids = append(ids, id)
					idsMu.Unlock()
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	accepted := func() int { idsMu.Lock(); defer idsMu.Unlock(); return len(ids) }
	waitFor(t, 30*time.Second, func() bool { return accepted() >= 50 }, "the first payouts to be accepted")

	for _, r := range roles {
		for i := range r.procs {
			before := accepted()
			r.procs[i].stop(t) // SIGTERM: drain, commit, exit 0
			r.procs[i] = startProc(t, bin, fmt.Sprintf("%s-%d'", r.name, i+1), r.args[i]...)
			waitReady(t, r.readyURLs[i])
			time.Sleep(time.Second)
			t.Logf("restarted %s instance %d; %d payouts accepted meanwhile", r.name, i+1, accepted()-before)
		}
	}
	close(stop)
	load.Wait()
	n := accepted()
	t.Logf("%d payouts accepted; the client retried %d transport errors, %d 5xx and %d 429 answers",
		n, client.transportErrs.Load(), client.status5xx.Load(), client.status429.Load())
	if len(client.failures) > 0 {
		t.Errorf("%d payouts answered with an error despite retries, e.g. %v", len(client.failures), client.failures[:min(5, len(client.failures))])
	}
	if c := client.status5xx.Load(); c > 0 {
		t.Errorf("%d 5xx answers during the rolling restart: a draining instance must finish what it took", c)
	}

	terminal := func() int {
		return fixture.Count(t, pool, `SELECT count(*) FROM disbursements WHERE status IN ('COMPLETED', 'FAILED')`)
	}
	waitFor(t, 2*time.Minute, func() bool { return terminal() >= n }, "every payout to end")
	if got := fixture.Count(t, pool, `SELECT count(*) FROM disbursements`); got != n {
		t.Errorf("%d payouts stored for %d accepted", got, n)
	}
	if got := fixture.Count(t, pool, `SELECT count(*) FROM disbursements WHERE status = 'COMPLETED'`); got != n {
		t.Errorf("%d of %d payouts to a valid account completed", got, n)
	}
	waitFor(t, time.Minute, func() bool {
		cbMu.Lock()
		defer cbMu.Unlock()
		for _, id := range ids {
			if callbacksGot[id] == 0 {
				return false
			}
		}
		return true
	}, "a callback for every payout")

	for _, r := range roles {
		for _, p := range r.procs {
			p.stop(t)
		}
	}
	resp, err := http.Get("http://" + bankAddr + "/admin/ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ledger struct {
		Transfers  int              `json:"transfers"`
		Duplicates []map[string]any `json:"duplicates"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ledger); err != nil {
		t.Fatal(err)
	}
	if ledger.Transfers != n || len(ledger.Duplicates) != 0 {
		t.Errorf("the bank received %d transfers for %d payouts, duplicates %v", ledger.Transfers, n, ledger.Duplicates)
	}
	fixture.Audit(t, pool)
}

// onboard creates a merchant through the operator API and returns its
// sandbox key.
func onboard(t *testing.T, op, id string) string {
	t.Helper()
	post := func(path, body string) map[string]any {
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
	post("/operator/v1/merchants", fmt.Sprintf(`{"id":%q,"name":"Shop"}`, id))
	return post("/operator/v1/merchants/"+id+"/sandbox/activate", `{}`)["secret_key"].(string)
}
