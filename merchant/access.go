package merchant

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ActorOperator is the audit log's actor for the operator API's changes;
// a merchant's changes name the key id that made them.
const ActorOperator = "operator"

// actorSystem is the audit log's actor for changes the service makes itself.
const actorSystem = "system"

// MaxWhitelist is how many networks one environment's IP whitelist holds.
const MaxWhitelist = 100

// Limits are an environment's request rates per second; the burst is twice
// the rate. A zero field takes the service default.
type Limits struct {
	CreatePerSecond int `json:"create_per_second"`
	ReadPerSecond   int `json:"read_per_second"`
}

// Or fills the zero fields of l from def.
func (l Limits) Or(def Limits) Limits {
	if l.CreatePerSecond == 0 {
		l.CreatePerSecond = def.CreatePerSecond
	}
	if l.ReadPerSecond == 0 {
		l.ReadPerSecond = def.ReadPerSecond
	}
	return l
}

// Bounds of the callback delivery settings (the schema checks them too).
const (
	MaxCallbackBatchSize       = 100
	MaxCallbackConcurrency     = 64
	DefaultCallbackBatchSize   = 1
	DefaultCallbackConcurrency = 4
)

// Access is an environment's access settings.
type Access struct {
	Environment    string
	CallbackURL    string
	CallbackSecret string
	IPWhitelist    []netip.Prefix
	Limits         Limits
	// CallbackBatchSize: 1 sends one POST per callback; more sends up to
	// that many pending callbacks in one POST.
	CallbackBatchSize int
	// CallbackConcurrency: POSTs in flight to the endpoint at once.
	CallbackConcurrency int
}

// AccessChange is a partial update; nil fields stay as they are.
type AccessChange struct {
	CallbackURL         *string
	IPWhitelist         *[]netip.Prefix
	CallbackBatchSize   *int
	CallbackConcurrency *int
}

// NewCallbackSecret makes a callback signing secret from a CSPRNG.
func NewCallbackSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "whsec_" + hex.EncodeToString(b), nil
}

func secretHint(secret string) string {
	if len(secret) < 10 {
		return "whsec_..."
	}
	return "whsec_..." + secret[len(secret)-4:]
}

// ParseNetwork reads one whitelist entry: an IPv4 or IPv6 address, or a
// CIDR prefix, and returns it normalized (host bits cleared, a single
// address as /32 or /128, IPv4-mapped IPv6 as IPv4). Zones are refused.
func ParseNetwork(s string) (netip.Prefix, error) {
	if s == "" || len(s) > 64 {
		return netip.Prefix{}, errors.New("must be an IP address or CIDR prefix")
	}
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix", truncate(s, 64))
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address", truncate(s, 64))
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// Allows reports whether addr is inside one of the networks (an empty list allows every address).
func Allows(networks []netip.Prefix, addr netip.Addr) bool {
	if len(networks) == 0 {
		return true
	}
	addr = addr.Unmap().WithZone("")
	for _, n := range networks {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

func parseStoredWhitelist(stored []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(stored))
	for _, s := range stored {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("stored ip_whitelist entry %q: %w", s, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// Access reads an environment's access settings. An environment activated
// before callback secrets existed gets one now (recorded in the audit log).
func (s *Store) Access(ctx context.Context, merchantID, environment string, now time.Time) (Access, error) {
	a, err := loadAccess(ctx, s.db, merchantID, environment, false)
	if err != nil || a.CallbackSecret != "" {
		return a, err
	}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if a, err = loadAccess(ctx, tx, merchantID, environment, true); err != nil || a.CallbackSecret != "" {
			return err
		}
		if a.CallbackSecret, err = NewCallbackSecret(); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE merchant_environments SET callback_secret = $3 WHERE merchant_id = $1 AND environment = $2`,
			merchantID, environment, a.CallbackSecret); err != nil {
			return err
		}
		return writeAudit(ctx, tx, now, merchantID, environment, actorSystem, "callback_secret",
			nil, map[string]string{"hint": secretHint(a.CallbackSecret)})
	})
	if err != nil {
		return Access{}, fmt.Errorf("generate callback secret: %w", err)
	}
	return a, nil
}

// UpdateAccess applies a change made by actor (a key id) and writes each
// changed setting, old and new value, to the audit log in the same transaction.
func (s *Store) UpdateAccess(ctx context.Context, merchantID, environment, actor string, now time.Time, ch AccessChange) (Access, error) {
	var a Access
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		if a, err = loadAccess(ctx, tx, merchantID, environment, true); err != nil {
			return err
		}
		if ch.CallbackURL != nil && *ch.CallbackURL != a.CallbackURL {
			if err := writeAudit(ctx, tx, now, merchantID, environment, actor, "callback_url", a.CallbackURL, *ch.CallbackURL); err != nil {
				return err
			}
			a.CallbackURL = *ch.CallbackURL
		}
		if ch.IPWhitelist != nil && !slices.Equal(*ch.IPWhitelist, a.IPWhitelist) {
			if err := writeAudit(ctx, tx, now, merchantID, environment, actor, "ip_whitelist",
				prefixStrings(a.IPWhitelist), prefixStrings(*ch.IPWhitelist)); err != nil {
				return err
			}
			a.IPWhitelist = slices.Clone(*ch.IPWhitelist)
		}
		if ch.CallbackBatchSize != nil && *ch.CallbackBatchSize != a.CallbackBatchSize {
			if err := writeAudit(ctx, tx, now, merchantID, environment, actor, "callback_batch_size", a.CallbackBatchSize, *ch.CallbackBatchSize); err != nil {
				return err
			}
			a.CallbackBatchSize = *ch.CallbackBatchSize
		}
		if ch.CallbackConcurrency != nil && *ch.CallbackConcurrency != a.CallbackConcurrency {
			if err := writeAudit(ctx, tx, now, merchantID, environment, actor, "callback_concurrency", a.CallbackConcurrency, *ch.CallbackConcurrency); err != nil {
				return err
			}
			a.CallbackConcurrency = *ch.CallbackConcurrency
		}
		_, err = tx.Exec(ctx, `UPDATE merchant_environments SET callback_url = $3, ip_whitelist = $4,
				callback_batch_size = $5, callback_concurrency = $6
			WHERE merchant_id = $1 AND environment = $2`, merchantID, environment, a.CallbackURL, prefixStrings(a.IPWhitelist),
			a.CallbackBatchSize, a.CallbackConcurrency)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Access{}, err
		}
		return Access{}, fmt.Errorf("update access settings: %w", err)
	}
	return a, nil
}

// SetLimits sets an environment's request rates (the operator's action; a
// zero field returns to the service default).
func (s *Store) SetLimits(ctx context.Context, merchantID, environment string, now time.Time, l Limits) error {
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		a, err := loadAccess(ctx, tx, merchantID, environment, true)
		if err != nil {
			return err
		}
		if a.Limits == l {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE merchant_environments SET rate_create_per_second = $3, rate_read_per_second = $4
			WHERE merchant_id = $1 AND environment = $2`, merchantID, environment, l.CreatePerSecond, l.ReadPerSecond); err != nil {
			return err
		}
		return writeAudit(ctx, tx, now, merchantID, environment, ActorOperator, "rate_limits", a.Limits, l)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("set rate limits: %w", err)
	}
	return err
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func loadAccess(ctx context.Context, q querier, merchantID, environment string, lock bool) (Access, error) {
	sql := `SELECT callback_url, callback_secret, ip_whitelist, rate_create_per_second, rate_read_per_second,
			callback_batch_size, callback_concurrency
		FROM merchant_environments WHERE merchant_id = $1 AND environment = $2`
	if lock {
		sql += ` FOR UPDATE`
	}
	a := Access{Environment: environment}
	var whitelist []string
	err := q.QueryRow(ctx, sql, merchantID, environment).
		Scan(&a.CallbackURL, &a.CallbackSecret, &whitelist, &a.Limits.CreatePerSecond, &a.Limits.ReadPerSecond,
			&a.CallbackBatchSize, &a.CallbackConcurrency)
	if errors.Is(err, pgx.ErrNoRows) {
		return Access{}, ErrNotFound
	}
	if err != nil {
		return Access{}, fmt.Errorf("load access settings: %w", err)
	}
	a.IPWhitelist, err = parseStoredWhitelist(whitelist)
	return a, err
}

// AuditEntry is one change in the settings audit log.
type AuditEntry struct {
	ID          int64           `json:"id"`
	At          time.Time       `json:"at"`
	Environment string          `json:"environment"`
	Actor       string          `json:"actor"`
	Setting     string          `json:"setting"`
	OldValue    json.RawMessage `json:"old_value"`
	NewValue    json.RawMessage `json:"new_value"`
}

// writeAudit records a change; values are stored as JSON (nil as SQL NULL).
func writeAudit(ctx context.Context, tx pgx.Tx, at time.Time, merchantID, environment, actor, setting string, oldValue, newValue any) error {
	asJSON := func(v any) ([]byte, error) {
		if v == nil {
			return nil, nil
		}
		return json.Marshal(v)
	}
	o, err := asJSON(oldValue)
	if err != nil {
		return err
	}
	n, err := asJSON(newValue)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO settings_audit (at, merchant_id, environment, actor, setting, old_value, new_value)
		VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)`, at, merchantID, environment, actor, setting, o, n)
	if err != nil {
		return fmt.Errorf("write settings audit: %w", err)
	}
	return nil
}

// AuditLog returns the newest changes of the merchant's settings, newest
// first, at most limit, only of environment when it is not empty, and only
// older than the entry before when before > 0 (the cursor).
func (s *Store) AuditLog(ctx context.Context, merchantID, environment string, before int64, limit int) ([]AuditEntry, error) {
	rows, err := s.db.Query(ctx, `SELECT id, at, environment, actor, setting, coalesce(old_value, 'null'), coalesce(new_value, 'null')
		FROM settings_audit WHERE merchant_id = $1 AND ($2 = '' OR environment = $2) AND ($3 = 0 OR id < $3)
		ORDER BY id DESC LIMIT $4`, merchantID, environment, before, limit)
	if err != nil {
		return nil, fmt.Errorf("read settings audit: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		var o, n []byte
		err := row.Scan(&e.ID, &e.At, &e.Environment, &e.Actor, &e.Setting, &o, &n)
		e.OldValue, e.NewValue = o, n
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read settings audit: %w", err)
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
