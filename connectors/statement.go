package connectors

import (
	"errors"
	"time"
)

// EntryKind is what a statement entry records.
type EntryKind string

const (
	// EntryPaid: the bank paid the transfer (debited the service's account
	// and credited the beneficiary).
	EntryPaid EntryKind = "PAID"
	// EntryRejected: the bank refused the transfer; nothing was paid.
	EntryRejected EntryKind = "REJECTED"
	// EntryReturned: a transfer the bank paid came back (the beneficiary
	// bank returned it); the money is back in the service's account.
	EntryReturned EntryKind = "RETURNED"
)

// Valid reports whether k is one of the kinds above.
func (k EntryKind) Valid() bool {
	return k == EntryPaid || k == EntryRejected || k == EntryReturned
}

// StatementEntry is one thing a bank booked, as its statement lists it: a
// transfer paid or rejected, or the later return of a paid one, each its
// own entry.
type StatementEntry struct {
	// Cursor is the entry's position: pass it as StatementQuery.After to
	// read the entries after it.
	Cursor      string    `json:"cursor"`
	BookedAt    time.Time `json:"booked_at"`
	Reference   string    `json:"reference"`
	Kind        EntryKind `json:"kind"`
	Amount      int64     `json:"amount"`
	Currency    string    `json:"currency"`
	FailureCode string    `json:"failure_code,omitempty"`
}

// StatementQuery selects a page of a bank's statement.
type StatementQuery struct {
	// After is the cursor to read after: "" from the first entry.
	After string
	// Limit bounds the entries of the page (0: the bank's default).
	Limit int
	// From and To, when set, keep only entries booked in [From, To). The
	// cursor still moves over the entries left out.
	From, To time.Time
}

// StatementPage is one page of a statement.
type StatementPage struct {
	Entries []StatementEntry
	// Next is the cursor to continue from; the query's After when the page
	// is empty.
	Next string
	// More says the bank has more entries after Next (ask again at once).
	More bool
}

// ErrBadCursor: the bank does not know the statement cursor (malformed, or
// from another statement, e.g. a sandbox bank that restarted). Reading
// again with the same cursor will not help.
var ErrBadCursor = errors.New("connectors: the bank does not know this statement cursor")
