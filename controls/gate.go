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

// Admit returns the ids (in their order) the debit may take. Of the PENDING
// payouts of environments with controls, it leaves out those of paused
// environments (held: still PENDING, published again by the resume) and
// fails those over a velocity limit, in topic order, with
// VELOCITY_LIMIT_EXCEEDED (nothing was debited). Ids that are not PENDING
// pass through: the debit leaves them alone. An environment without a
// payout_controls row costs one read for the whole batch.
func (g *Gate) Admit(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return ids, nil
	}
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
