package merchant

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

var (
	// ErrKeyRetiring: the key was rotated away (it is in its grace period)
	// or revoked, so it may not rotate again or change settings.
	ErrKeyRetiring = errors.New("merchant: the key is retiring")
	// ErrKeyNotFound: no such key for the merchant.
	ErrKeyNotFound = errors.New("merchant: no such key")
)

// Key describes a secret key without revealing it.
type Key struct {
	ID          string     `json:"id"`
	Environment string     `json:"environment"`
	Hint        string     `json:"hint"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	// Label, Scopes and LastUsedAt (issue 14): a full key has every
	// scope (Full); a restricted key only those it was issued with.
	Label      string     `json:"label"`
	Full       bool       `json:"full"`
	Scopes     []string   `json:"scopes"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// Status is the key's state at now: ACTIVE, EXPIRING (rotated away, in its
// grace period), EXPIRED or REVOKED.
func (k Key) Status(now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return "REVOKED"
	case k.ExpiresAt == nil:
		return "ACTIVE"
	case now.Before(*k.ExpiresAt):
		return "EXPIRING"
	default:
		return "EXPIRED"
	}
}

// KeyHint names a key by its prefix and last four characters.
func KeyHint(environment, key string) string {
	if len(key) < len(KeyPrefix(environment))+8 {
		return KeyPrefix(environment) + "..."
	}
	return KeyPrefix(environment) + "..." + key[len(key)-4:]
}

// Keys lists the merchant's keys, oldest first.
func (s *Store) Keys(ctx context.Context, merchantID string) ([]Key, error) {
	return s.listKeys(ctx, `merchant_id = $1`, merchantID)
}

// Rotation is the outcome of RotateKey. Key is shown once and never stored.
type Rotation struct {
	Key     string
	KeyID   string
	Retired []string  // ids of the keys now expiring
	Expires time.Time // when they stop working
}

// RotateKey adds a new key to the caller's environment and lets every other
// live key of it expire at now+grace (an expiry already set earlier is
// kept). Only a current key may rotate: a retiring key that could rotate
// would let a leaked key outlive the rotation meant to retire it. The
// change is written to the settings audit log in the same transaction.
func (s *Store) RotateKey(ctx context.Context, p Principal, now time.Time, grace time.Duration) (Rotation, error) {
	return s.rotate(ctx, p.MerchantID, p.Environment, p.KeyID, now, grace, func(tx pgx.Tx) error {
		var expires, revoked *time.Time
		err := tx.QueryRow(ctx, `SELECT expires_at, revoked_at FROM api_keys WHERE id = $1 AND merchant_id = $2 AND environment = $3`,
			p.KeyID, p.MerchantID, p.Environment).Scan(&expires, &revoked)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrUnauthorized
		}
		if err != nil {
			return err
		}
		if expires != nil || revoked != nil {
			return ErrKeyRetiring
		}
		return nil
	})
}

// RotateKeyAs is RotateKey made by a signed-in dashboard user (actor, as
// the audit log names them) rather than by a key: the user's own session
// is the authority, so no key needs to be current.
func (s *Store) RotateKeyAs(ctx context.Context, merchantID, environment, actor string, now time.Time, grace time.Duration) (Rotation, error) {
	return s.rotate(ctx, merchantID, environment, actor, now, grace, func(pgx.Tx) error { return nil })
}

func (s *Store) rotate(ctx context.Context, merchantID, environment, actor string, now time.Time, grace time.Duration, check func(pgx.Tx) error) (Rotation, error) {
	key, err := NewKey(environment)
	if err != nil {
		return Rotation{}, err
	}
	r := Rotation{Key: key, Expires: now.Add(grace)}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		// One rotation at a time per environment.
		tag, err := tx.Exec(ctx, `SELECT 1 FROM merchant_environments WHERE merchant_id = $1 AND environment = $2 FOR UPDATE`,
			merchantID, environment)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		if err := check(tx); err != nil {
			return err
		}
		// Only full keys retire: restricted keys are revoked one by one
		// (a rotation of the main key must not cut off every integration).
		rows, err := tx.Query(ctx, `UPDATE api_keys SET expires_at = LEAST(coalesce(expires_at, 'infinity'), $3)
			WHERE merchant_id = $1 AND environment = $2 AND scopes IS NULL AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $4)
			RETURNING id`, merchantID, environment, r.Expires, now)
		if err != nil {
			return err
		}
		if r.Retired, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		if r.KeyID, err = AddKey(ctx, tx, merchantID, environment, key); err != nil {
			return err
		}
		return writeAudit(ctx, tx, now, merchantID, environment, actor, "secret_key",
			map[string]any{"key_ids": r.Retired, "expires_at": r.Expires.UTC()},
			map[string]any{"key_id": r.KeyID, "hint": KeyHint(environment, key)})
	})
	if err != nil {
		return Rotation{}, fmt.Errorf("rotate key: %w", err)
	}
	return r, nil
}

// RevokeKey makes a key fail at once (the operator's action). Revoking a
// revoked key changes nothing and returns it.
func (s *Store) RevokeKey(ctx context.Context, merchantID, keyID string, now time.Time) (Key, error) {
	var k Key
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		k, err = scanKey(tx.QueryRow(ctx, `SELECT `+keyColumns+`
			FROM api_keys WHERE merchant_id = $1 AND id = $2 FOR UPDATE`, merchantID, keyID))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrKeyNotFound
		}
		if err != nil || k.RevokedAt != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = $2 WHERE id = $1`, keyID, now); err != nil {
			return err
		}
		old := k.Status(now)
		at := now
		k.RevokedAt = &at
		return writeAudit(ctx, tx, now, merchantID, k.Environment, ActorOperator, "secret_key",
			map[string]any{"key_id": k.ID, "status": old}, map[string]any{"key_id": k.ID, "status": "REVOKED"})
	})
	if err != nil {
		return Key{}, fmt.Errorf("revoke key: %w", err)
	}
	return k, nil
}

// IssueKey adds a key to an environment beside its live keys (the
// operator's action, for a merchant that lost its key) and returns it,
// shown once.
func (s *Store) IssueKey(ctx context.Context, merchantID, environment string, now time.Time) (key, keyID string, err error) {
	if key, err = NewKey(environment); err != nil {
		return "", "", err
	}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := loadAccess(ctx, tx, merchantID, environment, true); err != nil {
			return err
		}
		if keyID, err = AddKey(ctx, tx, merchantID, environment, key); err != nil {
			return err
		}
		return writeAudit(ctx, tx, now, merchantID, environment, ActorOperator, "secret_key",
			nil, map[string]any{"key_id": keyID, "hint": KeyHint(environment, key)})
	})
	if errors.Is(err, ErrNotFound) {
		return "", "", err
	}
	if err != nil {
		return "", "", fmt.Errorf("issue key: %w", err)
	}
	return key, keyID, nil
}
