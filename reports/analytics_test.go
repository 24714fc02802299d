package reports_test

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/schemas/events"
)

var docBlock = regexp.MustCompile("(?s)```(sql|postgresql)\n(.*?)```")

// Every query in docs/analytics.md runs as written (with the test's
// database for disburse) and returns rows from sample data.
func TestAnalyticsQueriesRun(t *testing.T) {
	doc, err := os.ReadFile("../docs/analytics.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := docBlock.FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 6 {
		t.Fatalf("docs/analytics.md has %d query blocks, want at least 6", len(blocks))
	}
	st := fixture.Reports(t)
	pool, _ := fixture.Postgres(t)
	ctx := context.Background()
	now := time.Now().UTC().Add(-time.Minute)
	var evs []events.Status
	for i, bank := range []string{"bca", "bni", "bca", "mandiri"} {
		id := "q" + string(rune('a'+i))
		e := events.Status{DisbursementID: id, MerchantID: "m" + string(rune('1'+i%2)), Environment: "production",
			ReferenceID: "r-" + id, BankCode: bank, Amount: int64(1000 * (i + 1)), Fee: 2500, Currency: "IDR",
			Status: "PROCESSING", Version: 2, At: now.Add(-time.Duration(30+i) * time.Second), CreatedAt: now.Add(-time.Minute)}
		evs = append(evs, e)
		e.Version, e.At = 3, now
		if i == 2 {
			e.Status, e.FailureCode = "FAILED", "INVALID_ACCOUNT"
		} else {
			e.Status = "COMPLETED"
		}
		evs = append(evs, e)
	}
	if _, err := st.InsertStatus(ctx, evs); err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		lang, query := b[1], strings.TrimSuffix(strings.TrimSpace(b[2]), ";")
		if lang == "postgresql" {
			if _, err := pool.Exec(ctx, query); err != nil {
				t.Errorf("postgres query fails: %v\n%s", err, query)
			}
			continue
		}
		query = strings.ReplaceAll(query, "disburse.", st.Database()+".")
		var rows []map[string]any
		err := st.Engine().QueryJSON(ctx, query, func(row []byte) error {
			var m map[string]any
			rows = append(rows, m)
			return json.Unmarshal(row, &rows[len(rows)-1])
		})
		if err != nil {
			t.Errorf("query fails: %v\n%s", err, query)
		} else if len(rows) == 0 {
			t.Errorf("query returns no rows on the sample data:\n%s", query)
		}
	}
}
