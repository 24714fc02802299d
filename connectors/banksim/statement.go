package banksim

import (
	"container/heap"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/disburse/disburse/connectors"
)

// Statement page sizes.
const (
	DefaultStatementLimit = 500
	MaxStatementLimit     = 5000
)

// CodeBadCursor is the error code of a statement cursor the bank never
// handed out.
const CodeBadCursor = "BAD_CURSOR"

// booking is one statement entry as the bank keeps it.
type booking struct {
	at        time.Time
	reference string
	kind      connectors.EntryKind
	amount    int64
	currency  string
	failure   string
}

// scheduled is a booking that happens later: a PROCESSING transfer's
// payment, a 3333 transfer's return.
type scheduled struct {
	bank string
	b    booking
	seq  uint64 // ties in time keep the order they were scheduled in
}

type schedule []scheduled

func (h schedule) Len() int { return len(h) }
func (h schedule) Less(i, j int) bool {
	if !h[i].b.at.Equal(h[j].b.at) {
		return h[i].b.at.Before(h[j].b.at)
	}
	return h[i].seq < h[j].seq
}
func (h schedule) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *schedule) Push(x any)   { *h = append(*h, x.(scheduled)) }
func (h *schedule) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// statements are every bank's booked entries, in booking order, and the
// bookings still to come. The order is the booking time's: a due booking is
// booked (with its own time) before anything that happens after it, so a
// reader never finds an entry appear before one it has already read.
type statements struct {
	epoch   string // tells this server's cursors from a restarted one's
	byBank  map[string][]booking
	pending schedule
	seq     uint64
}

func newStatements() statements {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return statements{epoch: hex.EncodeToString(b), byBank: map[string][]booking{}}
}

// book appends a booking now. Callers hold s.mu.
func (s *Server) book(bank string, b booking) int {
	s.advance(b.at)
	s.stmt.byBank[bank] = append(s.stmt.byBank[bank], b)
	return len(s.stmt.byBank[bank])
}

// bookLater schedules a booking for b.at. Callers hold s.mu.
func (s *Server) bookLater(bank string, b booking) {
	s.stmt.seq++
	heap.Push(&s.stmt.pending, scheduled{bank: bank, b: b, seq: s.stmt.seq})
}

// advance books every scheduled booking due at now. Callers hold s.mu.
func (s *Server) advance(now time.Time) {
	for len(s.stmt.pending) > 0 && !s.stmt.pending[0].b.at.After(now) {
		x := heap.Pop(&s.stmt.pending).(scheduled)
		s.stmt.byBank[x.bank] = append(s.stmt.byBank[x.bank], x.b)
	}
}

func (s *Server) cursor(pos int) string {
	return s.stmt.epoch + "-" + strconv.Itoa(pos)
}

// parseCursor reads a cursor into the number of entries before it. Callers
// hold s.mu.
func (s *Server) parseCursor(bank, c string) (int, error) {
	if c == "" {
		return 0, nil
	}
	epoch, num, ok := strings.Cut(c, "-")
	if !ok || epoch != s.stmt.epoch {
		return 0, fmt.Errorf("cursor %q is not one of this statement's", c)
	}
	pos, err := strconv.Atoi(num)
	if err != nil || pos < 0 || pos > len(s.stmt.byBank[bank]) {
		return 0, fmt.Errorf("cursor %q is past the end of %s's statement", c, bank)
	}
	return pos, nil
}

func (s *Server) entry(pos int, b booking) connectors.StatementEntry {
	return connectors.StatementEntry{
		Cursor:      s.cursor(pos),
		BookedAt:    b.at.UTC(),
		Reference:   b.reference,
		Kind:        b.kind,
		Amount:      b.amount,
		Currency:    b.currency,
		FailureCode: b.failure,
	}
}

// Statement reads bank's statement as GET /banks/{bank}/statement does,
// without its gate and latency. Errors wrap connectors.ErrBadCursor or
// connectors.ErrUnknownBank.
func (s *Server) Statement(bank string, q connectors.StatementQuery) (connectors.StatementPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.banks[bank]; !ok {
		return connectors.StatementPage{}, fmt.Errorf("banksim: %w: %q", connectors.ErrUnknownBank, bank)
	}
	pos, err := s.parseCursor(bank, q.After)
	if err != nil {
		return connectors.StatementPage{}, fmt.Errorf("banksim: %w: %s", connectors.ErrBadCursor, err)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultStatementLimit
	}
	s.advance(s.now())
	all := s.stmt.byBank[bank]
	if !q.From.IsZero() {
		// Bookings are in time order: skip to the first at or after From.
		pos = max(pos, sort.Search(len(all), func(i int) bool { return !all[i].at.Before(q.From) }))
	}
	page := connectors.StatementPage{Entries: []connectors.StatementEntry{}, Next: q.After}
	for ; pos < len(all) && len(page.Entries) < limit; pos++ {
		if !q.To.IsZero() && !all[pos].at.Before(q.To) {
			// Nothing later is in range: the page ends here, and so do
			// the entries in range.
			return page, nil
		}
		page.Entries = append(page.Entries, s.entry(pos+1, all[pos]))
		page.Next = s.cursor(pos + 1)
	}
	page.More = pos < len(all) && (q.To.IsZero() || all[pos].at.Before(q.To))
	return page, nil
}

// Inject books an entry the bank's transfers do not account for, for tests
// of reconciliation: a transfer the bank "paid" that disburse never sent,
// a second payment or a different amount for a reference it did send, a
// return of it. The entry is booked now; the bank's transfers are not
// changed. Errors name the bad field, or wrap connectors.ErrUnknownBank.
func (s *Server) Inject(bank string, e connectors.StatementEntry) (connectors.StatementEntry, error) {
	switch {
	case e.Reference == "" || len(e.Reference) > MaxReferenceLen:
		return e, fmt.Errorf("reference must have 1 to %d bytes", MaxReferenceLen)
	case !e.Kind.Valid():
		return e, fmt.Errorf("kind %q is not PAID, REJECTED or RETURNED", e.Kind)
	case e.Amount <= 0:
		return e, fmt.Errorf("amount must be positive, got %d", e.Amount)
	}
	if e.Currency == "" {
		e.Currency = "IDR"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.banks[bank]; !ok {
		return e, fmt.Errorf("banksim: %w: %q", connectors.ErrUnknownBank, bank)
	}
	b := booking{at: s.now(), reference: e.Reference, kind: e.Kind, amount: e.Amount, currency: e.Currency, failure: e.FailureCode}
	pos := s.book(bank, b)
	s.log.Info("banksim: statement entry injected", "bank", bank, "reference", e.Reference, "kind", e.Kind, "amount", e.Amount)
	return s.entry(pos, b), nil
}

func (s *Server) handleStatement(w http.ResponseWriter, r *http.Request) {
	bank, cfg, ok := s.admit(w, r)
	if !ok {
		return
	}
	qs := r.URL.Query()
	q := connectors.StatementQuery{After: qs.Get("after"), Limit: DefaultStatementLimit}
	if v := qs.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxStatementLimit {
			writeError(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("limit must be 1 to %d", MaxStatementLimit))
			return
		}
		q.Limit = n
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if v := qs.Get(f.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				writeError(w, http.StatusBadRequest, CodeBadRequest, f.name+" must be an RFC 3339 time")
				return
			}
			*f.dst = t
		}
	}
	sleep(r.Context(), s.latency(cfg.Latency))
	page, err := s.Statement(bank, q)
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeBadCursor, strings.TrimPrefix(err.Error(), "banksim: "))
		return
	}
	writeJSON(w, http.StatusOK, statementResponse{Entries: page.Entries, Next: page.Next, HasMore: page.More})
}

type statementResponse struct {
	Entries []connectors.StatementEntry `json:"entries"`
	Next    string                      `json:"next"`
	HasMore bool                        `json:"has_more"`
}

type injectRequest struct {
	Reference   string               `json:"reference"`
	Kind        connectors.EntryKind `json:"kind"`
	Amount      int64                `json:"amount"`
	Currency    string               `json:"currency"`
	FailureCode string               `json:"failure_code"`
}

func (s *Server) handleInject(w http.ResponseWriter, r *http.Request) {
	bank := r.PathValue("bank")
	s.mu.Lock()
	_, ok := s.banks[bank]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, CodeUnknownBank, "unknown bank")
		return
	}
	var req injectRequest
	if !decode(w, r, &req, true) {
		return
	}
	e, err := s.Inject(bank, connectors.StatementEntry{Reference: req.Reference, Kind: req.Kind, Amount: req.Amount, Currency: req.Currency, FailureCode: req.FailureCode})
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, e)
}
