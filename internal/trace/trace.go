// Package trace tells one payout's story from Postgres: its request, every
// status change, ledger entry, bank call (with outcome and latency), the
// dispatch lease that holds it, and every callback (with the X-Request-Id it
// carries) and its attempts, in time order, each step with the role and
// instance that wrote it. `disburse trace <disbursement id>` prints it.
package trace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound says no payout has the id.
var ErrNotFound = errors.New("no such disbursement")

// Step is one line of the story.
type Step struct {
	At     time.Time
	Source string // request, event, ledger, bank, lease, callback, attempt
	What   string
	Ref    string // the callback id of callback and attempt steps
	// Actor is the role and instance that wrote the step (the writing
	// connection's application_name, role@host/pid; the lease's owner),
	// "" when unknown (rows written before migration 00017, or by a
	// client that set none).
	Actor string
}

// Timeline is a payout's story, oldest first.
type Timeline struct {
	ID      string
	Summary string
	Steps   []Step
}

// Build reads the payout id's story.
func Build(ctx context.Context, db *pgxpool.Pool, id string) (Timeline, error) {
	t := Timeline{ID: id}
	var (
		merchant, env, ref, bank, currency, status, failure, rid string
		batch                                                    *string
		amount, fee                                              int64
		version                                                  int
		created, updated                                         time.Time
	)
	err := db.QueryRow(ctx, `SELECT merchant_id, environment, reference_id, batch_id, bank_code, amount, fee, currency,
		status, failure_code, version, created_at, updated_at, request_id FROM disbursements WHERE id = $1`, id).
		Scan(&merchant, &env, &ref, &batch, &bank, &amount, &fee, &currency, &status, &failure, &version, &created, &updated, &rid)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return t, fmt.Errorf("read disbursement: %w", err)
	}
	t.Summary = fmt.Sprintf("disbursement %s: merchant %s (%s), reference %s, bank %s, %d %s (fee %d), now %s%s (version %d, %s after acceptance)",
		id, merchant, env, ref, bank, amount, currency, fee, status, suffix(" ", failure), version, updated.Sub(created).Round(time.Millisecond))
	what := "accepted by the API"
	if rid != "" {
		what += ", X-Request-Id " + rid
	}
	if batch != nil {
		what += " in batch " + *batch
	}
	t.Steps = append(t.Steps, Step{At: created, Source: "request", What: what})

	queries := []struct {
		source string
		sql    string
		row    func(pgx.Rows) (Step, error)
	}{
		{"event", `SELECT at, actor, status, failure_code, version FROM payout_events WHERE disbursement_id = $1`, func(r pgx.Rows) (Step, error) {
			var s Step
			var st, fc string
			var v int
			err := r.Scan(&s.At, &s.Actor, &st, &fc, &v)
			s.What = fmt.Sprintf("status %s%s (version %d)", st, suffix(" ", fc), v)
			return s, err
		}},
		{"ledger", `SELECT e.created_at, e.actor, e.kind, e.memo,
				coalesce(string_agg(a.kind || ' ' || p.amount::text, ', ' ORDER BY a.kind), '')
			FROM journal_entries e LEFT JOIN postings p ON p.entry_id = e.id LEFT JOIN accounts a ON a.id = p.account_id
			WHERE e.disbursement_id = $1 GROUP BY e.id, e.created_at, e.actor, e.kind, e.memo`, func(r pgx.Rows) (Step, error) {
			var s Step
			var kind, memo, postings string
			err := r.Scan(&s.At, &s.Actor, &kind, &memo, &postings)
			s.What = fmt.Sprintf("%s entry [%s]%s", kind, postings, suffix(": ", memo))
			return s, err
		}},
		{"bank", `SELECT started_at, actor, kind, outcome, finished_at FROM bank_calls WHERE disbursement_id = $1`, func(r pgx.Rows) (Step, error) {
			var s Step
			var kind, outcome string
			var fin *time.Time
			err := r.Scan(&s.At, &s.Actor, &kind, &outcome, &fin)
			took := "not finished"
			if fin != nil {
				took = "took " + fin.Sub(s.At).Round(time.Millisecond).String()
			}
			s.What = fmt.Sprintf("%s call: %s, %s", kind, outcome, took)
			return s, err
		}},
		{"lease", `SELECT expires_at, owner FROM dispatch_leases WHERE disbursement_id = $1`, func(r pgx.Rows) (Step, error) {
			var s Step
			err := r.Scan(&s.At, &s.Actor)
			s.What = "dispatch lease expires"
			return s, err
		}},
		{"callback", `SELECT created_at, id, type, request_id, status, attempts, delivered_at FROM callbacks WHERE subject_id = $1`, func(r pgx.Rows) (Step, error) {
			var s Step
			var cid, typ, rid, st string
			var n int
			var delivered *time.Time
			err := r.Scan(&s.At, &cid, &typ, &rid, &st, &n, &delivered)
			s.Ref = cid
			if rid != "" {
				typ += " (X-Request-Id " + rid + ")"
			}
			s.What = fmt.Sprintf("callback %s %s: %s after %d attempt(s)", cid, typ, st, n)
			if delivered != nil {
				s.What += ", delivered " + delivered.Sub(s.At).Round(time.Millisecond).String() + " after queueing"
			}
			return s, err
		}},
		{"attempt", `SELECT a.started_at, a.actor, a.callback_id, a.duration_ms, a.status_code, a.error FROM callback_attempts a
			JOIN callbacks c ON c.id = a.callback_id WHERE c.subject_id = $1`, func(r pgx.Rows) (Step, error) {
			var s Step
			var cid, errText string
			var ms int
			var code *int
			err := r.Scan(&s.At, &s.Actor, &cid, &ms, &code, &errText)
			s.Ref = cid
			answer := "no HTTP answer"
			if code != nil {
				answer = fmt.Sprintf("HTTP %d", *code)
			}
			s.What = fmt.Sprintf("callback %s attempt: %s in %dms%s", cid, answer, ms, suffix(": ", errText))
			return s, err
		}},
	}
	for _, q := range queries {
		rows, err := db.Query(ctx, q.sql, id)
		if err != nil {
			return t, fmt.Errorf("read %s: %w", q.source, err)
		}
		for rows.Next() {
			s, err := q.row(rows)
			if err != nil {
				rows.Close()
				return t, fmt.Errorf("read %s: %w", q.source, err)
			}
			s.Source = q.source
			t.Steps = append(t.Steps, s)
		}
		if err := rows.Err(); err != nil {
			return t, fmt.Errorf("read %s: %w", q.source, err)
		}
	}
	sort.SliceStable(t.Steps, func(i, j int) bool { return t.Steps[i].At.Before(t.Steps[j].At) })
	return t, nil
}

func suffix(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}

// Write prints the timeline: one line per step with its time (UTC) and
// the offset from acceptance.
func (t Timeline) Write(w io.Writer) error {
	var b strings.Builder
	b.WriteString(t.Summary + "\n")
	var start time.Time
	if len(t.Steps) > 0 {
		start = t.Steps[0].At
	}
	for _, s := range t.Steps {
		fmt.Fprintf(&b, "%s  %+10s  %-8s  %s%s\n", s.At.UTC().Format("2006-01-02T15:04:05.000Z"), "+"+s.At.Sub(start).Round(time.Millisecond).String(), s.Source, s.What, suffix("  by ", s.Actor))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
