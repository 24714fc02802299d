package controls

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/schemas/events"
)

var gated = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "disburse_controls_gated_total",
	Help: "Payout requests the ledger stage did not debit because of a payout control: held (environment paused) or failed (velocity limit).",
}, []string{"outcome"})

// Gate decides, before the ledger stage debits a polled batch, which of its
// payouts may be debited now.
type Gate struct {
	DB  *pgxpool.Pool
	Log *slog.Logger
}

// NewGate returns a gate on db.
func NewGate(db *pgxpool.Pool, log *slog.Logger) *Gate { return &Gate{DB: db, Log: log} }

// Admit returns the ids of reqs (in their order) the debit may take. Of
// the PENDING payouts of environments with controls in force, it leaves
// out those of paused environments (held: still PENDING, published again
// by the resume) and fails those over a velocity limit, in topic order,
// with VELOCITY_LIMIT_EXCEEDED (nothing was debited). Ids that are not
// PENDING pass through: the debit leaves them alone. A batch of
// environments without controls costs one read of payout_controls by key
// (the request records name their environment), not a read of its payouts.
func (g *Gate) Admit(ctx context.Context, reqs []events.Request) ([]string, error) {
	ids := make([]string, len(reqs))
	envs := map[[2]string]bool{}
	var ms, es []string
	for i, r := range reqs {
		ids[i] = r.DisbursementID
		k := [2]string{r.MerchantID, r.Environment}
		if !envs[k] {
			envs[k] = true
			ms, es = append(ms, r.MerchantID), append(es, r.Environment)
		}
	}
	if len(ids) == 0 {
		return ids, nil
	}
	rows, err := g.DB.Query(ctx, `SELECT merchant_id, environment FROM payout_controls
		WHERE (merchant_id, environment) IN (SELECT * FROM unnest($1::text[], $2::text[]))
		  AND (merchant_paused OR operator_paused OR max_amount_per_hour > 0 OR max_count_per_hour > 0 OR max_amount_per_day > 0
		       OR max_count_per_day > 0 OR ceiling_amount_per_hour > 0 OR ceiling_count_per_hour > 0
		       OR ceiling_amount_per_day > 0 OR ceiling_count_per_day > 0)`, ms, es)
	if err != nil {
		return nil, fmt.Errorf("payout controls: %w", err)
	}
	controlled := map[[2]string]bool{}
	for rows.Next() {
		var m, e string
		if err := rows.Scan(&m, &e); err != nil {
			rows.Close()
			return nil, err
		}
		controlled[[2]string{m, e}] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("payout controls: %w", err)
	}
	if len(controlled) == 0 {
		return ids, nil
	}
	var sub []string
	for _, r := range reqs {
		if controlled[[2]string{r.MerchantID, r.Environment}] {
			sub = append(sub, r.DisbursementID)
		}
	}
	kept, err := g.admit(ctx, sub)
	if err != nil {
		return nil, err
	}
	ok := make(map[string]bool, len(kept))
	for _, id := range kept {
		ok[id] = true
	}
	out := ids[:0]
	for _, r := range reqs {
		if !controlled[[2]string{r.MerchantID, r.Environment}] || ok[r.DisbursementID] {
			out = append(out, r.DisbursementID)
		}
	}
	return out, nil
}

// admit decides the ids of controlled environments in one transaction.
func (g *Gate) admit(ctx context.Context, ids []string) ([]string, error) {
	type req struct {
		merchant, env string
		amount        int64
		paused        bool
		limits        Limits
	}
	var admit []string
	err := pgx.BeginFunc(ctx, g.DB, func(tx pgx.Tx) error {
		admit = admit[:0]
		rows, err := tx.Query(ctx, `SELECT d.id, d.merchant_id, d.environment, d.amount,
				c.merchant_paused OR c.operator_paused,
				c.max_amount_per_hour, c.max_count_per_hour, c.max_amount_per_day, c.max_count_per_day,
				c.ceiling_amount_per_hour, c.ceiling_count_per_hour, c.ceiling_amount_per_day, c.ceiling_count_per_day
			FROM disbursements d JOIN payout_controls c USING (merchant_id, environment)
			WHERE d.id = ANY($1) AND d.status = 'PENDING'`, ids)
		if err != nil {
			return fmt.Errorf("read payout controls: %w", err)
		}
		controlled := map[string]req{}
		scopes := map[[2]string]bool{}
		for rows.Next() {
			var id string
			var r req
			var l, c Limits
			if err := rows.Scan(&id, &r.merchant, &r.env, &r.amount, &r.paused,
				&l.MaxAmountPerHour, &l.MaxCountPerHour, &l.MaxAmountPerDay, &l.MaxCountPerDay,
				&c.MaxAmountPerHour, &c.MaxCountPerHour, &c.MaxAmountPerDay, &c.MaxCountPerDay); err != nil {
				rows.Close()
				return err
			}
			r.limits = l.Effective(c)
			controlled[id] = r
			if !r.paused && r.limits.Any() {
				scopes[[2]string{r.merchant, r.env}] = true
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(controlled) == 0 {
			admit = ids
			return nil
		}
		usage := map[[2]string]Usage{}
		if len(scopes) > 0 {
			var ms, es []string
			for k := range scopes {
				ms, es = append(ms, k[0]), append(es, k[1])
			}
			if usage, err = readUsage(ctx, tx, ms, es); err != nil {
				return err
			}
		}
		var moves []payout.Move
		decided := map[string]bool{}
		held := 0
		for _, id := range ids {
			r, ok := controlled[id]
			switch {
			case !ok:
				admit = append(admit, id)
				continue
			case decided[id]:
				continue // repeated in the batch: decided once
			}
			decided[id] = true
			key := [2]string{r.merchant, r.env}
			switch u := usage[key]; {
			case r.paused:
				held++
			case !u.admits(r.limits, r.amount):
				moves = append(moves, payout.Move{ID: id, To: payout.Failed, FailureCode: VelocityLimitExceeded})
			default:
				u.add(r.amount)
				usage[key] = u
				admit = append(admit, id)
			}
		}
		if held > 0 {
			gated.WithLabelValues("held").Add(float64(held))
		}
		if len(moves) == 0 {
			return nil
		}
		// Lock them as every status change does (payout rows by id), then
		// fail those still PENDING; one a cancel got first stays cancelled.
		failIDs := make([]string, len(moves))
		for i, m := range moves {
			failIDs[i] = m.ID
		}
		if _, err := payout.Locked(ctx, tx, failIDs); err != nil {
			return err
		}
		failed, err := payout.MoveAll(ctx, tx, payout.Pending, moves)
		if err != nil {
			return err
		}
		gated.WithLabelValues("velocity_failed").Add(float64(len(failed)))
		for _, d := range failed {
			g.Log.Info("payout over a velocity limit; failed without a debit", "disbursement_id", d.ID,
				"merchant_id", d.MerchantID, "environment", d.Environment, "amount", d.Amount)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("payout controls: %w", err)
	}
	return admit, nil
}
