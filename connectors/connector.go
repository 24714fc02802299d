// Package connectors holds the bank connector contract that the dispatch
// stage sends payouts through, the HTTP implementation that talks to banks
// (the sandbox banks in development and tests), and the sandbox bank server
// itself in the banksim sub-package.
//
// The disbursement id is the transfer reference everywhere: a bank that
// receives the same reference twice pays it once, and a payout whose outcome
// is unknown is resolved by asking the bank for the status of its reference,
// never by sending it again.
package connectors

import (
	"context"
	"errors"
)

// TransferStatus is what a bank says about one transfer reference.
type TransferStatus string

const (
	// StatusCompleted means the bank paid the beneficiary.
	StatusCompleted TransferStatus = "COMPLETED"
	// StatusFailed means the bank refused the transfer; nothing was paid.
	StatusFailed TransferStatus = "FAILED"
	// StatusProcessing means the bank holds the transfer and has not decided yet.
	StatusProcessing TransferStatus = "PROCESSING"
	// StatusReturned means the bank paid and the beneficiary bank sent it back.
	StatusReturned TransferStatus = "RETURNED"
)

// TransferRequest asks a bank to pay one disbursement.
type TransferRequest struct {
	Reference         string // the disbursement id; the bank dedups on it
	BankCode          string
	AccountNumber     string
	AccountHolderName string
	Amount            int64 // minor units
	Currency          string
}

// Result is the bank's answer about one reference.
type Result struct {
	Reference   string
	Status      TransferStatus
	FailureCode string // set when Status is StatusFailed: INVALID_ACCOUNT, BANK_REJECTED, ...
}

// Inquiry is the bank's answer to an account inquiry.
type Inquiry struct {
	BankCode          string
	AccountNumber     string
	AccountHolderName string
	Status            string // VALID, INVALID, CLOSED, UNKNOWN
}

// Connector is one bank (or bank family) as the dispatch stage sees it.
type Connector interface {
	Inquire(ctx context.Context, bankCode, accountNumber string) (Inquiry, error)
	// Transfer sends the payout. An error wrapping ErrNotSent means the bank
	// certainly did not receive it and it may be sent again; any other error
	// means the outcome is unknown and must be resolved with Status.
	Transfer(ctx context.Context, req TransferRequest) (Result, error)
	// Status asks the bank about a reference; ErrUnknownReference when the
	// bank has never received it.
	Status(ctx context.Context, bankCode, reference string) (Result, error)
	// Statement reads a page of the bank's statement: every transfer it
	// paid or rejected and every later return, in the bank's booking order.
	// An error wrapping ErrBadCursor when the bank does not know q.After.
	// For an e-wallet code, the host bank's statement.
	Statement(ctx context.Context, bankCode string, q StatementQuery) (StatementPage, error)
}

var (
	// ErrNotSent: the request never reached the bank (connection refused,
	// rate limited with 429, bank in maintenance). Safe to retry.
	ErrNotSent = errors.New("connectors: transfer not sent")
	// ErrUnknownReference: the bank has no transfer with this reference.
	ErrUnknownReference = errors.New("connectors: bank has no such reference")
)
