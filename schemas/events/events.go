// Package events defines the payloads that travel on disburse's Kafka topics.
// They are JSON, one payload type per topic, and every field is part of the
// contract between stages: add fields, never change the meaning of one.
//
//	requests  key: merchant id       Request   (api -> ledger)
//	dispatch  key: disbursement id   Dispatch  (ledger -> dispatch)
//	dispatch-retry  key: disbursement id   Dispatch with NotBefore  (dispatch -> dispatch: parked payouts)
//	status    key: merchant id       Status          (ledger, dispatch -> callbacks, sink)
//	batches   key: merchant id       BatchCompleted  (ledger, dispatch -> callbacks, sink)
package events

import "time"

// Topics names the topics of one deployment; Prefix lets several
// deployments (or tests) share a broker.
type Topics struct {
	Requests string
	Dispatch string
	// DispatchRetry holds parked payouts: a bank in maintenance, with its
	// breaker open or its lane full. The dispatch stage re-drives each when
	// its NotBefore has passed.
	DispatchRetry string
	Status        string
	Batches       string
}

// NewTopics returns the topic names under prefix, e.g. "disburse.".
func NewTopics(prefix string) Topics {
	return Topics{
		Requests:      prefix + "requests",
		Dispatch:      prefix + "dispatch",
		DispatchRetry: prefix + "dispatch-retry",
		Status:        prefix + "status",
		Batches:       prefix + "batches",
	}
}

// All lists every topic, for creating them.
func (t Topics) All() []string {
	return []string{t.Requests, t.Dispatch, t.DispatchRetry, t.Status, t.Batches}
}

// Request is an accepted payout request, published by the API after the
// PENDING row exists. The ledger stage debits it.
type Request struct {
	DisbursementID string    `json:"disbursement_id"`
	MerchantID     string    `json:"merchant_id"`
	Environment    string    `json:"environment"`
	ReferenceID    string    `json:"reference_id"`
	BatchID        string    `json:"batch_id,omitempty"`
	BankCode       string    `json:"bank_code"`
	Amount         int64     `json:"amount"`
	Currency       string    `json:"currency"`
	AcceptedAt     time.Time `json:"accepted_at"`
}

// Dispatch asks the dispatch stage to send a debited payout to its bank.
// Keyed by disbursement id so that one merchant's payouts spread over every
// partition after the debit.
type Dispatch struct {
	DisbursementID string `json:"disbursement_id"`
	MerchantID     string `json:"merchant_id"`
	Environment    string `json:"environment"`
	BankCode       string `json:"bank_code"`

	// Set on the dispatch-retry topic only: not to be sent before NotBefore;
	// Attempt counts the parkings, Reason is the last one's (maintenance,
	// cutoff, breaker_open, lane_full, not_sent, leased).
	NotBefore time.Time `json:"not_before,omitzero"`
	Attempt   int       `json:"attempt,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	// UnavailableSince is when the payout was first parked because its
	// bank was unavailable (down, breaker open, a window); past the bank
	// profile's UnavailableLimit it fails with BANK_UNAVAILABLE.
	UnavailableSince time.Time `json:"unavailable_since,omitzero"`
}

// Status is one status change of a payout. Version increases with each
// change, so a consumer keeps the highest it has seen.
type Status struct {
	DisbursementID string    `json:"disbursement_id"`
	MerchantID     string    `json:"merchant_id"`
	Environment    string    `json:"environment"`
	ReferenceID    string    `json:"reference_id"`
	BatchID        string    `json:"batch_id,omitempty"`
	BankCode       string    `json:"bank_code"`
	Amount         int64     `json:"amount"`
	Fee            int64     `json:"fee"`
	Currency       string    `json:"currency"`
	Status         string    `json:"status"`
	FailureCode    string    `json:"failure_code,omitempty"`
	Version        int       `json:"version"`
	At             time.Time `json:"at"`
	// CreatedAt is when the payout was accepted (zero in events published
	// before the field existed); reports group payouts by it.
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// BatchCompleted announces that every item of a batch reached a terminal
// status. It is published once per batch (duplicates are harmless: the
// callback stage derives the callback id from the batch id). Counts maps an
// item status (COMPLETED, FAILED, ...) to the items and money in it.
type BatchCompleted struct {
	BatchID     string                `json:"batch_id"`
	MerchantID  string                `json:"merchant_id"`
	Environment string                `json:"environment"`
	ReferenceID string                `json:"reference_id"`
	Status      string                `json:"status"` // COMPLETED
	TotalCount  int                   `json:"total_count"`
	TotalAmount int64                 `json:"total_amount"`
	Currency    string                `json:"currency"`
	Counts      map[string]BatchTotal `json:"counts"`
	CompletedAt time.Time             `json:"completed_at"`
}

// BatchTotal is the number and sum of a batch's items in one status.
type BatchTotal struct {
	Count  int   `json:"count"`
	Amount int64 `json:"amount"`
}
