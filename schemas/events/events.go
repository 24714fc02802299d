// Package events defines the payloads that travel on disburse's Kafka topics.
// They are JSON, one payload type per topic, and every field is part of the
// contract between stages: add fields, never change the meaning of one.
//
//	requests  key: merchant id       Request   (api -> ledger)
//	dispatch  key: disbursement id   Dispatch  (ledger -> dispatch)
//	status    key: merchant id       Status    (ledger, dispatch -> callbacks, sink)
package events

import "time"

// Topics names the topics of one deployment; Prefix lets several
// deployments (or tests) share a broker.
type Topics struct {
	Requests string
	Dispatch string
	Status   string
}

// NewTopics returns the topic names under prefix, e.g. "disburse.".
func NewTopics(prefix string) Topics {
	return Topics{
		Requests: prefix + "requests",
		Dispatch: prefix + "dispatch",
		Status:   prefix + "status",
	}
}

// All lists every topic, for creating them.
func (t Topics) All() []string { return []string{t.Requests, t.Dispatch, t.Status} }

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
