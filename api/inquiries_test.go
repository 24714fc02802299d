package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/connectors/httpbank"
	"github.com/disburse/disburse/inquiry"
	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/merchant"
)

func inquiryBody(accounts ...string) string {
	items := make([]string, len(accounts))
	for i, a := range accounts {
		bank, acct, _ := strings.Cut(a, ":")
		items[i] = `{"bank_code":"` + bank + `","account_number":"` + acct + `"}`
	}
	return `{"items":[` + strings.Join(items, ",") + `]}`
}

func TestBulkAccountInquiry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if a := e.call(t, e.key, "PATCH", "/v1/settings", `{"callback_url":"https://merchant.example.com/cb"}`); a.status != 200 {
		t.Fatalf("callback url: %d %s", a.status, a.raw)
	}
	// A bank profile of 20 inquiries a second, burst 1: the runner keeps to it.
	profiles := connectors.DefaultProfiles()
	bca := profiles["bca"]
	bca.RateLimit, bca.Burst = 20, 1
	profiles["bca"] = bca
	guard := connectors.NewGuard(httpbank.New(e.bankURL), profiles, nil)
	runner := e.s.InquiryRunner()
	runner.Bank = func(string) connectors.Connector { return guard }

	var accounts []string
	for i := range 30 {
		accounts = append(accounts, fmt.Sprintf("bca:12345%05d", i+1))
	}
	accounts = append(accounts, "bni:9876540000") // the sandbox's invalid account
	a := e.call(t, e.key, "POST", "/v1/account-inquiries", inquiryBody(accounts...))
	if a.status != 202 || a.body["status"] != "PENDING" || a.body["item_count"] != 31.0 {
		t.Fatalf("create: %d %s", a.status, a.raw)
	}
	id := a.body["id"].(string)
	start := time.Now()
	if worked, err := runner.Once(ctx); err != nil || !worked {
		t.Fatalf("runner: %v %v", worked, err)
	}
	if took := time.Since(start); took < 1400*time.Millisecond {
		t.Fatalf("30 bca inquiries took %s at 20/s: the bank's rate limit was not kept", took)
	}
	g := e.call(t, e.key, "GET", "/v1/account-inquiries/"+id, "")
	if g.status != 200 || g.body["status"] != "COMPLETED" || g.body["answered"] != 31.0 {
		t.Fatalf("get: %d %s", g.status, g.raw)
	}
	results := g.body["results"].([]any)
	if last := results[30].(map[string]any); last["status"] != "INVALID" || last["from_cache"] != false {
		t.Fatalf("invalid account: %v", last)
	}
	if first := results[0].(map[string]any); first["status"] != "VALID" || first["account_holder_name"] == "" {
		t.Fatalf("valid account: %v", first)
	}
	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM callbacks WHERE type = 'account_inquiry.completed' AND subject_id = $1`, id); n != 1 {
		t.Fatalf("%d completion callbacks", n)
	}

	// The same accounts again: answered from the environment's cache, at once.
	a = e.call(t, e.key, "POST", "/v1/account-inquiries", inquiryBody(accounts[0], accounts[30], "bri:1234567890"))
	start = time.Now()
	if _, err := runner.Once(ctx); err != nil {
		t.Fatal(err)
	}
	g = e.call(t, e.key, "GET", "/v1/account-inquiries/"+a.body["id"].(string), "")
	res := g.body["results"].([]any)
	if res[0].(map[string]any)["from_cache"] != true || res[1].(map[string]any)["from_cache"] != true || res[2].(map[string]any)["from_cache"] != false {
		t.Fatalf("cache: %s", g.raw)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("cached answers took %s", took)
	}

	// A runner that died mid-job: its lease runs out and another takes
	// over, asking only what is unanswered.
	a = e.call(t, e.key, "POST", "/v1/account-inquiries", inquiryBody("mandiri:1111222233", "mandiri:1111222244"))
	jid := a.body["id"].(string)
	if _, err := e.pool.Exec(ctx, `UPDATE account_inquiry_jobs SET status = 'RUNNING', lease_owner = 'dead', lease_until = now() - interval '1 second' WHERE id = $1`, jid); err != nil {
		t.Fatal(err)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE account_inquiry_items SET status = 'VALID', account_holder_name = 'ASKED BEFORE', answered_at = now() WHERE job_id = $1 AND row = 1`, jid); err != nil {
		t.Fatal(err)
	}
	if worked, err := runner.Once(ctx); err != nil || !worked {
		t.Fatalf("takeover: %v %v", worked, err)
	}
	g = e.call(t, e.key, "GET", "/v1/account-inquiries/"+jid, "")
	res = g.body["results"].([]any)
	if g.body["status"] != "COMPLETED" || res[0].(map[string]any)["account_holder_name"] != "ASKED BEFORE" || res[1].(map[string]any)["status"] != "VALID" {
		t.Fatalf("takeover: %s", g.raw)
	}

	// Bad requests change nothing; another environment sees nothing.
	jobs := fixture.Count(t, e.pool, `SELECT count(*) FROM account_inquiry_jobs`)
	many := make([]string, inquiry.MaxItems+1)
	for i := range many {
		many[i] = "bca:1234567890"
	}
	for name, body := range map[string]string{
		"no items":      `{"items":[]}`,
		"over 1,000":    inquiryBody(many...),
		"unknown bank":  inquiryBody("bca:1234567890", "zzz:1234567890"),
		"bad account":   inquiryBody("bca:12ab"),
		"unknown field": `{"items":[],"x":1}`,
		"wrong type":    `{"items":"bca"}`,
	} {
		if a := e.call(t, e.key, "POST", "/v1/account-inquiries", body); a.status != 422 || a.code() != "VALIDATION_ERROR" {
			t.Errorf("%s: %d %s", name, a.status, a.raw)
		}
	}
	if a := e.call(t, e.key, "POST", "/v1/account-inquiries", inquiryBody("bca:1234567890")+strings.Repeat(" ", 300<<10)); a.status != 413 {
		t.Errorf("body over 256 KiB: %d %s", a.status, a.raw)
	}
	if n := fixture.Count(t, e.pool, `SELECT count(*) FROM account_inquiry_jobs`); n != jobs {
		t.Fatalf("bad requests stored %d jobs", n-jobs)
	}
	other := fixture.Merchant(t, e.pool, "m2", 1000, merchant.Settings{})
	if g := e.call(t, other, "GET", "/v1/account-inquiries/"+id, ""); g.status != 404 {
		t.Fatalf("another merchant reads the job: %d %s", g.status, g.raw)
	}
}
