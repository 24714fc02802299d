package payout_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/internal/fixture"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// seed creates n payouts of merchant m1's sandbox with varied banks,
// statuses, batches and creation times (several sharing one created_at, so
// the id breaks ties), and returns them as stored.
func seed(t *testing.T, pool *pgxpool.Pool, n int) []payout.Disbursement {
	t.Helper()
	ctx := context.Background()
	store := payout.NewStore(pool)
	banks := []string{"bca", "bni", "mandiri"}
	statuses := []payout.Status{payout.Pending, payout.Processing, payout.Completed, payout.Failed, payout.Reversed}
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var out []payout.Disbursement
	for i := range n {
		req := payout.Request{ReferenceID: fmt.Sprintf("ref-%03d", i), BankCode: banks[i%3], AccountNumber: "1234567890",
			Amount: int64(10000 + i), Currency: "IDR"}
		d, _, err := store.Create(ctx, "m1", payout.Sandbox, fmt.Sprintf("key-%d", i), req)
		if err != nil {
			t.Fatal(err)
		}
		var batch *string
		if i%4 == 0 {
			b := "bat_search"
			batch = &b
		}
		// Groups of three share a created_at: the id orders them.
		created := base.Add(time.Duration(i/3) * time.Minute)
		// Status first, batch second: the batch progress trigger fires on
		// status changes of batch items only, and this batch has no row.
		if _, err := pool.Exec(ctx, `UPDATE disbursements SET status = $2, created_at = $3 WHERE id = $1`,
			d.ID, statuses[i%5], created); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `UPDATE disbursements SET batch_id = $2 WHERE id = $1`, d.ID, batch); err != nil {
			t.Fatal(err)
		}
		d, err = store.Get(ctx, "m1", payout.Sandbox, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func newestFirst(a, b payout.Disbursement) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// readAll follows the cursors of a search to the end.
func readAll(t *testing.T, store *payout.Store, f payout.Filter, limit int) []payout.Disbursement {
	t.Helper()
	var all []payout.Disbursement
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("the cursors do not end")
		}
		page, next, err := store.Search(context.Background(), "m1", payout.Sandbox, f, cursor, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > limit {
			t.Fatalf("page of %d over limit %d", len(page), limit)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		cursor = next
	}
}

func ids(ds []payout.Disbursement) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

// TestSearchFiltersAndPages compares every filter, paged, with the same
// filter applied by hand to every payout.
func TestSearchFiltersAndPages(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 1_000_000, merchant.Settings{})
	fixture.Merchant(t, pool, "m2", 1_000_000, merchant.Settings{})
	all := seed(t, pool, 60)
	// Another merchant's payout matches nothing of m1.
	if _, _, err := payout.NewStore(pool).Create(context.Background(), "m2", payout.Sandbox, "key-0",
		payout.Request{ReferenceID: "ref-000", BankCode: "bca", AccountNumber: "1234567890", Amount: 10000, Currency: "IDR"}); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(all, newestFirst)
	store := payout.NewStore(pool)
	from := time.Date(2026, 11, 1, 0, 5, 0, 0, time.UTC)
	to := time.Date(2026, 11, 1, 0, 12, 0, 0, time.UTC)
	cases := []struct {
		name  string
		f     payout.Filter
		match func(payout.Disbursement) bool
	}{
		{"none", payout.Filter{}, func(payout.Disbursement) bool { return true }},
		{"reference_id", payout.Filter{ReferenceID: "ref-017"}, func(d payout.Disbursement) bool { return d.ReferenceID == "ref-017" }},
		{"batch_id", payout.Filter{BatchID: "bat_search"}, func(d payout.Disbursement) bool { return d.BatchID != nil }},
		{"one status", payout.Filter{Statuses: []payout.Status{payout.Failed}}, func(d payout.Disbursement) bool { return d.Status == payout.Failed }},
		{"two statuses", payout.Filter{Statuses: []payout.Status{payout.Failed, payout.Reversed}},
			func(d payout.Disbursement) bool { return d.Status == payout.Failed || d.Status == payout.Reversed }},
		{"bank", payout.Filter{BankCode: "bni"}, func(d payout.Disbursement) bool { return d.BankCode == "bni" }},
		{"created range", payout.Filter{CreatedFrom: from, CreatedTo: to},
			func(d payout.Disbursement) bool { return !d.CreatedAt.Before(from) && d.CreatedAt.Before(to) }},
		{"everything", payout.Filter{BatchID: "bat_search", Statuses: []payout.Status{payout.Pending, payout.Completed}, BankCode: "bca", CreatedFrom: from},
			func(d payout.Disbursement) bool {
				return d.BatchID != nil && (d.Status == payout.Pending || d.Status == payout.Completed) && d.BankCode == "bca" && !d.CreatedAt.Before(from)
			}},
		{"nothing matches", payout.Filter{ReferenceID: "ref-none"}, func(payout.Disbursement) bool { return false }},
	}
	for _, c := range cases {
		for _, limit := range []int{1, 7, 200} {
			t.Run(fmt.Sprintf("%s limit %d", c.name, limit), func(t *testing.T) {
				var want []payout.Disbursement
				for _, d := range all {
					if c.match(d) {
						want = append(want, d)
					}
				}
				got := readAll(t, store, c.f, limit)
				if !slices.Equal(ids(got), ids(want)) {
					t.Fatalf("got %v\nwant %v", ids(got), ids(want))
				}
			})
		}
	}
	for _, bad := range []string{"x", "\x00", "\xff\xfe", "MTIzLmRzYl8", "LTEuZHNiX2E", "MTIzLmRzYl9hJzsgLS0"} {
		if _, _, err := store.Search(context.Background(), "m1", payout.Sandbox, payout.Filter{}, bad, 10); err != payout.ErrBadSearchCursor {
			t.Errorf("cursor %q: %v, want ErrBadSearchCursor", bad, err)
		}
	}
}

// TestSearchStableUnderConcurrentInserts pages through the list while
// payouts are inserted at full speed: every payout that existed before
// the first page is read exactly once, in order.
func TestSearchStableUnderConcurrentInserts(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 1_000_000, merchant.Settings{})
	before := fixture.Pending(t, pool, "m1", "old", 300, 10000)
	store := payout.NewStore(pool)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var inserted atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			_, _, err := store.Create(ctx, "m1", payout.Sandbox, fmt.Sprintf("new-%d", i),
				payout.Request{ReferenceID: fmt.Sprintf("new-%d", i), BankCode: "bca", AccountNumber: "1234567890", Amount: 10000, Currency: "IDR"})
			if err != nil && ctx.Err() == nil {
				t.Error(err)
				return
			}
			inserted.Add(1)
		}
	}()
	got := readAll(t, store, payout.Filter{}, 11)
	cancel()
	wg.Wait()
	if inserted.Load() == 0 {
		t.Fatal("nothing was inserted while paging")
	}
	seen := map[string]int{}
	for i, d := range got {
		seen[d.ID]++
		if i > 0 && newestFirst(got[i-1], d) >= 0 {
			t.Fatalf("out of order at %d: %s then %s", i, got[i-1].ID, d.ID)
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("%s read %d times", id, n)
		}
	}
	for _, id := range before {
		if seen[id] != 1 {
			t.Errorf("%s, there before the first page, read %d times", id, seen[id])
		}
	}
	t.Logf("%d payouts inserted while reading %d", inserted.Load(), len(got))
}

// TestSearchServedFromIndexes: with sequential scans priced out, every
// filter's page is an index scan, and a single-valued filter needs no sort
// (the index gives the order).
func TestSearchServedFromIndexes(t *testing.T) {
	pool, _ := fixture.Postgres(t)
	fixture.Merchant(t, pool, "m1", 1_000_000, merchant.Settings{})
	fixture.Pending(t, pool, "m1", "x", 2000, 10000)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `ANALYZE disbursements`); err != nil {
		t.Fatal(err)
	}
	cursor := payout.NewCursorForTest(time.Now(), "dsb_x")
	cases := map[string]struct {
		f      payout.Filter
		sorted bool // a sort over the index rows is allowed
	}{
		"none":         {f: payout.Filter{}},
		"reference_id": {f: payout.Filter{ReferenceID: "x-5"}, sorted: true},
		"batch_id":     {f: payout.Filter{BatchID: "bat_1"}},
		"status":       {f: payout.Filter{Statuses: []payout.Status{payout.Failed}}},
		"statuses":     {f: payout.Filter{Statuses: []payout.Status{payout.Failed, payout.Completed}}, sorted: true},
		"bank":         {f: payout.Filter{BankCode: "bni"}},
		"created":      {f: payout.Filter{CreatedFrom: time.Now().Add(-time.Hour), CreatedTo: time.Now()}},
	}
	for name, c := range cases {
		for _, cur := range []string{"", cursor} {
			query, args, err := payout.SearchQuery("m1", payout.Sandbox, c.f, cur, 51)
			if err != nil {
				t.Fatal(err)
			}
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = tx.Exec(ctx, `SET LOCAL enable_seqscan = off`)
			rows, err := tx.Query(ctx, `EXPLAIN `+query, args...)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var line string
				_ = rows.Scan(&line)
				plan = append(plan, line)
			}
			_ = tx.Rollback(ctx)
			text := strings.Join(plan, "\n")
			if strings.Contains(text, "Seq Scan") || !strings.Contains(text, "Index") {
				t.Errorf("%s (cursor %v): not served from an index:\n%s", name, cur != "", text)
			}
			if !c.sorted && strings.Contains(text, "Sort") {
				t.Errorf("%s (cursor %v): sorts instead of reading the index in order:\n%s", name, cur != "", text)
			}
		}
	}
}
