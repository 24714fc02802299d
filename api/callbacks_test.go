package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/callbacks"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

func get(t *testing.T, e *env, path string) answer {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	req.SetBasicAuth(e.key, "")
	return do(t, req)
}

func post(t *testing.T, e *env, path string) answer {
	t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+path, nil)
	req.SetBasicAuth(e.key, "")
	return do(t, req)
}

// TestEventsFeedNoGapsWhileWriting moves a run of payouts through their
// statuses from concurrent transactions while a reader follows the feed in
// pages of 7; the reader must see every change exactly once, each payout's
// changes in version order.
func TestEventsFeedNoGapsWhileWriting(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	l := ledger.NewStore(e.pool)
	const n = 60
	ids := fixture.Pending(t, e.pool, "m1", "feed", n, 10_000)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				id := ids[i]
				if _, _, err := l.ApplyDebits(ctx, []string{id}); err != nil {
					errs <- err
					return
				}
				o := ledger.Outcome{Completed: i%3 != 0, FailureCode: payout.BankRejected}
				if _, _, err := l.Settle(ctx, id, o); err != nil {
					errs <- err
					return
				}
				if i%5 == 1 {
					if _, _, err := l.Return(ctx, id); err != nil {
						errs <- err
						return
					}
				}
			}
		}(w)
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()

	seen := map[string]int{} // payout -> last version seen
	total, pages, after := 0, 0, ""
	deadline := time.Now().Add(60 * time.Second)
	for {
		a := get(t, e, "/v1/events?limit=7&after="+url.QueryEscape(after))
		if a.status != 200 {
			t.Fatalf("events: %d %s", a.status, a.raw)
		}
		pages++
		data := a.body["data"].([]any)
		for _, x := range data {
			ev := x.(map[string]any)
			id, v := ev["disbursement_id"].(string), int(ev["version"].(float64))
			if v != seen[id]+1 {
				t.Fatalf("payout %s: version %d after %d (gap, repeat or out of order)", id, v, seen[id])
			}
			seen[id] = v
			total++
		}
		after = a.body["next_cursor"].(string)
		select {
		case <-finished:
		default:
			if len(data) == 0 {
				time.Sleep(5 * time.Millisecond) // within the merchant's read rate
			}
			continue
		}
		// The feed shows a change once every older transaction of the
		// cluster has ended (other packages' tests share this server), so
		// read until every written change has come through.
		if len(data) == 0 && total >= fixture.Count(t, e.pool, `SELECT count(*) FROM payout_events`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("feed did not settle")
		}
		if len(data) == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	want := fixture.Count(t, e.pool, `SELECT count(*) FROM payout_events`)
	if total != want || len(seen) != n {
		t.Fatalf("reader saw %d changes of %d payouts; the table holds %d changes of %d", total, len(seen), want, n)
	}
	for _, id := range ids {
		d, _ := payout.NewStore(e.pool).Get(ctx, "m1", payout.Sandbox, id)
		if seen[id] != d.Version {
			t.Errorf("payout %s: feed ends at version %d, payout is at %d", id, seen[id], d.Version)
		}
	}
	t.Logf("%d changes of %d payouts in %d pages", total, n, pages)

	// A cursor not from this feed is refused.
	if a := get(t, e, "/v1/events?after=bogus"); a.status != 400 || !strings.Contains(a.raw, `"field":"after"`) {
		t.Errorf("bad cursor: %d %s", a.status, a.raw)
	}
	if a := get(t, e, "/v1/events?limit=0"); a.status != 400 {
		t.Errorf("limit=0: %d %s", a.status, a.raw)
	}
}

// TestCallbackLogRedeliverAndRotate covers the delivery log endpoints and
// secret rotation.
func TestCallbackLogRedeliverAndRotate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	store := callbacks.NewStore(e.pool)
	if err := store.SetURL(ctx, callbacks.Policy{AllowInsecureSandbox: true}, "m1", payout.Sandbox, "http://127.0.0.1:9/cb"); err != nil {
		t.Fatal(err)
	}
	var news []callbacks.New
	for i := 0; i < 5; i++ {
		news = append(news, callbacks.New{ID: fmt.Sprintf("cb_%d", i), MerchantID: "m1", Environment: payout.Sandbox,
			Type: callbacks.TypeCompleted, SubjectID: fmt.Sprintf("dsb_%d", i), Body: []byte(`{}`), EventAt: time.Now()})
	}
	if n, err := store.Enqueue(ctx, news); err != nil || n != 5 {
		t.Fatalf("enqueue: %d %v", n, err)
	}
	if n, _ := store.Enqueue(ctx, news); n != 0 {
		t.Fatalf("enqueue again recorded %d", n)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE callbacks SET status = 'failed' WHERE id IN ('cb_1', 'cb_3')`); err != nil {
		t.Fatal(err)
	}
	// Pages of 2 of the failed ones.
	a := get(t, e, "/v1/callbacks?status=failed&limit=1")
	if a.status != 200 || len(a.body["data"].([]any)) != 1 || a.body["next_cursor"] == nil {
		t.Fatalf("first page: %d %s", a.status, a.raw)
	}
	first := a.body["data"].([]any)[0].(map[string]any)["id"].(string)
	a = get(t, e, "/v1/callbacks?status=failed&limit=1&cursor="+a.body["next_cursor"].(string))
	second := a.body["data"].([]any)[0].(map[string]any)["id"].(string)
	if first == second || !strings.Contains("cb_1 cb_3", first) || !strings.Contains("cb_1 cb_3", second) {
		t.Fatalf("pages gave %s then %s", first, second)
	}
	if a := get(t, e, "/v1/callbacks?status=lost"); a.status != 400 {
		t.Errorf("bad status: %d", a.status)
	}
	if a := get(t, e, "/v1/callbacks?cursor=cb_nope"); a.status != 400 {
		t.Errorf("bad cursor: %d", a.status)
	}

	a = post(t, e, "/v1/callbacks/cb_1/redeliver")
	if a.status != 202 || a.body["status"] != "pending" || a.body["next_attempt_at"] == nil {
		t.Fatalf("redeliver: %d %s", a.status, a.raw)
	}
	if a := post(t, e, "/v1/callbacks/cb_zzz/redeliver"); a.status != 404 {
		t.Errorf("redeliver unknown: %d", a.status)
	}
	// Another environment's callback is not found.
	fixture.Merchant(t, e.pool, "m2", 1, api.DefaultSettings)
	if _, err := e.pool.Exec(ctx, `UPDATE callbacks SET merchant_id = 'm2' WHERE id = 'cb_4'`); err != nil {
		t.Fatal(err)
	}
	if a := get(t, e, "/v1/callbacks/cb_4"); a.status != 404 {
		t.Errorf("other merchant's callback: %d", a.status)
	}

	// Rotation: the old secret signs beside the new one, then only the new.
	old, err := store.Secret(ctx, "m1", payout.Sandbox)
	if err != nil {
		t.Fatal(err)
	}
	a = post(t, e, "/v1/settings/callback-secret/rotate")
	if a.status != 200 {
		t.Fatalf("rotate: %d %s", a.status, a.raw)
	}
	fresh := a.body["callback_secret"].(string)
	secrets, err := store.SigningSecrets(ctx, "m1", payout.Sandbox)
	if err != nil || len(secrets) != 2 || secrets[0] != fresh || secrets[1] != old {
		t.Fatalf("after rotation signing with %v (want new %s, old %s): %v", secrets, fresh, old, err)
	}
	a = post(t, e, "/v1/settings/callback-secret/rotate")
	newest := a.body["callback_secret"].(string)
	secrets, _ = store.SigningSecrets(ctx, "m1", payout.Sandbox)
	if len(secrets) != 2 || secrets[0] != newest || secrets[1] != fresh {
		t.Fatalf("after a second rotation signing with %v", secrets)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE callback_secrets SET expires_at = now() - interval '1s' WHERE expires_at IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
	if secrets, _ = store.SigningSecrets(ctx, "m1", payout.Sandbox); len(secrets) != 1 || secrets[0] != newest {
		t.Fatalf("after the grace period signing with %v", secrets)
	}
}

// TestProductionCallbackURLRefusedStoresNothing: unsafe URLs are refused
// for production and the stored URL stays as it was.
func TestProductionCallbackURLRefusedStoresNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := merchant.NewStore(e.pool).ActivateProduction(ctx, "m1", api.DefaultSettings); err != nil {
		t.Fatal(err)
	}
	store := callbacks.NewStore(e.pool)
	policy := callbacks.Policy{AllowInsecureSandbox: true} // never relaxes production
	for _, u := range []string{"http://169.254.169.254/", "http://10.0.0.1/", "https://10.0.0.1/", "https://localhost/cb", "not a url"} {
		err := store.SetURL(ctx, policy, "m1", payout.Production, u)
		var ue *callbacks.URLError
		if !errors.As(err, &ue) {
			t.Errorf("%s: %v, want refused", u, err)
		}
	}
	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM merchant_environments WHERE callback_url <> ''`); n != 0 {
		t.Fatalf("a refused URL was stored (%d rows)", n)
	}
}

// TestProductionCallbackURLsRefused: through PATCH /v1/settings, in
// production, internal targets answer 422 and nothing is stored.
func TestProductionCallbackURLsRefused(t *testing.T) {
	e := newEnv(t)
	key := activateProduction(t, e, "m1")
	before := dbState(t, e.pool, "production")
	for _, u := range []string{"http://169.254.169.254/", "https://169.254.169.254/latest/meta-data", "http://10.0.0.1/",
		"https://10.0.0.1/cb", "https://shop.loopback.test/cb", "not a url", "https://[::1]/cb"} {
		body, _ := json.Marshal(map[string]string{"callback_url": u})
		a := e.call(t, key, "PATCH", "/v1/settings", string(body))
		if a.status != 422 || !strings.Contains(a.raw, `"field":"callback_url"`) {
			t.Errorf("%s: %d %s, want 422 on callback_url", u, a.status, a.raw)
		}
	}
	if after := dbState(t, e.pool, "production"); after != before {
		t.Fatalf("refused URLs changed production:\n%s\n%s", before, after)
	}
	if a := e.call(t, key, "PATCH", "/v1/settings", `{"callback_url":"https://shop.example.com/cb"}`); a.status != 200 {
		t.Fatalf("a public https URL: %d %s", a.status, a.raw)
	}
}
