// Package merchant holds the businesses that use disburse: their two
// environments (sandbox and production), secret keys and per-environment
// settings such as fees and limits, the access settings (callback URL and
// secret, IP whitelist, rate limits) with their audit log, and the token
// buckets of the rate limits. Money is the ledger package's; activating an
// environment opens its ledger accounts through it.
package merchant

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/payout"
)

var (
	// ErrUnauthorized: the key is unknown, expired or revoked.
	ErrUnauthorized = errors.New("merchant: invalid secret key")
	// ErrNotFound: no such merchant.
	ErrNotFound = errors.New("merchant: not found")
	// ErrExists: a merchant with that id exists.
	ErrExists = errors.New("merchant: already exists")
)

// Principal is who a secret key authenticates, with the environment's
// access settings that every request checks.
type Principal struct {
	MerchantID  string
	Environment string
	KeyID       string
	// Retiring: the key has an expiry (it was rotated away and is in its
	// grace period). Such a key may still read and pay, but not change
	// settings or rotate again.
	Retiring bool
	// KeyExpiresAt is when a retiring key stops working (zero: no expiry).
	KeyExpiresAt time.Time
	// IPWhitelist: the networks calls may come from; empty allows every address.
	IPWhitelist []netip.Prefix
	// Limits: the operator's request rates for this environment; a zero
	// field takes the service default.
	Limits Limits
	// Scopes of a restricted key (issue 14); nil for a full secret key.
	Scopes []string
}

// Settings are one environment's fee and limits.
type Settings struct {
	FeeFlat      int64 `json:"fee_flat"`
	FeeBPS       int   `json:"fee_bps"`
	MaxPerPayout int64 `json:"max_per_payout"`
	MaxPerDay    int64 `json:"max_per_day"`
}

// Fee is what a payout of amount costs under s.
func (s Settings) Fee(amount int64) int64 {
	return s.FeeFlat + amount*int64(s.FeeBPS)/10000
}

// Store keeps merchants and keys in Postgres.
type Store struct {
	db *pgxpool.Pool
}

// NewStore returns a store on db.
func NewStore(db *pgxpool.Pool) *Store { return &Store{db: db} }

// Create adds a merchant.
func (s *Store) Create(ctx context.Context, id, name string) error {
	return insert(ctx, s.db, id, name)
}

// CreateTx adds a merchant inside tx (the dashboard's sign-up creates the
// merchant and its first user together).
func CreateTx(ctx context.Context, tx pgx.Tx, id, name string) error {
	return insert(ctx, tx, id, name)
}

func insert(ctx context.Context, db interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, id, name string) error {
	_, err := db.Exec(ctx, `INSERT INTO merchants (id, name) VALUES ($1, $2)`, id, name)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return ErrExists
	}
	return err
}

// Exists reports whether the merchant exists.
func (s *Store) Exists(ctx context.Context, id string) (bool, error) {
	var ok bool
	err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM merchants WHERE id = $1)`, id).Scan(&ok)
	return ok, err
}

// ActivateEnvironment turns an environment on with settings, inside tx (the
// caller opens ledger accounts and deposits in the same transaction). It is
// a no-op when the environment is already active; active reports which.
func ActivateEnvironment(ctx context.Context, tx pgx.Tx, merchantID, environment string, s Settings) (created bool, err error) {
	secret, err := NewCallbackSecret()
	if err != nil {
		return false, err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO merchant_environments
		(merchant_id, environment, fee_flat, fee_bps, max_per_payout, max_per_day, callback_secret)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
		merchantID, environment, s.FeeFlat, s.FeeBPS, s.MaxPerPayout, s.MaxPerDay, secret)
	if err != nil {
		return false, fmt.Errorf("activate %s: %w", environment, err)
	}
	return tag.RowsAffected() == 1, nil
}

// KeyPrefix is the visible prefix of an environment's secret keys.
func KeyPrefix(environment string) string {
	if environment == payout.Production {
		return "sk_live_"
	}
	return "sk_sandbox_"
}

// NewKey makes a secret key for environment from a CSPRNG.
func NewKey(environment string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return KeyPrefix(environment) + hex.EncodeToString(b), nil
}

// AddKey stores a key (only its hash) for the environment inside tx and
// returns the key id.
func AddKey(ctx context.Context, tx pgx.Tx, merchantID, environment, key string) (string, error) {
	if !strings.HasPrefix(key, KeyPrefix(environment)) || len(key) < len(KeyPrefix(environment))+32 {
		return "", fmt.Errorf("a %s key must start with %q and carry at least 32 more characters", environment, KeyPrefix(environment))
	}
	idBytes := make([]byte, 8)
	if _, err := rand.Read(idBytes); err != nil {
		return "", err
	}
	id := "key_" + hex.EncodeToString(idBytes)
	sum := sha256.Sum256([]byte(key))
	_, err := tx.Exec(ctx, `INSERT INTO api_keys (id, merchant_id, environment, hash, hint) VALUES ($1, $2, $3, $4, $5)`,
		id, merchantID, environment, sum[:], KeyHint(environment, key))
	if err != nil {
		return "", fmt.Errorf("store key: %w", err)
	}
	return id, nil
}

// Authenticate finds who a secret key belongs to. The key's prefix alone
// decides the environment, and the stored environment must agree.
func (s *Store) Authenticate(ctx context.Context, key string, now time.Time) (Principal, error) {
	env := ""
	switch {
	case strings.HasPrefix(key, "sk_sandbox_"):
		env = payout.Sandbox
	case strings.HasPrefix(key, "sk_live_"):
		env = payout.Production
	default:
		return Principal{}, ErrUnauthorized
	}
	sum := sha256.Sum256([]byte(key))
	var p Principal
	var stored []byte
	var expires, revoked *time.Time
	var whitelist []string
	err := s.db.QueryRow(ctx, `SELECT k.id, k.merchant_id, k.environment, k.hash, k.expires_at, k.revoked_at,
			e.ip_whitelist, e.rate_create_per_second, e.rate_read_per_second, k.scopes
		FROM api_keys k JOIN merchant_environments e USING (merchant_id, environment)
		WHERE k.hash = $1`, sum[:]).Scan(&p.KeyID, &p.MerchantID, &p.Environment, &stored, &expires, &revoked,
		&whitelist, &p.Limits.CreatePerSecond, &p.Limits.ReadPerSecond, &p.Scopes)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, ErrUnauthorized
	}
	if err != nil {
		return Principal{}, fmt.Errorf("look up key: %w", err)
	}
	if subtle.ConstantTimeCompare(stored, sum[:]) != 1 || p.Environment != env ||
		revoked != nil || (expires != nil && !now.Before(*expires)) {
		return Principal{}, ErrUnauthorized
	}
	p.Retiring = expires != nil
	if expires != nil {
		p.KeyExpiresAt = *expires
	}
	if p.IPWhitelist, err = parseStoredWhitelist(whitelist); err != nil {
		return Principal{}, fmt.Errorf("%s/%s: %w", p.MerchantID, p.Environment, err)
	}
	return p, nil
}

// SetStatus suspends (SUSPENDED) or resumes (ACTIVE) a merchant.
func (s *Store) SetStatus(ctx context.Context, merchantID, status string) error {
	tag, err := s.db.Exec(ctx, `UPDATE merchants SET status = $2 WHERE id = $1`, merchantID, status)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return err
}

// SetSettings changes an environment's fee and limits.
func (s *Store) SetSettings(ctx context.Context, merchantID, environment string, st Settings) error {
	tag, err := s.db.Exec(ctx, `UPDATE merchant_environments
		SET fee_flat = $3, fee_bps = $4, max_per_payout = $5, max_per_day = $6
		WHERE merchant_id = $1 AND environment = $2`,
		merchantID, environment, st.FeeFlat, st.FeeBPS, st.MaxPerPayout, st.MaxPerDay)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return err
}

// ActivateSandbox turns on the merchant's sandbox with a demo deposit and a
// secret key (key empty: a new one is generated), all in one transaction.
// It returns the key, shown once. Activating twice is an error wrapped as ErrExists.
func (s *Store) ActivateSandbox(ctx context.Context, merchantID, key string, deposit int64, st Settings) (string, error) {
	return s.activate(ctx, merchantID, payout.Sandbox, key, deposit, st)
}

// ActivateProduction turns on production (after the operator's approval)
// with a key and no money: production deposits come from top-ups.
func (s *Store) ActivateProduction(ctx context.Context, merchantID string, st Settings) (string, error) {
	return s.activate(ctx, merchantID, payout.Production, "", 0, st)
}

func (s *Store) activate(ctx context.Context, merchantID, environment, key string, deposit int64, st Settings) (string, error) {
	if key == "" {
		var err error
		if key, err = NewKey(environment); err != nil {
			return "", err
		}
	}
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM merchants WHERE id = $1)`, merchantID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return ErrNotFound
		}
		created, err := ActivateEnvironment(ctx, tx, merchantID, environment, st)
		if err != nil {
			return err
		}
		if !created {
			return fmt.Errorf("%s is already active: %w", environment, ErrExists)
		}
		if _, err := AddKey(ctx, tx, merchantID, environment, key); err != nil {
			return err
		}
		if err := ledger.OpenAccounts(ctx, tx, merchantID, environment, "IDR"); err != nil {
			return err
		}
		if deposit > 0 {
			return ledger.Deposit(ctx, tx, merchantID, environment, "IDR", deposit, "sandbox demo deposit")
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return key, nil
}

// DB is the pool the store uses, for callers that add keys in their own transaction.
func (s *Store) DB() *pgxpool.Pool { return s.db }
