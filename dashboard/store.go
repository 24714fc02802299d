package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// Roles, from most to least allowed.
const (
	RoleOwner   = "owner"   // everything: activation, settings, keys, users
	RoleFinance = "finance" // uploads and sends batches, redelivers callbacks
	RoleViewer  = "viewer"  // reads
)

// rank orders the roles: a page needing finance admits owner too.
var rank = map[string]int{RoleViewer: 1, RoleFinance: 2, RoleOwner: 3}

// Sign-in protection: after maxFailedLogins wrong passwords in a row the
// account is locked for lockFor; sessions last sessionTTL.
const (
	maxFailedLogins = 5
	lockFor         = 15 * time.Minute
	sessionTTL      = 12 * time.Hour
	resetTTL        = 24 * time.Hour
)

var (
	// ErrBadCredentials: no user has the email, or the password is wrong.
	ErrBadCredentials = errors.New("dashboard: wrong email or password")
	// ErrEmailTaken: a user with the email exists.
	ErrEmailTaken = errors.New("dashboard: a user with this email exists")
	// ErrNoSession: the session cookie names no live session.
	ErrNoSession = errors.New("dashboard: no such session")
	// ErrBadResetToken: the reset link is unknown, used or expired.
	ErrBadResetToken = errors.New("dashboard: the reset link is unknown, used or expired")
	// ErrNotFound: no such upload.
	ErrNotFound = errors.New("dashboard: not found")
)

// LockedError: the account is locked after too many failed sign-ins.
type LockedError struct{ Until time.Time }

func (e *LockedError) Error() string {
	return "dashboard: account locked until " + e.Until.UTC().Format(time.RFC3339)
}

// User is a dashboard user.
type User struct {
	ID, MerchantID, MerchantName, Email, Role string
}

// Can reports whether the user's role includes role.
func (u User) Can(role string) bool { return rank[u.Role] >= rank[role] }

// Actor names the user in the settings audit log.
func (u User) Actor() string { return "user:" + u.Email }

// Session is a signed-in user's session.
type Session struct {
	User
	CSRF        string
	Environment string
	ExpiresAt   time.Time
}

// Store keeps the dashboard's users, sessions, reset links, activation
// requests and uploads in Postgres (migration 00018).
type Store struct {
	db *pgxpool.Pool
	// BaseURL is the dashboard's public URL, for reset links.
	BaseURL string
}

// NewStore returns a store on db; baseURL is the dashboard's public URL.
func NewStore(db *pgxpool.Pool, baseURL string) *Store {
	return &Store{db: db, BaseURL: strings.TrimRight(baseURL, "/")}
}

var emailPattern = regexp.MustCompile(`^[^\s@]{1,64}@[^\s@]{1,189}\.[^\s@]{1,63}$`)

// ValidEmail reports whether s looks like an email address.
func ValidEmail(s string) bool {
	return len(s) <= 254 && emailPattern.MatchString(s) && payout.CleanText(s)
}

// NormalizeEmail trims and lower-cases an email (emails are unique ignoring case).
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("dashboard: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

func tokenHash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

var slugStrip = regexp.MustCompile(`[^a-z0-9]+`)

// merchantIDFor makes a merchant id from a business name: its letters and
// digits, dash-separated, plus a random suffix so names may repeat.
func merchantIDFor(business string) string {
	slug := strings.Trim(slugStrip.ReplaceAllString(strings.ToLower(business), "-"), "-")
	if len(slug) > 40 {
		slug = strings.Trim(slug[:40], "-")
	}
	if slug == "" {
		slug = "merchant"
	}
	return slug + "-" + randomToken(3)
}

func isUnique(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// SignUp creates a merchant for the business and its owner, together.
func (s *Store) SignUp(ctx context.Context, business, email, password string) (User, error) {
	hash, err := hashPassword(password)
	if err != nil {
		return User{}, err
	}
	u := User{ID: "usr_" + randomToken(8), MerchantID: merchantIDFor(business), MerchantName: business,
		Email: NormalizeEmail(email), Role: RoleOwner}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if err := merchant.CreateTx(ctx, tx, u.MerchantID, business); err != nil {
			return err
		}
		return insertUser(ctx, tx, u, hash)
	})
	return u, err
}

func insertUser(ctx context.Context, tx pgx.Tx, u User, hash string) error {
	_, err := tx.Exec(ctx, `INSERT INTO dashboard_users (id, merchant_id, email, password_hash, role) VALUES ($1, $2, $3, $4, $5)`,
		u.ID, u.MerchantID, u.Email, hash, u.Role)
	if isUnique(err) {
		return ErrEmailTaken
	}
	if err != nil {
		return fmt.Errorf("add user: %w", err)
	}
	return nil
}

// AddUser adds a user with role to the merchant (an owner's action).
func (s *Store) AddUser(ctx context.Context, merchantID, email, password, role string) (User, error) {
	if _, ok := rank[role]; !ok {
		return User{}, fmt.Errorf("dashboard: unknown role %q", role)
	}
	hash, err := hashPassword(password)
	if err != nil {
		return User{}, err
	}
	u := User{ID: "usr_" + randomToken(8), MerchantID: merchantID, Email: NormalizeEmail(email), Role: role}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error { return insertUser(ctx, tx, u, hash) })
	return u, err
}

// EnsureUser makes the user with email an owner of merchantID with
// password, creating it or resetting its password and lockout (the demo
// user of `disburse dev`, whose password is printed at every start).
func (s *Store) EnsureUser(ctx context.Context, merchantID, email, password string) error {
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, `INSERT INTO dashboard_users (id, merchant_id, email, password_hash, role) VALUES ($1, $2, $3, $4, 'owner')
		ON CONFLICT (lower(email)) DO UPDATE SET password_hash = EXCLUDED.password_hash, failed_logins = 0, locked_until = NULL`,
		"usr_"+randomToken(8), merchantID, NormalizeEmail(email), hash)
	if err != nil {
		return fmt.Errorf("ensure user %s: %w", email, err)
	}
	return nil
}

// Users lists the merchant's users.
func (s *Store) Users(ctx context.Context, merchantID string) ([]User, error) {
	rows, err := s.db.Query(ctx, `SELECT u.id, u.merchant_id, m.name, u.email, u.role FROM dashboard_users u
		JOIN merchants m ON m.id = u.merchant_id WHERE u.merchant_id = $1 ORDER BY u.created_at, u.id`, merchantID)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) {
		var u User
		err := r.Scan(&u.ID, &u.MerchantID, &u.MerchantName, &u.Email, &u.Role)
		return u, err
	})
}

// Authenticate checks an email and password. Wrong passwords are counted;
// the maxFailedLogins-th in a row locks the account for lockFor. A locked
// account is refused with *LockedError even with the right password.
func (s *Store) Authenticate(ctx context.Context, email, password string, now time.Time) (User, error) {
	var u User
	var hash string
	var locked *time.Time
	err := s.db.QueryRow(ctx, `SELECT u.id, u.merchant_id, m.name, u.email, u.role, u.password_hash, u.locked_until
		FROM dashboard_users u JOIN merchants m ON m.id = u.merchant_id WHERE lower(u.email) = $1`, NormalizeEmail(email)).
		Scan(&u.ID, &u.MerchantID, &u.MerchantName, &u.Email, &u.Role, &hash, &locked)
	if errors.Is(err, pgx.ErrNoRows) {
		_, _ = checkPassword(dummyHash, password) // the same time as a wrong password
		return User{}, ErrBadCredentials
	}
	if err != nil {
		return User{}, fmt.Errorf("sign in: %w", err)
	}
	if locked != nil && now.Before(*locked) {
		return User{}, &LockedError{Until: *locked}
	}
	ok, err := checkPassword(hash, password)
	if err != nil {
		return User{}, err
	}
	if !ok {
		var until *time.Time
		err := s.db.QueryRow(ctx, `UPDATE dashboard_users SET failed_logins = failed_logins + 1,
				locked_until = CASE WHEN failed_logins + 1 >= $2 THEN $3::timestamptz END
			WHERE id = $1 RETURNING locked_until`, u.ID, maxFailedLogins, now.Add(lockFor)).Scan(&until)
		if err != nil {
			return User{}, fmt.Errorf("count failed sign-in: %w", err)
		}
		if until != nil {
			return User{}, &LockedError{Until: *until}
		}
		return User{}, ErrBadCredentials
	}
	if _, err := s.db.Exec(ctx, `UPDATE dashboard_users SET failed_logins = 0, locked_until = NULL WHERE id = $1`, u.ID); err != nil {
		return User{}, fmt.Errorf("sign in: %w", err)
	}
	return u, nil
}

// CreateSession signs the user in and returns the cookie's token.
func (s *Store) CreateSession(ctx context.Context, userID string, now time.Time) (string, error) {
	token := randomToken(32)
	_, err := s.db.Exec(ctx, `INSERT INTO dashboard_sessions (token_hash, user_id, csrf_token, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)`, tokenHash(token), userID, randomToken(32), now, now.Add(sessionTTL))
	if err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	// Expired sessions of anyone are swept now and then, here.
	_, _ = s.db.Exec(ctx, `DELETE FROM dashboard_sessions WHERE expires_at < $1`, now.Add(-time.Hour))
	return token, nil
}

// Session reads a live session by its cookie token.
func (s *Store) Session(ctx context.Context, token string, now time.Time) (Session, error) {
	var ss Session
	err := s.db.QueryRow(ctx, `SELECT u.id, u.merchant_id, m.name, u.email, u.role, s.csrf_token, s.environment, s.expires_at
		FROM dashboard_sessions s JOIN dashboard_users u ON u.id = s.user_id JOIN merchants m ON m.id = u.merchant_id
		WHERE s.token_hash = $1 AND s.expires_at > $2`, tokenHash(token), now).
		Scan(&ss.ID, &ss.MerchantID, &ss.MerchantName, &ss.Email, &ss.Role, &ss.CSRF, &ss.Environment, &ss.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("read session: %w", err)
	}
	return ss, nil
}

// SetEnvironment switches the environment the session looks at.
func (s *Store) SetEnvironment(ctx context.Context, token, environment string) error {
	_, err := s.db.Exec(ctx, `UPDATE dashboard_sessions SET environment = $2 WHERE token_hash = $1`, tokenHash(token), environment)
	return err
}

// DeleteSession signs a session out.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	_, err := s.db.Exec(ctx, `DELETE FROM dashboard_sessions WHERE token_hash = $1`, tokenHash(token))
	return err
}

// PasswordResetLink issues a one-time reset link for the user with email
// (the operator API's POST /operator/v1/users/password-reset).
func (s *Store) PasswordResetLink(ctx context.Context, email string) (string, string, time.Time, error) {
	var userID, merchantID string
	err := s.db.QueryRow(ctx, `SELECT id, merchant_id FROM dashboard_users WHERE lower(email) = $1`, NormalizeEmail(email)).
		Scan(&userID, &merchantID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", time.Time{}, api.ErrNoSuchUser
	}
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("password reset: %w", err)
	}
	token := randomToken(32)
	now := time.Now()
	expires := now.Add(resetTTL)
	if _, err := s.db.Exec(ctx, `INSERT INTO dashboard_password_resets (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
		tokenHash(token), userID, now, expires); err != nil {
		return "", "", time.Time{}, fmt.Errorf("password reset: %w", err)
	}
	return merchantID, s.BaseURL + "/reset?token=" + url.QueryEscape(token), expires, nil
}

// ResetPassword sets a new password through a reset link, once. Every
// session of the user ends and the lockout is lifted.
func (s *Store) ResetPassword(ctx context.Context, token, password string, now time.Time) error {
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var userID string
		err := tx.QueryRow(ctx, `UPDATE dashboard_password_resets SET used_at = $2
			WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id`, tokenHash(token), now).Scan(&userID)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrBadResetToken
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE dashboard_users SET password_hash = $2, failed_logins = 0, locked_until = NULL WHERE id = $1`,
			userID, hash); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM dashboard_sessions WHERE user_id = $1`, userID)
		return err
	})
}

// RequestProduction records the merchant's request for production (again
// is a no-op).
func (s *Store) RequestProduction(ctx context.Context, merchantID, email string, now time.Time) error {
	_, err := s.db.Exec(ctx, `INSERT INTO activation_requests (merchant_id, environment, requested_by, requested_at)
		VALUES ($1, 'production', $2, $3) ON CONFLICT DO NOTHING`, merchantID, email, now)
	return err
}

// ProductionRequested is when the merchant asked for production (zero: never).
func (s *Store) ProductionRequested(ctx context.Context, merchantID string) (time.Time, error) {
	var at time.Time
	err := s.db.QueryRow(ctx, `SELECT requested_at FROM activation_requests WHERE merchant_id = $1 AND environment = 'production'`,
		merchantID).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	return at, err
}

// ActivationRequests lists the requests whose environment is not active
// yet, oldest first (the operator API's GET /operator/v1/activation-requests).
func (s *Store) ActivationRequests(ctx context.Context) ([]api.ActivationRequest, error) {
	rows, err := s.db.Query(ctx, `SELECT r.merchant_id, m.name, r.environment, r.requested_by, r.requested_at
		FROM activation_requests r JOIN merchants m ON m.id = r.merchant_id
		WHERE NOT EXISTS (SELECT 1 FROM merchant_environments e WHERE e.merchant_id = r.merchant_id AND e.environment = r.environment)
		ORDER BY r.requested_at, r.merchant_id`)
	if err != nil {
		return nil, fmt.Errorf("list activation requests: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.ActivationRequest, error) {
		var a api.ActivationRequest
		err := r.Scan(&a.MerchantID, &a.MerchantName, &a.Environment, &a.RequestedBy, &a.RequestedAt)
		return a, err
	})
}

// Upload is a CSV kept between its validation and the user's "send".
type Upload struct {
	ID, MerchantID, Environment, UserID, FileName string
	Body                                          []byte
	CreatedAt                                     time.Time
	BatchID                                       string // set once sent
}

// SaveUpload keeps an uploaded file and returns its id. Uploads older than
// a day that were never sent are swept here.
func (s *Store) SaveUpload(ctx context.Context, u Upload) (string, error) {
	id := "upl_" + randomToken(10)
	_, err := s.db.Exec(ctx, `INSERT INTO dashboard_uploads (id, merchant_id, environment, user_id, file_name, body, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, id, u.MerchantID, u.Environment, u.UserID, u.FileName, u.Body, u.CreatedAt)
	if err != nil {
		return "", fmt.Errorf("save upload: %w", err)
	}
	_, _ = s.db.Exec(ctx, `DELETE FROM dashboard_uploads WHERE created_at < $1`, u.CreatedAt.Add(-24*time.Hour))
	return id, nil
}

// Upload reads an upload of the merchant's environment.
func (s *Store) Upload(ctx context.Context, merchantID, environment, id string) (Upload, error) {
	u := Upload{ID: id, MerchantID: merchantID, Environment: environment}
	var batchID *string
	err := s.db.QueryRow(ctx, `SELECT user_id, file_name, body, created_at, batch_id FROM dashboard_uploads
		WHERE id = $1 AND merchant_id = $2 AND environment = $3`, id, merchantID, environment).
		Scan(&u.UserID, &u.FileName, &u.Body, &u.CreatedAt, &batchID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Upload{}, ErrNotFound
	}
	if batchID != nil {
		u.BatchID = *batchID
	}
	return u, err
}

// MarkSent records the batch an upload became.
func (s *Store) MarkSent(ctx context.Context, id, batchID string) error {
	_, err := s.db.Exec(ctx, `UPDATE dashboard_uploads SET batch_id = $2 WHERE id = $1`, id, batchID)
	return err
}
