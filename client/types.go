package client

import "time"

// DisbursementRequest creates one payout (POST /v1/disbursements); it is
// also a batch item.
type DisbursementRequest struct {
	ReferenceID       string            `json:"reference_id"`
	BankCode          string            `json:"bank_code"`
	AccountNumber     string            `json:"account_number"`
	Amount            int64             `json:"amount"`
	Currency          string            `json:"currency,omitempty"`
	Description       string            `json:"description,omitempty"`
	AccountHolderName string            `json:"account_holder_name,omitempty"`
	Metadata          map[string]string `json:"metadata,omitempty"`
}

// Disbursement is one payout.
type Disbursement struct {
	ID                string            `json:"id"`
	ReferenceID       string            `json:"reference_id"`
	BatchID           *string           `json:"batch_id"`
	BankCode          string            `json:"bank_code"`
	AccountNumber     string            `json:"account_number"`
	AccountHolderName string            `json:"account_holder_name,omitempty"`
	Amount            int64             `json:"amount"`
	Currency          string            `json:"currency"`
	Description       string            `json:"description,omitempty"`
	Metadata          map[string]string `json:"metadata,omitempty"`
	Fee               int64             `json:"fee"`
	Status            string            `json:"status"`
	FailureCode       *string           `json:"failure_code"`
	Version           int               `json:"version"`
	CreatedAt         time.Time         `json:"created_at"`
	UpdatedAt         time.Time         `json:"updated_at"`
	CompletedAt       *time.Time        `json:"completed_at"`
	// Hold is what a held single payout waits for (approval, scheduled_at).
	Hold *Hold `json:"hold,omitempty"`
}

// Payout statuses.
const (
	StatusPending    = "PENDING"
	StatusProcessing = "PROCESSING"
	StatusCompleted  = "COMPLETED"
	StatusFailed     = "FAILED"
	StatusReversed   = "REVERSED"
	StatusCancelled  = "CANCELLED"
	// Held before PENDING, nothing debited (maker-checker, scheduled_at).
	StatusAwaitingApproval = "AWAITING_APPROVAL"
	StatusScheduled        = "SCHEDULED"
)

// DisbursementFilter selects payouts for ListDisbursements and the report
// calls; zero fields do not filter.
type DisbursementFilter struct {
	ReferenceID string
	BatchID     string
	Statuses    []string
	BankCode    string
	CreatedFrom time.Time // included
	CreatedTo   time.Time // excluded
	Limit       int       // page size, 1 to 200 (0: the server's default)
}

// BatchRequest creates a batch from JSON items.
type BatchRequest struct {
	ReferenceID string                `json:"reference_id"`
	Mode        string                `json:"mode,omitempty"` // all_or_nothing (default) or partial
	Items       []DisbursementRequest `json:"items"`
	// QuoteID holds the batch to a quote (QuoteBatch); ScheduledAt holds
	// it until then (RFC 3339). Both optional.
	QuoteID     string `json:"quote_id,omitempty"`
	ScheduledAt string `json:"scheduled_at,omitempty"`
}

// RowError is one invalid field of one batch row.
type RowError struct {
	Row     int    `json:"row"`
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// BatchCancel is the answer to CancelBatch.
type BatchCancel struct {
	BatchID      string `json:"batch_id"`
	Cancelled    int    `json:"cancelled"`
	NotCancelled int    `json:"not_cancelled"`
}

// BatchAccepted answers a batch creation.
type BatchAccepted struct {
	ID             string     `json:"id"`
	ReferenceID    string     `json:"reference_id"`
	Mode           string     `json:"mode"`
	Status         string     `json:"status"`
	ItemCount      int        `json:"item_count"`
	TotalAmount    int64      `json:"total_amount"`
	Currency       string     `json:"currency"`
	RejectedCount  int        `json:"rejected_count"`
	Rejected       []RowError `json:"rejected"`
	DuplicateCount int        `json:"duplicate_count"`
	Duplicates     []struct {
		Row            int    `json:"row"`
		ReferenceID    string `json:"reference_id"`
		DisbursementID string `json:"disbursement_id"`
		Status         string `json:"status"`
	} `json:"duplicates"`
	CreatedAt time.Time `json:"created_at"`
}

// Count is the items and money in one status.
type Count struct {
	Count  int   `json:"count"`
	Amount int64 `json:"amount"`
}

// Batch is a batch and its progress.
type Batch struct {
	ID          string           `json:"id"`
	ReferenceID string           `json:"reference_id"`
	Mode        string           `json:"mode"`
	Status      string           `json:"status"`
	ItemCount   int              `json:"item_count"`
	TotalAmount int64            `json:"total_amount"`
	Currency    string           `json:"currency"`
	Counts      map[string]Count `json:"counts"`
	Failures    map[string]int   `json:"failures"`
	CreatedAt   time.Time        `json:"created_at"`
	UpdatedAt   time.Time        `json:"updated_at"`
	CompletedAt *time.Time       `json:"completed_at"`
}

// BatchFilter selects batches for ListBatches.
type BatchFilter struct {
	ReferenceID string
	Statuses    []string // ACCEPTED, PROCESSING, COMPLETED
	CreatedFrom time.Time
	CreatedTo   time.Time
	Limit       int
}

// Balance is the environment's balance.
type Balance struct {
	Environment string `json:"environment"`
	Currency    string `json:"currency"`
	Available   int64  `json:"available"`
	Pending     int64  `json:"pending"`
	Billing     string `json:"billing"`
	Invoice     *struct {
		PeriodStart    time.Time `json:"period_start"`
		Used           int64     `json:"used"`
		Unpaid         int64     `json:"unpaid_invoices"`
		CreditLimit    int64     `json:"credit_limit"`
		LimitRemaining int64     `json:"limit_remaining"`
	} `json:"invoice,omitempty"`
}

// Movement is one line of the balance statement.
type Movement struct {
	ID             string    `json:"id"`
	Type           string    `json:"type"`
	DisbursementID *string   `json:"disbursement_id"`
	Amount         int64     `json:"amount"`
	BalanceAfter   int64     `json:"balance_after"`
	Currency       string    `json:"currency"`
	Memo           string    `json:"memo,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// Period bounds the statement (zero: open).
type Period struct {
	From, To time.Time
	Limit    int
}

// Bank is a supported bank or e-wallet and whether it is up.
type Bank struct {
	Code             string     `json:"code"`
	Name             string     `json:"name"`
	Kind             string     `json:"kind"`
	HostBank         string     `json:"host_bank,omitempty"`
	MinAmount        int64      `json:"min_amount"`
	MaxAmount        int64      `json:"max_amount"`
	AccountDigitsMin int        `json:"account_digits_min"`
	AccountDigitsMax int        `json:"account_digits_max"`
	Available        bool       `json:"available"`
	Breaker          string     `json:"breaker,omitempty"`
	Window           string     `json:"window,omitempty"`
	ClosedUntil      *time.Time `json:"closed_until,omitempty"`
}

// Inquiry is the bank's answer about an account.
type Inquiry struct {
	BankCode          string `json:"bank_code"`
	AccountNumber     string `json:"account_number"`
	AccountHolderName string `json:"account_holder_name"`
	Status            string `json:"status"` // VALID, INVALID, CLOSED, UNKNOWN
}

// Settings are the environment's access settings.
type Settings struct {
	Environment    string   `json:"environment"`
	CallbackURL    string   `json:"callback_url"`
	CallbackSecret string   `json:"callback_secret"`
	IPWhitelist    []string `json:"ip_whitelist"`
	RateLimits     struct {
		CreatePerSecond int `json:"create_per_second"`
		ReadPerSecond   int `json:"read_per_second"`
	} `json:"rate_limits"`
	// CallbackBatchSize: 1 sends one POST per callback; 2 to 100 sends up
	// to that many in one "callbacks.batch" POST.
	CallbackBatchSize int `json:"callback_batch_size"`
	// CallbackConcurrency: POSTs in flight to the callback URL at once (1 to 64).
	CallbackConcurrency int      `json:"callback_concurrency"`
	Warnings            []string `json:"warnings,omitempty"`
}

// SettingsPatch changes settings; nil fields stay as they are.
type SettingsPatch struct {
	CallbackURL         *string  `json:"callback_url,omitempty"`
	IPWhitelist         []string `json:"ip_whitelist,omitempty"`
	CallbackBatchSize   *int     `json:"callback_batch_size,omitempty"`
	CallbackConcurrency *int     `json:"callback_concurrency,omitempty"`
}

// Event is one payout status change of the feed.
type Event struct {
	ID             string    `json:"id"`
	DisbursementID string    `json:"disbursement_id"`
	ReferenceID    string    `json:"reference_id"`
	BatchID        *string   `json:"batch_id"`
	Status         string    `json:"status"`
	FailureCode    *string   `json:"failure_code"`
	Version        int       `json:"version"`
	At             time.Time `json:"at"`
}

// Callback is one webhook and its delivery.
type Callback struct {
	ID               string     `json:"id"`
	Type             string     `json:"type"`
	SubjectID        string     `json:"subject_id"`
	Status           string     `json:"status"`
	AttemptCount     int        `json:"attempt_count"`
	NextAttemptAt    *time.Time `json:"next_attempt_at"`
	RetryUntil       time.Time  `json:"retry_until"`
	CreatedAt        time.Time  `json:"created_at"`
	DeliveredAt      *time.Time `json:"delivered_at"`
	LastResponseCode *int       `json:"last_response_code"`
	LastError        string     `json:"last_error,omitempty"`
}

// ReportRow is one group of the report summary.
type ReportRow struct {
	Day      string `json:"day,omitempty"`
	Bank     string `json:"bank_code,omitempty"`
	Status   string `json:"status"`
	Currency string `json:"currency"`
	Count    int64  `json:"count"`
	Amount   int64  `json:"amount"`
	Fee      int64  `json:"fee"`
}

// ReportQuery is the period, time zone and grouping of a report.
type ReportQuery struct {
	From, To string // YYYY-MM-DD or RFC 3339
	TZ       string // default Asia/Jakarta
	GroupBy  string // day, bank or status (summary only)
	Filter   DisbursementFilter
}
