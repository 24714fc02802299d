package client

import (
	"context"
	"iter"
	"net/url"
	"time"
)

// The calls of issue 14: scoped keys, quotes, velocity limits and the kill
// switch, maker-checker, scheduled payouts and bulk account inquiries.

// Key is a secret key as the key list shows it (never the key itself).
type Key struct {
	ID          string     `json:"id"`
	Environment string     `json:"environment"`
	Hint        string     `json:"hint"`
	Label       string     `json:"label"`
	Full        bool       `json:"full"`
	Scopes      []string   `json:"scopes"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
}

// NewKey is a key just issued: SecretKey is shown only here.
type NewKey struct {
	Key
	SecretKey string `json:"secret_key"`
}

// Scopes of a restricted key.
const (
	ScopePayoutsCreate  = "payouts:create"
	ScopePayoutsRead    = "payouts:read"
	ScopeBatchesApprove = "batches:approve"
	ScopeSettings       = "settings"
	ScopeReports        = "reports"
)

// CreateKey issues a restricted key with a label and scopes (full key only).
func (c *Client) CreateKey(ctx context.Context, label string, scopes ...string) (NewKey, error) {
	var k NewKey
	err := c.do(ctx, "POST", "/v1/keys", nil, map[string]any{"label": label, "scopes": scopes}, &k, false)
	return k, err
}

// Keys lists the environment's keys (full key only).
func (c *Client) Keys(ctx context.Context) ([]Key, error) {
	var p page[Key]
	err := c.do(ctx, "GET", "/v1/keys", nil, nil, &p, false)
	return p.Data, err
}

// RevokeKey revokes a restricted key at once (full key only).
func (c *Client) RevokeKey(ctx context.Context, id string) (Key, error) {
	var k Key
	err := c.do(ctx, "POST", "/v1/keys/"+url.PathEscape(id)+"/revoke", nil, nil, &k, false)
	return k, err
}

// QuoteBank is one bank's share of a quoted batch.
type QuoteBank struct {
	BankCode           string     `json:"bank_code"`
	Count              int        `json:"count"`
	Amount             int64      `json:"amount"`
	Fee                int64      `json:"fee"`
	Available          bool       `json:"available"`
	ClosedUntil        *time.Time `json:"closed_until"`
	Breaker            string     `json:"breaker"`
	ExpectedCompletion time.Time  `json:"expected_completion"`
}

// Quote prices a batch without moving money.
type Quote struct {
	ID             string      `json:"id"`
	ReferenceID    string      `json:"reference_id"`
	Mode           string      `json:"mode"`
	Rows           int         `json:"rows"`
	ValidCount     int         `json:"valid_count"`
	RejectedCount  int         `json:"rejected_count"`
	Rejected       []RowError  `json:"rejected"`
	DuplicateCount int         `json:"duplicate_count"`
	Acceptable     bool        `json:"acceptable"`
	ItemCount      int         `json:"item_count"`
	TotalAmount    int64       `json:"total_amount"`
	TotalFee       int64       `json:"total_fee"`
	TotalDebit     int64       `json:"total_debit"`
	Currency       string      `json:"currency"`
	OverLimitCount int         `json:"over_limit_count"`
	Banks          []QuoteBank `json:"banks"`
	Balance        struct {
		Billing   string `json:"billing"`
		Available int64  `json:"available"`
		Covers    bool   `json:"covers"`
		Shortfall int64  `json:"shortfall"`
	} `json:"balance"`
	ExpectedCompletion *time.Time `json:"expected_completion"`
	CreatedAt          time.Time  `json:"created_at"`
	ExpiresAt          time.Time  `json:"expires_at"`
}

// QuoteBatch prices a batch (the body CreateBatch takes); create it with
// the quote's ID in BatchRequest.QuoteID to be held to it.
func (c *Client) QuoteBatch(ctx context.Context, req BatchRequest) (Quote, error) {
	var q Quote
	err := c.do(ctx, "POST", "/v1/batches/quote", nil, req, &q, false)
	return q, err
}

// VelocityLimits are maxima per rolling hour and 24 hours; 0 is none.
type VelocityLimits struct {
	MaxAmountPerHour int64 `json:"max_amount_per_hour"`
	MaxCountPerHour  int64 `json:"max_count_per_hour"`
	MaxAmountPerDay  int64 `json:"max_amount_per_day"`
	MaxCountPerDay   int64 `json:"max_count_per_day"`
}

// Controls are the environment's velocity limits, usage and kill switch.
type Controls struct {
	Paused         bool           `json:"paused"`
	MerchantPaused bool           `json:"merchant_paused"`
	OperatorPaused bool           `json:"operator_paused"`
	PausedAt       *time.Time     `json:"paused_at"`
	PauseReason    string         `json:"pause_reason"`
	Limits         VelocityLimits `json:"limits"`
	Ceiling        VelocityLimits `json:"ceiling"`
	Effective      VelocityLimits `json:"effective"`
	Usage          struct {
		HourCount  int64 `json:"hour_count"`
		HourAmount int64 `json:"hour_amount"`
		DayCount   int64 `json:"day_count"`
		DayAmount  int64 `json:"day_amount"`
	} `json:"usage"`
}

// Controls reads the environment's controls.
func (c *Client) Controls(ctx context.Context) (Controls, error) {
	var out Controls
	err := c.do(ctx, "GET", "/v1/controls", nil, nil, &out, false)
	return out, err
}

// SetVelocityLimits sets the environment's velocity limits.
func (c *Client) SetVelocityLimits(ctx context.Context, l VelocityLimits) (Controls, error) {
	var out Controls
	err := c.do(ctx, "PUT", "/v1/controls/velocity", nil, l, &out, false)
	return out, err
}

// PausePayouts stops every new debit of the environment at once.
func (c *Client) PausePayouts(ctx context.Context, reason string) (Controls, error) {
	var out Controls
	err := c.do(ctx, "POST", "/v1/controls/pause", nil, map[string]string{"reason": reason}, &out, false)
	return out, err
}

// ResumePayouts lifts the merchant's pause and queues the held payouts.
func (c *Client) ResumePayouts(ctx context.Context) (Controls, error) {
	var out Controls
	err := c.do(ctx, "POST", "/v1/controls/resume", nil, nil, &out, false)
	return out, err
}

// Hold is what a held payout or batch waits for.
type Hold struct {
	ID             string     `json:"id"`
	Kind           string     `json:"kind"`
	ItemCount      int        `json:"item_count"`
	TotalAmount    int64      `json:"total_amount"`
	ApprovalStatus string     `json:"approval_status"`
	CreatedBy      string     `json:"created_by"`
	DecidedBy      *string    `json:"decided_by"`
	DecidedAt      *time.Time `json:"decided_at"`
	DecisionNote   string     `json:"decision_note"`
	ExpiresAt      *time.Time `json:"expires_at"`
	ScheduledAt    *time.Time `json:"scheduled_at"`
	ReleasedAt     *time.Time `json:"released_at"`
	CreatedAt      time.Time  `json:"created_at"`
}

// ScheduleDisbursement creates one payout held until at (at most 30 days
// ahead): SCHEDULED, debited and sent then.
func (c *Client) ScheduleDisbursement(ctx context.Context, req DisbursementRequest, at time.Time, opts ...CallOption) (Disbursement, error) {
	body := struct {
		DisbursementRequest
		ScheduledAt string `json:"scheduled_at"`
	}{req, at.UTC().Format(time.RFC3339)}
	var d Disbursement
	err := c.do(ctx, "POST", "/v1/disbursements", nil, body, &d, true, opts...)
	return d, err
}

func (c *Client) decide(ctx context.Context, path, note string) (Hold, error) {
	var h Hold
	err := c.do(ctx, "POST", path, nil, map[string]string{"note": note}, &h, false)
	return h, err
}

// ApproveDisbursement approves a payout awaiting approval (batches:approve,
// not the key that created it).
func (c *Client) ApproveDisbursement(ctx context.Context, id, note string) (Hold, error) {
	return c.decide(ctx, "/v1/disbursements/"+url.PathEscape(id)+"/approve", note)
}

// RejectDisbursement rejects a payout awaiting approval.
func (c *Client) RejectDisbursement(ctx context.Context, id, note string) (Hold, error) {
	return c.decide(ctx, "/v1/disbursements/"+url.PathEscape(id)+"/reject", note)
}

// ApproveBatch approves a batch awaiting approval.
func (c *Client) ApproveBatch(ctx context.Context, id, note string) (Hold, error) {
	return c.decide(ctx, "/v1/batches/"+url.PathEscape(id)+"/approve", note)
}

// RejectBatch rejects a batch awaiting approval.
func (c *Client) RejectBatch(ctx context.Context, id, note string) (Hold, error) {
	return c.decide(ctx, "/v1/batches/"+url.PathEscape(id)+"/reject", note)
}

// Approvals iterates over the approval queue of a status ("" for what
// awaits a decision), newest first.
func (c *Client) Approvals(ctx context.Context, status string) iter.Seq2[Hold, error] {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	return pages[Hold](ctx, c, "/v1/approvals", q, "cursor")
}

// ApprovalPolicy is the environment's maker-checker policy.
type ApprovalPolicy struct {
	PayoutAmount        int64 `json:"payout_amount"`
	BatchAmount         int64 `json:"batch_amount"`
	BatchItems          int   `json:"batch_items"`
	ExpiresAfterSeconds int   `json:"expires_after_seconds"`
}

// ApprovalPolicy reads the environment's maker-checker policy.
func (c *Client) ApprovalPolicy(ctx context.Context) (ApprovalPolicy, error) {
	var p ApprovalPolicy
	err := c.do(ctx, "GET", "/v1/approvals/policy", nil, nil, &p, false)
	return p, err
}

// SetApprovalPolicy sets the environment's maker-checker policy.
func (c *Client) SetApprovalPolicy(ctx context.Context, p ApprovalPolicy) (ApprovalPolicy, error) {
	var out ApprovalPolicy
	err := c.do(ctx, "PUT", "/v1/approvals/policy", nil, p, &out, false)
	return out, err
}

// InquiryAccount is one account of a bulk inquiry.
type InquiryAccount struct {
	BankCode      string `json:"bank_code"`
	AccountNumber string `json:"account_number"`
}

// InquiryJob is a bulk account inquiry and its answers so far.
type InquiryJob struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	ItemCount   int        `json:"item_count"`
	Answered    int        `json:"answered"`
	CreatedAt   time.Time  `json:"created_at"`
	CompletedAt *time.Time `json:"completed_at"`
	Results     []struct {
		Row               int        `json:"row"`
		BankCode          string     `json:"bank_code"`
		AccountNumber     string     `json:"account_number"`
		Status            *string    `json:"status"`
		AccountHolderName string     `json:"account_holder_name"`
		FromCache         bool       `json:"from_cache"`
		AnsweredAt        *time.Time `json:"answered_at"`
	} `json:"results"`
}

// CreateAccountInquiries asks about up to 1,000 accounts; the answers come
// by GetAccountInquiries or the account_inquiry.completed callback.
func (c *Client) CreateAccountInquiries(ctx context.Context, accounts []InquiryAccount) (InquiryJob, error) {
	var j InquiryJob
	err := c.do(ctx, "POST", "/v1/account-inquiries", nil, map[string]any{"items": accounts}, &j, false)
	return j, err
}

// GetAccountInquiries reads a bulk inquiry.
func (c *Client) GetAccountInquiries(ctx context.Context, id string) (InquiryJob, error) {
	var j InquiryJob
	err := c.do(ctx, "GET", "/v1/account-inquiries/"+url.PathEscape(id), nil, nil, &j, false)
	return j, err
}
