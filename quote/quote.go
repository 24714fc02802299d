// Package quote prices a batch without moving money (issue 14, item 3):
// which rows are valid, which were paid before, totals and fees, counts per
// bank, whether the balance covers it, and when each bank is expected to
// have taken its items given its windows, cut-offs, send rate and breaker.
// A quote is stored with a digest of the batch it priced, so a batch
// created with its quote_id can be held to it (Check).
//
// Data flow: the API parses the body with the batch package (the same
// parser a batch create uses), reads the environment's settings, balance,
// earlier reference_ids and bank health, and calls Build; Store keeps the
// result for Check at create time. Nothing here writes money.
package quote

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"sort"
	"time"

	"github.com/disburse/disburse/batch"
	"github.com/disburse/disburse/connectors"
)

// TTL is how long a quote can be used to create a batch.
const TTL = 24 * time.Hour

// Bank is one bank's (or e-wallet's) share of a batch.
type Bank struct {
	BankCode string `json:"bank_code"`
	Count    int    `json:"count"`
	Amount   int64  `json:"amount"`
	Fee      int64  `json:"fee"`
	// Available: the bank takes transfers now (no window, breaker not open).
	Available   bool       `json:"available"`
	ClosedUntil *time.Time `json:"closed_until"`
	Breaker     string     `json:"breaker"`
	// ExpectedCompletion: when the last of these items is expected to be
	// at the bank, at the bank's send rate, skipping its windows.
	ExpectedCompletion time.Time `json:"expected_completion"`
}

// Balance says whether the environment's money covers the batch now; the
// debit still checks each item when it is made.
type Balance struct {
	Billing   string `json:"billing"`
	Available int64  `json:"available"`
	Covers    bool   `json:"covers"`
	Shortfall int64  `json:"shortfall"`
}

// Quote is the answer to POST /v1/batches/quote.
type Quote struct {
	ID          string `json:"id"`
	ReferenceID string `json:"reference_id"`
	Mode        string `json:"mode"`
	// Rows counted; ValidCount of them valid; InvalidCount invalid, the
	// first 1,000 row errors in InvalidRows (named as in a batch answer).
	Rows         int              `json:"rows"`
	ValidCount   int              `json:"valid_count"`
	InvalidCount int              `json:"rejected_count"` // a batch answer's names
	InvalidRows  []batch.RowError `json:"rejected"`
	// Duplicates are valid items whose reference_id was used before: a
	// batch would not pay them again.
	DuplicateCount int               `json:"duplicate_count"`
	Duplicates     []batch.Duplicate `json:"duplicates"`
	// Acceptable: POST /v1/batches with this body would be accepted (an
	// all_or_nothing batch with an invalid row, or one with no valid item,
	// would not).
	Acceptable bool `json:"acceptable"`
	// ItemCount, TotalAmount, TotalFee, TotalDebit: what an accepted batch
	// would pay and debit (valid items that are not duplicates).
	ItemCount   int    `json:"item_count"`
	TotalAmount int64  `json:"total_amount"`
	TotalFee    int64  `json:"total_fee"`
	TotalDebit  int64  `json:"total_debit"`
	Currency    string `json:"currency"`
	// OverLimitCount: items over the environment's max_per_payout, which
	// the debit will fail with AMOUNT_LIMIT_EXCEEDED.
	OverLimitCount int     `json:"over_limit_count"`
	Banks          []Bank  `json:"banks"`
	Balance        Balance `json:"balance"`
	// ExpectedCompletion: the latest bank's (null when nothing would be paid).
	ExpectedCompletion *time.Time `json:"expected_completion"`
	CreatedAt          time.Time  `json:"created_at"`
	ExpiresAt          time.Time  `json:"expires_at"`

	digest []byte
	fees   Fees
}

// Fees are the environment's fee and per-payout limit a quote priced with.
type Fees struct {
	Flat         int64
	BPS          int64
	MaxPerPayout int64
}

// Of is the fee of one payout of amount.
func (f Fees) Of(amount int64) int64 { return f.Flat + amount*f.BPS/10000 }

// Inputs are what Build needs besides the parsed batch.
type Inputs struct {
	Fees       Fees
	Balance    Balance // Billing and Available
	Duplicates map[string]batch.Duplicate
	Profiles   connectors.Profiles
	Breakers   map[string]string // host bank -> closed, half-open, open
	Now        time.Time
	// Start is when the batch would begin (its scheduled_at); zero: Now.
	Start time.Time
}

// Build prices p.
func Build(p *batch.Parsed, in Inputs) Quote {
	q := Quote{ReferenceID: p.Header.ReferenceID, Mode: p.Header.Mode, Rows: p.Rows, ValidCount: len(p.Items),
		InvalidCount: p.InvalidRows, InvalidRows: p.Errors, Duplicates: []batch.Duplicate{}, Banks: []Bank{},
		Currency: "IDR", CreatedAt: in.Now.UTC(), ExpiresAt: in.Now.Add(TTL).UTC(), digest: Digest(p), fees: in.Fees}
	if q.InvalidRows == nil {
		q.InvalidRows = []batch.RowError{}
	}
	q.Acceptable = len(p.Items) > 0 && (p.InvalidRows == 0 || p.Header.Mode == batch.Partial)
	byBank := map[string]*Bank{}
	for _, it := range p.Items {
		if d, ok := in.Duplicates[it.ReferenceID]; ok {
			d.Row = it.Row
			q.DuplicateCount++
			if len(q.Duplicates) < batch.MaxReportedErrors {
				q.Duplicates = append(q.Duplicates, d)
			}
			continue
		}
		if !q.Acceptable {
			continue
		}
		fee := in.Fees.Of(it.Amount)
		if in.Fees.MaxPerPayout > 0 && it.Amount > in.Fees.MaxPerPayout {
			q.OverLimitCount++
		}
		b := byBank[it.BankCode]
		if b == nil {
			b = &Bank{BankCode: it.BankCode}
			byBank[it.BankCode] = b
		}
		b.Count++
		b.Amount += it.Amount
		b.Fee += fee
		q.ItemCount++
		q.TotalAmount += it.Amount
		q.TotalFee += fee
	}
	q.TotalDebit = q.TotalAmount + q.TotalFee
	q.Balance = in.Balance
	q.Balance.Covers = q.Balance.Available >= q.TotalDebit
	q.Balance.Shortfall = max(q.TotalDebit-q.Balance.Available, 0)

	// E-wallets are paid through their host bank: items of one host share
	// its send rate and windows.
	perHost := map[string]int{}
	for code, b := range byBank {
		perHost[connectors.HostOf(code)] += b.Count
	}
	start := in.Now
	if in.Start.After(start) {
		start = in.Start
	}
	finish := map[string]time.Time{}
	for host, n := range perHost {
		// A breaker open now says nothing of a start hours ahead.
		finish[host] = Estimate(in.Profiles.For(host), n, start, in.Breakers[host] == "open" && start.Equal(in.Now))
	}
	for code, b := range byBank {
		host := connectors.HostOf(code)
		p := in.Profiles.For(host)
		b.Breaker = "closed"
		if st, ok := in.Breakers[host]; ok {
			b.Breaker = st
		}
		if until, closed := p.ClosedUntil(start); closed {
			u := until.UTC()
			b.ClosedUntil = &u
		}
		b.Available = b.ClosedUntil == nil && b.Breaker != "open"
		b.ExpectedCompletion = finish[host].UTC()
		q.Banks = append(q.Banks, *b)
		if q.ExpectedCompletion == nil || b.ExpectedCompletion.After(*q.ExpectedCompletion) {
			t := b.ExpectedCompletion
			q.ExpectedCompletion = &t
		}
	}
	sort.Slice(q.Banks, func(i, j int) bool { return q.Banks[i].BankCode < q.Banks[j].BankCode })
	return q
}

// breakerWait is how long an open breaker is assumed to hold a bank back.
const breakerWait = time.Minute

// Estimate is when a bank with profile p has taken n transfers starting at
// start: at its send rate (calls per second), in steps of a minute, skipping
// every maintenance window and cut-off the profile names. An open breaker
// first costs breakerWait. It assumes the bank's whole rate for these
// items, so it is the earliest time, not a promise.
func Estimate(p connectors.Profile, n int, start time.Time, breakerOpen bool) time.Time {
	t := start
	if breakerOpen {
		t = t.Add(breakerWait)
	}
	rate := p.RateLimit
	if rate <= 0 {
		rate = 1
	}
	perMinute := int(rate * 60)
	if perMinute < 1 {
		perMinute = 1
	}
	// Bounded: at most n/perMinute sending steps plus one jump per window
	// crossed, and windows are daily.
	for n > 0 {
		if until, closed := p.ClosedUntil(t); closed {
			t = until
			continue
		}
		if n <= perMinute {
			return t.Add(time.Duration(float64(n) / rate * float64(time.Second)))
		}
		n -= perMinute
		t = t.Add(time.Minute)
	}
	return t
}

// Digest fingerprints what a batch would pay: its reference_id and mode,
// how many rows are invalid, and each valid item in row order. JSON and CSV
// bodies of the same items have the same digest.
func Digest(p *batch.Parsed) []byte {
	h := sha256.New()
	h.Write([]byte(p.Header.ReferenceID + "\x00" + p.Header.Mode + "\x00"))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(p.InvalidRows))
	h.Write(n[:])
	for _, it := range p.Items {
		binary.BigEndian.PutUint64(n[:], uint64(it.Row))
		h.Write(n[:])
		h.Write(it.Request.Hash())
	}
	return h.Sum(nil)
}

func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "quo_" + hex.EncodeToString(b)
}
