package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

// TestSearchDisbursements finds payouts by reference, status and bank
// through the API and follows the cursor to the end.
func TestSearchDisbursements(t *testing.T) {
	e := newEnv(t)
	var created []string
	for i := range 5 {
		bank := "bca"
		if i%2 == 1 {
			bank = "bni"
		}
		body := fmt.Sprintf(`{"reference_id":"order-%d","bank_code":"%s","account_number":"1234567890","amount":150000}`, i, bank)
		a := e.callWith(t, e.key, "POST", e.srv.URL+"/v1/disbursements", body, func(r *http.Request) {
			r.Header.Set("Idempotency-Key", fmt.Sprintf("search-%d", i))
		})
		if a.status != 202 {
			t.Fatalf("create: %d %s", a.status, a.raw)
		}
		created = append(created, a.body["id"].(string))
	}
	a := e.call(t, e.key, "GET", "/v1/disbursements?reference_id=order-3", "")
	data, _ := a.body["data"].([]any)
	if a.status != 200 || len(data) != 1 || data[0].(map[string]any)["id"] != created[3] || a.body["next_cursor"] != nil {
		t.Fatalf("by reference: %d %s", a.status, a.raw)
	}
	// Newest first, one per page, only bca, across pages.
	var got []string
	path := "/v1/disbursements?bank_code=bca&status=PENDING&status=FAILED&limit=1"
	for pages := 0; path != ""; pages++ {
		a := e.call(t, e.key, "GET", path, "")
		if a.status != 200 || pages > 10 {
			t.Fatalf("page %d: %d %s", pages, a.status, a.raw)
		}
		for _, d := range a.body["data"].([]any) {
			got = append(got, d.(map[string]any)["id"].(string))
		}
		path = ""
		if c, ok := a.body["next_cursor"].(string); ok {
			path = "/v1/disbursements?bank_code=bca&status=PENDING&status=FAILED&limit=1&cursor=" + url.QueryEscape(c)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint([]string{created[4], created[2], created[0]}) {
		t.Fatalf("bca payouts newest first: %v, created %v", got, created)
	}
	if a := e.call(t, e.key, "GET", "/v1/disbursements?status=COMPLETED", ""); a.status != 200 || len(a.body["data"].([]any)) != 0 {
		t.Fatalf("no completed payouts yet: %d %s", a.status, a.raw)
	}
}
