package controls

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/merchant"
)

// VelocityLimitExceeded is the failure code of a payout over a velocity limit.
const VelocityLimitExceeded = "VELOCITY_LIMIT_EXCEEDED"

// Who paused.
const (
	ByMerchant = "merchant"
	ByOperator = "operator"
)

var (
	// ErrOverCeiling: a merchant limit above the operator's ceiling.
	ErrOverCeiling = errors.New("controls: over the operator's ceiling")
	// ErrOperatorPause: the merchant may not lift the operator's pause.
	ErrOperatorPause = errors.New("controls: paused by the operator")
)

// Limits are velocity limits; 0 means none.
type Limits struct {
	MaxAmountPerHour int64 `json:"max_amount_per_hour"`
	MaxCountPerHour  int64 `json:"max_count_per_hour"`
	MaxAmountPerDay  int64 `json:"max_amount_per_day"`
	MaxCountPerDay   int64 `json:"max_count_per_day"`
}

func (l Limits) fields() [4]int64 {
	return [4]int64{l.MaxAmountPerHour, l.MaxCountPerHour, l.MaxAmountPerDay, l.MaxCountPerDay}
}

// FieldNames are the JSON names of Limits' fields, in fields() order.
var FieldNames = [4]string{"max_amount_per_hour", "max_count_per_hour", "max_amount_per_day", "max_count_per_day"}

// Any reports whether a limit is set.
func (l Limits) Any() bool { return l != Limits{} }

// Within lists the fields of l over the ceiling c (a set ceiling also
// forbids "no limit").
func (l Limits) Within(c Limits) []string {
	var over []string
	lf, cf := l.fields(), c.fields()
	for i := range lf {
		if cf[i] > 0 && (lf[i] == 0 || lf[i] > cf[i]) {
			over = append(over, FieldNames[i])
		}
	}
	return over
}

// Effective is the smaller set limit of l and c, field by field.
func (l Limits) Effective(c Limits) Limits {
	pick := func(a, b int64) int64 {
		switch {
		case a == 0:
			return b
		case b == 0:
			return a
		}
		return min(a, b)
	}
	return Limits{pick(l.MaxAmountPerHour, c.MaxAmountPerHour), pick(l.MaxCountPerHour, c.MaxCountPerHour),
		pick(l.MaxAmountPerDay, c.MaxAmountPerDay), pick(l.MaxCountPerDay, c.MaxCountPerDay)}
}

// Usage is what was debited in the rolling windows.
type Usage struct {
	HourCount  int64 `json:"hour_count"`
	HourAmount int64 `json:"hour_amount"`
	DayCount   int64 `json:"day_count"`
	DayAmount  int64 `json:"day_amount"`
}

// admits reports whether one more payout of amount stays within l.
func (u Usage) admits(l Limits, amount int64) bool {
	over := func(limit, value int64) bool { return limit > 0 && value > limit }
	return !over(l.MaxCountPerHour, u.HourCount+1) && !over(l.MaxAmountPerHour, u.HourAmount+amount) &&
		!over(l.MaxCountPerDay, u.DayCount+1) && !over(l.MaxAmountPerDay, u.DayAmount+amount)
}

func (u *Usage) add(amount int64) {
	u.HourCount++
	u.HourAmount += amount
	u.DayCount++
	u.DayAmount += amount
}

// Controls are an environment's controls as the API shows them.
type Controls struct {
	Paused         bool       `json:"paused"`
	MerchantPaused bool       `json:"merchant_paused"`
	OperatorPaused bool       `json:"operator_paused"`
	PausedAt       *time.Time `json:"paused_at"`
	PauseReason    string     `json:"pause_reason"`
	Limits         Limits     `json:"limits"`
	Ceiling        Limits     `json:"ceiling"`
	Effective      Limits     `json:"effective"`
	Usage          Usage      `json:"usage"`
}

// Store keeps payout controls in Postgres.
type Store struct{ db *pgxpool.Pool }

// NewStore returns a store on db.
func NewStore(db *pgxpool.Pool) *Store { return &Store{db: db} }

const controlColumns = `merchant_paused, operator_paused, paused_at, pause_reason,
	max_amount_per_hour, max_count_per_hour, max_amount_per_day, max_count_per_day,
	ceiling_amount_per_hour, ceiling_count_per_hour, ceiling_amount_per_day, ceiling_count_per_day`

func scanControls(row pgx.Row, c *Controls) error {
	err := row.Scan(&c.MerchantPaused, &c.OperatorPaused, &c.PausedAt, &c.PauseReason,
		&c.Limits.MaxAmountPerHour, &c.Limits.MaxCountPerHour, &c.Limits.MaxAmountPerDay, &c.Limits.MaxCountPerDay,
		&c.Ceiling.MaxAmountPerHour, &c.Ceiling.MaxCountPerHour, &c.Ceiling.MaxAmountPerDay, &c.Ceiling.MaxCountPerDay)
	c.Paused = c.MerchantPaused || c.OperatorPaused
	c.Effective = c.Limits.Effective(c.Ceiling)
	return err
}

// Get reads an environment's controls and its usage in the windows.
func (s *Store) Get(ctx context.Context, merchantID, environment string) (Controls, error) {
	var c Controls
	err := scanControls(s.db.QueryRow(ctx, `SELECT `+controlColumns+` FROM payout_controls
		WHERE merchant_id = $1 AND environment = $2`, merchantID, environment), &c)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Controls{}, fmt.Errorf("read controls: %w", err)
	}
	usage, err := readUsage(ctx, s.db, []string{merchantID}, []string{environment})
	if err != nil {
		return Controls{}, err
	}
	c.Usage = usage[[2]string{merchantID, environment}]
	return c, nil
}

// update changes an environment's row (made when missing) inside one
// transaction holding its lock; change sees the current controls.
// Each change is written to the settings audit log (setting, with the old
// and new value) by actor in the same transaction.
func (s *Store) update(ctx context.Context, merchantID, environment, actor, setting string, now time.Time, change func(*Controls) error) (Controls, error) {
	var c Controls
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO payout_controls (merchant_id, environment) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
			merchantID, environment); err != nil {
			return err
		}
		if err := scanControls(tx.QueryRow(ctx, `SELECT `+controlColumns+` FROM payout_controls
			WHERE merchant_id = $1 AND environment = $2 FOR UPDATE`, merchantID, environment), &c); err != nil {
			return err
		}
		before := c
		if err := change(&c); err != nil {
			return err
		}
		if err := merchant.WriteAudit(ctx, tx, now, merchantID, environment, actor, setting, auditValue(setting, before), auditValue(setting, c)); err != nil {
			return err
		}
		l, ce := c.Limits, c.Ceiling
		_, err := tx.Exec(ctx, `UPDATE payout_controls SET merchant_paused = $3, operator_paused = $4, paused_at = $5, pause_reason = $6,
				max_amount_per_hour = $7, max_count_per_hour = $8, max_amount_per_day = $9, max_count_per_day = $10,
				ceiling_amount_per_hour = $11, ceiling_count_per_hour = $12, ceiling_amount_per_day = $13, ceiling_count_per_day = $14,
				updated_at = now()
			WHERE merchant_id = $1 AND environment = $2`, merchantID, environment,
			c.MerchantPaused, c.OperatorPaused, c.PausedAt, c.PauseReason,
			l.MaxAmountPerHour, l.MaxCountPerHour, l.MaxAmountPerDay, l.MaxCountPerDay,
			ce.MaxAmountPerHour, ce.MaxCountPerHour, ce.MaxAmountPerDay, ce.MaxCountPerDay)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrOverCeiling) || errors.Is(err, ErrOperatorPause) {
			return Controls{}, err
		}
		return Controls{}, fmt.Errorf("update controls: %w", err)
	}
	c.Paused = c.MerchantPaused || c.OperatorPaused
	c.Effective = c.Limits.Effective(c.Ceiling)
	return c, nil
}

// SetLimits sets the merchant's velocity limits; each must be within the
// operator's ceiling (ErrOverCeiling, wrapped with the fields).
func (s *Store) SetLimits(ctx context.Context, merchantID, environment, actor string, l Limits, now time.Time) (Controls, error) {
	return s.update(ctx, merchantID, environment, actor, "velocity_limits", now, func(c *Controls) error {
		if over := l.Within(c.Ceiling); len(over) > 0 {
			return fmt.Errorf("%w: %v", ErrOverCeiling, over)
		}
		c.Limits = l
		return nil
	})
}

// SetCeiling sets the operator's ceiling. Merchant limits above it are
// lowered to it, so the effective limits never exceed the ceiling.
func (s *Store) SetCeiling(ctx context.Context, merchantID, environment string, ceiling Limits, now time.Time) (Controls, error) {
	return s.update(ctx, merchantID, environment, ByOperator, "velocity_ceiling", now, func(c *Controls) error {
		c.Ceiling = ceiling
		c.Limits = c.Limits.Effective(ceiling)
		return nil
	})
}

// Pause sets by's pause (ByMerchant or ByOperator) at now. From the moment
// it commits, the ledger stage debits none of the environment's payouts.
func (s *Store) Pause(ctx context.Context, merchantID, environment, by, actor, reason string, now time.Time) (Controls, error) {
	return s.update(ctx, merchantID, environment, actor, "payouts_paused", now, func(c *Controls) error {
		if !c.Paused {
			at := now.UTC()
			c.PausedAt = &at
			c.PauseReason = reason
		}
		if by == ByOperator {
			c.OperatorPaused = true
		} else {
			c.MerchantPaused = true
		}
		return nil
	})
}

// Resume lifts by's pause; the merchant cannot lift the operator's
// (ErrOperatorPause). Resuming what is not paused changes nothing.
func (s *Store) Resume(ctx context.Context, merchantID, environment, by, actor string, now time.Time) (Controls, error) {
	return s.update(ctx, merchantID, environment, actor, "payouts_paused", now, func(c *Controls) error {
		if by == ByOperator {
			c.OperatorPaused = false
		} else {
			if c.OperatorPaused {
				return ErrOperatorPause
			}
			c.MerchantPaused = false
		}
		if !c.MerchantPaused && !c.OperatorPaused {
			c.PausedAt, c.PauseReason = nil, ""
		}
		return nil
	})
}

// auditValue is what the audit log records of c for setting.
func auditValue(setting string, c Controls) any {
	switch setting {
	case "velocity_limits":
		return c.Limits
	case "velocity_ceiling":
		return c.Ceiling
	}
	return map[string]any{"merchant_paused": c.MerchantPaused, "operator_paused": c.OperatorPaused, "reason": c.PauseReason}
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// readUsage is what each environment debited in the last hour and 24
// hours: payouts debited and not failed or cancelled since (a failed
// payout's money came back, so it does not count).
func readUsage(ctx context.Context, q querier, merchants, envs []string) (map[[2]string]Usage, error) {
	rows, err := q.Query(ctx, `SELECT merchant_id, environment,
			count(*) FILTER (WHERE debited_at > now() - interval '1 hour'),
			coalesce(sum(amount) FILTER (WHERE debited_at > now() - interval '1 hour'), 0),
			count(*), coalesce(sum(amount), 0)
		FROM disbursements
		WHERE (merchant_id, environment) IN (SELECT * FROM unnest($1::text[], $2::text[]))
		  AND debited_at > now() - interval '24 hours' AND status IN ('PROCESSING', 'COMPLETED', 'REVERSED')
		GROUP BY 1, 2`, merchants, envs)
	if err != nil {
		return nil, fmt.Errorf("read velocity usage: %w", err)
	}
	defer rows.Close()
	out := map[[2]string]Usage{}
	for rows.Next() {
		var m, e string
		var u Usage
		if err := rows.Scan(&m, &e, &u.HourCount, &u.HourAmount, &u.DayCount, &u.DayAmount); err != nil {
			return nil, err
		}
		out[[2]string{m, e}] = u
	}
	return out, rows.Err()
}
