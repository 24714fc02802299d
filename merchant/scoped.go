package merchant

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Scopes a restricted key may carry (issue 14). The environment's full
// secret key holds every scope and, alone, manages keys and rotates itself.
const (
	ScopePayoutsCreate  = "payouts:create"
	ScopePayoutsRead    = "payouts:read"
	ScopeBatchesApprove = "batches:approve"
	ScopeSettings       = "settings"
	ScopeReports        = "reports"
)

// AllScopes lists the scopes in the order they are shown.
var AllScopes = []string{ScopePayoutsCreate, ScopePayoutsRead, ScopeBatchesApprove, ScopeSettings, ScopeReports}

// MaxScopedKeys is how many live (not revoked) restricted keys one
// environment holds: enough for every integration, few enough to audit.
const MaxScopedKeys = 50

var (
	// ErrFullKey: the key is the environment's full secret key, which is
	// retired by rotation (with its grace period), not revoked by the merchant.
	ErrFullKey = errors.New("merchant: the full secret key is rotated, not revoked")
	// ErrTooManyKeys: the environment has MaxScopedKeys live restricted keys.
	ErrTooManyKeys = errors.New("merchant: too many restricted keys")
)

// Full reports whether the principal authenticated with a full secret key.
func (p Principal) Full() bool { return p.Scopes == nil }

// Has reports whether the principal's key covers scope.
func (p Principal) Has(scope string) bool { return p.Full() || slices.Contains(p.Scopes, scope) }

// keyColumns are the columns scanKey reads, in its order.
const keyColumns = `id, environment, hint, created_at, expires_at, revoked_at, label, scopes, last_used_at`

func scanKey(row pgx.Row) (Key, error) {
	var k Key
	err := row.Scan(&k.ID, &k.Environment, &k.Hint, &k.CreatedAt, &k.ExpiresAt, &k.RevokedAt, &k.Label, &k.Scopes, &k.LastUsedAt)
	k.Full = k.Scopes == nil
	if k.Full {
		k.Scopes = slices.Clone(AllScopes)
	}
	return k, err
}

// EnvironmentKeys lists one environment's keys, full and restricted,
// oldest first.
func (s *Store) EnvironmentKeys(ctx context.Context, merchantID, environment string) ([]Key, error) {
	return s.listKeys(ctx, `merchant_id = $1 AND environment = $2`, merchantID, environment)
}

// listKeys lists the keys matching where, oldest first.
func (s *Store) listKeys(ctx context.Context, where string, args ...any) ([]Key, error) {
	rows, err := s.db.Query(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE `+where+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Key, error) { return scanKey(row) })
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return keys, nil
}

// IssueScopedKey adds a restricted key with label and scopes (checked by
// the caller: a non-empty set of AllScopes) to the caller's environment and
// returns it, shown once, with its description. The issue is written to
// the settings audit log in the same transaction.
func (s *Store) IssueScopedKey(ctx context.Context, p Principal, label string, scopes []string, now time.Time) (string, Key, error) {
	key, err := NewKey(p.Environment)
	if err != nil {
		return "", Key{}, err
	}
	var k Key
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		// One issue at a time per environment, so the count below holds.
		if _, err := loadAccess(ctx, tx, p.MerchantID, p.Environment, true); err != nil {
			return err
		}
		var live int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM api_keys WHERE merchant_id = $1 AND environment = $2
			AND scopes IS NOT NULL AND revoked_at IS NULL`, p.MerchantID, p.Environment).Scan(&live); err != nil {
			return err
		}
		if live >= MaxScopedKeys {
			return ErrTooManyKeys
		}
		id, err := AddKey(ctx, tx, p.MerchantID, p.Environment, key)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE api_keys SET scopes = $2, label = $3, created_at = $4 WHERE id = $1`, id, scopes, label, now); err != nil {
			return err
		}
		if k, err = scanKey(tx.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE id = $1`, id)); err != nil {
			return err
		}
		return writeAudit(ctx, tx, now, p.MerchantID, p.Environment, p.KeyID, "secret_key",
			nil, map[string]any{"key_id": id, "hint": k.Hint, "label": label, "scopes": scopes})
	})
	if errors.Is(err, ErrTooManyKeys) {
		return "", Key{}, err
	}
	if err != nil {
		return "", Key{}, fmt.Errorf("issue scoped key: %w", err)
	}
	return key, k, nil
}

// RevokeScopedKey revokes a restricted key of the caller's environment at
// once. A full key answers ErrFullKey; an unknown one (or another
// environment's) ErrKeyNotFound. Revoking a revoked key changes nothing.
func (s *Store) RevokeScopedKey(ctx context.Context, p Principal, keyID string, now time.Time) (Key, error) {
	var k Key
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		k, err = scanKey(tx.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys
			WHERE merchant_id = $1 AND environment = $2 AND id = $3 FOR UPDATE`, p.MerchantID, p.Environment, keyID))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return ErrKeyNotFound
		case err != nil:
			return err
		case k.Full:
			return ErrFullKey
		case k.RevokedAt != nil:
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE api_keys SET revoked_at = $2 WHERE id = $1`, keyID, now); err != nil {
			return err
		}
		at := now
		k.RevokedAt = &at
		return writeAudit(ctx, tx, now, p.MerchantID, p.Environment, p.KeyID, "secret_key",
			map[string]any{"key_id": k.ID, "status": "ACTIVE"}, map[string]any{"key_id": k.ID, "status": "REVOKED"})
	})
	if errors.Is(err, ErrKeyNotFound) || errors.Is(err, ErrFullKey) {
		return Key{}, err
	}
	if err != nil {
		return Key{}, fmt.Errorf("revoke scoped key: %w", err)
	}
	return k, nil
}

// TouchKey records that a key was used at at, unless a later use is
// already recorded.
func (s *Store) TouchKey(ctx context.Context, keyID string, at time.Time) error {
	_, err := s.db.Exec(ctx, `UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)`, keyID, at)
	return err
}
