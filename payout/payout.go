// Package payout holds a disbursement: its fields and statuses, the
// validation of a merchant's request, the derivation of its id, and the
// Postgres store that creates and reads it. Money moves (debit, settle,
// reversal) are the ledger package's; this package never changes a balance.
package payout

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
	"time"
)

// Status is where a payout is in its life.
type Status string

const (
	Pending    Status = "PENDING"    // accepted, not yet debited
	Processing Status = "PROCESSING" // debited, at the bank
	Completed  Status = "COMPLETED"  // paid
	Failed     Status = "FAILED"     // not paid; any debit returned
	Reversed   Status = "REVERSED"   // paid, then returned by the bank
	Cancelled  Status = "CANCELLED"  // cancelled while PENDING
	// Held before PENDING, nothing debited (issue 14): waiting for a
	// checker's approval, or for scheduled_at.
	AwaitingApproval Status = "AWAITING_APPROVAL"
	Scheduled        Status = "SCHEDULED"
)

// Terminal reports whether no further change but a bank return can happen.
func (s Status) Terminal() bool {
	return s == Completed || s == Failed || s == Reversed || s == Cancelled
}

// Failure codes, as API.md lists them.
const (
	InsufficientBalance = "INSUFFICIENT_BALANCE"
	InvalidAccount      = "INVALID_ACCOUNT"
	AccountClosed       = "ACCOUNT_CLOSED"
	NameMismatch        = "NAME_MISMATCH"
	BankRejected        = "BANK_REJECTED"
	BankUnavailable     = "BANK_UNAVAILABLE"
	AmountLimitExceeded = "AMOUNT_LIMIT_EXCEEDED"
	MerchantSuspended   = "MERCHANT_SUSPENDED"
	// CreditLimitExceeded: an invoice-billed merchant's credit is used up.
	CreditLimitExceeded = "CREDIT_LIMIT_EXCEEDED"
)

// Environments.
const (
	Sandbox    = "sandbox"
	Production = "production"
)

// Disbursement is one payout as stored and as shown to the merchant.
type Disbursement struct {
	ID                string            `json:"id"`
	MerchantID        string            `json:"-"`
	Environment       string            `json:"-"`
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
	Status            Status            `json:"status"`
	FailureCode       *string           `json:"failure_code"`
	Version           int               `json:"version"`
	CreatedAt         time.Time         `json:"created_at"`
	UpdatedAt         time.Time         `json:"updated_at"`
	CompletedAt       *time.Time        `json:"completed_at"`
	// RequestID is the X-Request-Id of the API call that created the
	// payout ("" when none), for the logs of every stage; not part of the
	// merchant's view.
	RequestID string `json:"-"`
}

// ID derives the disbursement id from (merchant, environment, idempotency
// key), so a repeated request maps to the same payout everywhere, the bank
// included.
func ID(merchantID, environment, idempotencyKey string) string {
	h := sha256.New()
	h.Write([]byte(merchantID))
	h.Write([]byte{0})
	h.Write([]byte(environment))
	h.Write([]byte{0})
	h.Write([]byte(idempotencyKey))
	sum := h.Sum(nil)
	return "dsb_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20]))
}
