package banksim

import (
	"slices"
	"strings"
	"time"

	"github.com/disburse/disburse/connectors"
)

// transfer is one reference in the bank's ledger.
type transfer struct {
	reference string
	bank      string // the bank it was received at
	wallet    string // the e-wallet, when the account is a virtual account
	account   string
	amount    int64
	currency  string

	received int  // receipts of this reference, the first included
	conflict bool // a later receipt differed in bank, account or amount

	failure    string    // failure code; the transfer is FAILED when set
	completeAt time.Time // PROCESSING before this, COMPLETED from it
	returnAt   time.Time // RETURNED from this, when set
	hang       bool      // the first response hangs (...2222)
}

func (t *transfer) status(now time.Time) connectors.TransferStatus {
	switch {
	case t.failure != "":
		return connectors.StatusFailed
	case now.Before(t.completeAt):
		return connectors.StatusProcessing
	case !t.returnAt.IsZero() && !now.Before(t.returnAt):
		return connectors.StatusReturned
	}
	return connectors.StatusCompleted
}

func (t *transfer) result(now time.Time) transferResponse {
	return transferResponse{Reference: t.reference, Status: t.status(now), FailureCode: t.failure}
}

// Ledger is the bank's account of what it was sent.
type Ledger struct {
	Transfers  int                   `json:"transfers"` // distinct references
	Receipts   int                   `json:"receipts"`  // transfer requests recorded, duplicates included
	Duplicates []Duplicate           `json:"duplicates"`
	Conflicts  []string              `json:"conflicts"` // references resent with a different bank, account or amount
	ByBank     map[string]BankLedger `json:"by_bank"`
}

// Duplicate is a reference received more than once; Count is every receipt.
type Duplicate struct {
	Reference string `json:"reference"`
	Count     int    `json:"count"`
}

// BankLedger is one bank's transfers by their current status.
type BankLedger struct {
	Transfers  int   `json:"transfers"`
	Receipts   int   `json:"receipts"`
	Completed  int   `json:"completed"`
	Failed     int   `json:"failed"`
	Processing int   `json:"processing"`
	Returned   int   `json:"returned"`
	AmountPaid int64 `json:"amount_paid"` // sum of COMPLETED amounts
}

// TransferRecord is what the ledger knows about one reference.
type TransferRecord struct {
	Reference   string                    `json:"reference"`
	Received    int                       `json:"received"`
	Bank        string                    `json:"bank,omitempty"`
	Status      connectors.TransferStatus `json:"status,omitempty"`
	FailureCode string                    `json:"failure_code,omitempty"`
	Conflict    bool                      `json:"conflict,omitempty"`
}

// Received says how many times the bank was sent reference: 0 when never.
func (s *Server) Received(reference string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.ledger[reference]; t != nil {
		return t.received
	}
	return 0
}

// Duplicates maps every reference received more than once to the number of
// times it was received.
func (s *Server) Duplicates() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := map[string]int{}
	for ref, t := range s.ledger {
		if t.received > 1 {
			d[ref] = t.received
		}
	}
	return d
}

// Record is the ledger entry of reference; Received is 0 when the bank never
// got it.
func (s *Server) Record(reference string) TransferRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.ledger[reference]
	if t == nil {
		return TransferRecord{Reference: reference}
	}
	return TransferRecord{
		Reference:   reference,
		Received:    t.received,
		Bank:        t.bank,
		Status:      t.status(s.now()),
		FailureCode: t.failure,
		Conflict:    t.conflict,
	}
}

// Ledger summarizes every transfer the server has received.
func (s *Server) Ledger() Ledger {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	l := Ledger{Duplicates: []Duplicate{}, Conflicts: []string{}, ByBank: map[string]BankLedger{}}
	for code := range s.banks {
		l.ByBank[code] = BankLedger{}
	}
	for ref, t := range s.ledger {
		l.Transfers++
		l.Receipts += t.received
		if t.received > 1 {
			l.Duplicates = append(l.Duplicates, Duplicate{Reference: ref, Count: t.received})
		}
		if t.conflict {
			l.Conflicts = append(l.Conflicts, ref)
		}
		b := l.ByBank[t.bank]
		b.Transfers++
		b.Receipts += t.received
		switch t.status(now) {
		case connectors.StatusCompleted:
			b.Completed++
			b.AmountPaid += t.amount
		case connectors.StatusFailed:
			b.Failed++
		case connectors.StatusProcessing:
			b.Processing++
		case connectors.StatusReturned:
			b.Returned++
		}
		l.ByBank[t.bank] = b
	}
	slices.SortFunc(l.Duplicates, func(a, b Duplicate) int { return strings.Compare(a.Reference, b.Reference) })
	slices.Sort(l.Conflicts)
	return l
}
