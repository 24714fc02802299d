package banksim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/disburse/disburse/connectors"
)

// Error codes in the "code" field of an error body.
const (
	CodeBadRequest       = "BAD_REQUEST"
	CodeUnknownBank      = "UNKNOWN_BANK"
	CodeUnknownReference = "UNKNOWN_REFERENCE"
	CodeRateLimited      = "RATE_LIMITED"
	CodeInternal         = "INTERNAL_ERROR"
	CodeBankDown         = "BANK_DOWN"
	CodeNotFound         = "NOT_FOUND"
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"
)

// MaxReferenceLen is the longest reference the bank accepts, in bytes.
const MaxReferenceLen = 128

const maxRequestBody = 64 << 10

// Server is the sandbox bank. It is safe for concurrent use.
type Server struct {
	hang, completeDelay, returnDelay time.Duration
	now                              func() time.Time
	log                              *slog.Logger
	mux                              *http.ServeMux

	mu     sync.Mutex
	rng    *rand.Rand
	banks  map[string]*bankState // every connectors bank of Kind "bank"
	ledger map[string]*transfer  // by reference, across banks
	stmt   statements
}

type bankState struct {
	cfg     BankConfig
	down    bool
	limiter bucket
}

// New makes a sandbox bank. Invalid per-bank settings in opts are dropped
// (logged) in favour of opts.Latency alone.
func New(opts Options) *Server {
	s := &Server{
		hang:          orDefault(opts.Hang, DefaultHang),
		completeDelay: orDefault(opts.CompleteDelay, DefaultCompleteDelay),
		returnDelay:   orDefault(opts.ReturnDelay, DefaultReturnDelay),
		now:           opts.Now,
		log:           opts.Logger,
		banks:         map[string]*bankState{},
		ledger:        map[string]*transfer{},
		stmt:          newStatements(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	now := s.now()
	for _, b := range connectors.All() {
		if b.Kind != connectors.KindBank {
			continue
		}
		cfg, ok := opts.Banks[b.Code]
		if !ok {
			cfg = BankConfig{Latency: opts.Latency}
		}
		if err := cfg.validate(); err != nil {
			s.log.Warn("banksim: ignoring invalid bank config", "bank", b.Code, "err", err)
			cfg = BankConfig{Latency: opts.Latency}
		}
		s.banks[b.Code] = &bankState{cfg: cfg, limiter: newBucket(cfg.RateLimit, now)}
	}
	for code := range opts.Banks {
		if _, ok := s.banks[code]; !ok {
			s.log.Warn("banksim: ignoring config of unknown bank", "bank", code)
		}
	}
	s.routes()
	return s
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("POST /banks/{bank}/transfers", s.handleTransfer)
	m.HandleFunc("GET /banks/{bank}/transfers/{reference}", s.handleStatus)
	m.HandleFunc("POST /banks/{bank}/inquiries", s.handleInquiry)
	m.HandleFunc("GET /banks/{bank}/statement", s.handleStatement)
	m.HandleFunc("POST /admin/banks/{bank}/statement", s.handleInject)
	m.HandleFunc("GET /admin/ledger", s.handleLedger)
	m.HandleFunc("GET /admin/ledger/{reference}", s.handleLedgerRecord)
	m.HandleFunc("GET /admin/banks", s.handleBanks)
	m.HandleFunc("POST /admin/banks/{bank}/down", s.handleDown(true))
	m.HandleFunc("POST /admin/banks/{bank}/up", s.handleDown(false))
	m.HandleFunc("GET /admin/banks/{bank}/config", s.handleConfig)
	m.HandleFunc("POST /admin/banks/{bank}/config", s.handleConfig)
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	// The simulator depends on nothing (its ledger is in memory): ready
	// as soon as it serves. Both exist so every long-running role answers
	// the same two probes.
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	s.mux = m
}

// Handler serves the bank and admin APIs. Unknown paths and wrong methods get
// JSON errors too.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := s.mux.Handler(r); pattern == "" {
			// The mux's own answer: a redirect, 404 or 405. Keep redirects,
			// turn the rest into JSON.
			rec := &headerRecorder{header: http.Header{}}
			h, _ := s.mux.Handler(r)
			h.ServeHTTP(rec, r)
			switch rec.code {
			case http.StatusNotFound:
				writeError(w, http.StatusNotFound, CodeNotFound, "no such endpoint")
				return
			case http.StatusMethodNotAllowed:
				w.Header().Set("Allow", rec.header.Get("Allow"))
				writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method not allowed")
				return
			}
		}
		s.mux.ServeHTTP(w, r)
	})
}

type headerRecorder struct {
	header http.Header
	code   int
}

func (h *headerRecorder) Header() http.Header { return h.header }
func (h *headerRecorder) WriteHeader(code int) {
	if h.code == 0 {
		h.code = code
	}
}
func (h *headerRecorder) Write(p []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	return len(p), nil
}

// --- bank API ---

type transferRequest struct {
	Reference         string `json:"reference"`
	AccountNumber     string `json:"account_number"`
	AccountHolderName string `json:"account_holder_name"`
	Amount            int64  `json:"amount"`
	Currency          string `json:"currency"`
}

type transferResponse struct {
	Reference   string                    `json:"reference"`
	Status      connectors.TransferStatus `json:"status"`
	FailureCode string                    `json:"failure_code"`
}

type inquiryRequest struct {
	AccountNumber string `json:"account_number"`
}

type inquiryResponse struct {
	AccountNumber     string `json:"account_number"`
	AccountHolderName string `json:"account_holder_name"`
	Status            string `json:"status"`
}

// admit is the gate of every bank endpoint: the bank exists, is up and is
// within its rate limit. Nothing is recorded when it says no.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) (string, BankConfig, bool) {
	code := r.PathValue("bank")
	s.mu.Lock()
	st, ok := s.banks[code]
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, CodeUnknownBank, "unknown bank")
		return "", BankConfig{}, false
	}
	if st.down {
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, CodeBankDown, "bank unavailable")
		return "", BankConfig{}, false
	}
	wait, ok := st.limiter.take(s.now())
	cfg := st.cfg
	s.mu.Unlock()
	if !ok {
		secs := int64((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(max(1, secs), 10))
		writeError(w, http.StatusTooManyRequests, CodeRateLimited, "rate limit exceeded")
		return "", BankConfig{}, false
	}
	return code, cfg, true
}

func (s *Server) handleTransfer(w http.ResponseWriter, r *http.Request) {
	bank, cfg, ok := s.admit(w, r)
	if !ok {
		return
	}
	var req transferRequest
	if !decode(w, r, &req, false) {
		return
	}
	if req.Reference == "" || len(req.Reference) > MaxReferenceLen {
		writeError(w, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("reference must have 1 to %d bytes", MaxReferenceLen))
		return
	}
	if s.chance(cfg.ErrorRateBefore) {
		s.log.Debug("banksim: injected error before recording", "bank", bank, "reference", req.Reference)
		writeError(w, http.StatusInternalServerError, CodeInternal, "internal error")
		return
	}
	lat := s.latency(cfg.Latency)
	t, first := s.record(bank, req, lat)
	s.log.Debug("banksim: transfer", "bank", bank, "reference", req.Reference, "account", mask(req.AccountNumber), "amount", req.Amount, "first", first)
	if s.chance(cfg.ErrorRateAfter) {
		s.log.Debug("banksim: injected error after recording", "bank", bank, "reference", req.Reference)
		writeError(w, http.StatusInternalServerError, CodeInternal, "internal error")
		return
	}
	if first && t.hang {
		sleep(r.Context(), s.hang)
	} else {
		sleep(r.Context(), lat)
	}
	s.mu.Lock()
	res := t.result(s.now())
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, res)
}

// record puts req in the ledger, or counts it again when its reference is
// already there. first reports a new transfer. lat is the latency the answer
// will be sent after: timed changes count from the answer, so a 3333 transfer
// answers COMPLETED and a processing one PROCESSING, however slow the bank.
func (s *Server) record(bank string, req transferRequest, lat time.Duration) (t *transfer, first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t = s.ledger[req.Reference]; t != nil {
		t.received++
		if t.bank != bank || t.account != req.AccountNumber || t.amount != req.Amount {
			t.conflict = true
		}
		return t, false
	}
	now := s.now()
	t = &transfer{
		reference: req.Reference,
		bank:      bank,
		account:   req.AccountNumber,
		amount:    req.Amount,
		currency:  req.Currency,
		received:  1,
	}
	limits, _ := connectors.Lookup(bank)
	acctOK := limits.ValidateAccount(req.AccountNumber) == nil
	if w, _, ok := connectors.LookupVA(bank, req.AccountNumber); ok {
		t.wallet, limits, acctOK = w.Code, w, true
	}
	switch acct := req.AccountNumber; {
	case !acctOK, strings.HasSuffix(acct, "0000"):
		t.failure = connectors.FailureInvalidAccount
	case strings.HasSuffix(acct, "1111"):
		t.failure = connectors.FailureBankRejected
	case strings.HasSuffix(acct, "9999"):
		t.failure = connectors.FailureAccountClosed
	case req.Currency != "IDR":
		t.failure = connectors.FailureBankRejected
	case limits.ValidateAmount(req.Amount) != nil:
		t.failure = connectors.FailureAmountLimit
	case strings.HasSuffix(acct, "2222"):
		t.completeAt = now.Add(s.completeDelay)
		t.hang = true
	case strings.HasSuffix(acct, "3333"):
		t.completeAt = now
		t.returnAt = now.Add(lat + s.returnDelay)
	case strings.HasSuffix(acct, "4444"):
		// Paid and returned before the caller hears anything: the response
		// hangs, and the first status query already answers RETURNED.
		t.completeAt, t.returnAt = now, now
		t.hang = true
	case s.rng.Float64() < s.banks[bank].cfg.ProcessingRate:
		t.completeAt = now.Add(lat + s.completeDelay)
	default:
		t.completeAt = now
	}
	s.ledger[req.Reference] = t
	// The statement books what the bank did, when it did it: a refusal or
	// a payment now, a later payment or return when its time comes.
	b := booking{at: now, reference: t.reference, amount: t.amount, currency: t.currency}
	switch {
	case t.failure != "":
		b.kind, b.failure = connectors.EntryRejected, t.failure
		s.book(bank, b)
	case t.completeAt.After(now):
		b.kind, b.at = connectors.EntryPaid, t.completeAt
		s.bookLater(bank, b)
	default:
		b.kind = connectors.EntryPaid
		s.book(bank, b)
	}
	if !t.returnAt.IsZero() {
		b.kind, b.at, b.failure = connectors.EntryReturned, t.returnAt, ""
		s.bookLater(bank, b)
	}
	return t, true
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	bank, cfg, ok := s.admit(w, r)
	if !ok {
		return
	}
	sleep(r.Context(), s.latency(cfg.Latency))
	ref := r.PathValue("reference")
	s.mu.Lock()
	t := s.ledger[ref]
	var res transferResponse
	if t != nil && t.bank == bank {
		res = t.result(s.now())
	}
	s.mu.Unlock()
	if res.Reference == "" {
		writeError(w, http.StatusNotFound, CodeUnknownReference, "unknown reference")
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) handleInquiry(w http.ResponseWriter, r *http.Request) {
	bank, cfg, ok := s.admit(w, r)
	if !ok {
		return
	}
	var req inquiryRequest
	if !decode(w, r, &req, false) {
		return
	}
	if req.AccountNumber == "" {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "account_number is required")
		return
	}
	sleep(r.Context(), s.latency(cfg.Latency))
	writeJSON(w, http.StatusOK, inquire(bank, req.AccountNumber))
}

func inquire(bank, acct string) inquiryResponse {
	res := inquiryResponse{AccountNumber: acct, Status: connectors.InquiryValid}
	b, _ := connectors.Lookup(bank)
	_, _, isVA := connectors.LookupVA(bank, acct)
	switch {
	case !isVA && b.ValidateAccount(acct) != nil, strings.HasSuffix(acct, "0000"):
		res.Status = connectors.InquiryInvalid
	case strings.HasSuffix(acct, "9999"):
		res.Status = connectors.InquiryClosed
	default:
		res.AccountHolderName = holderName(acct)
	}
	return res
}

// --- admin API ---

func (s *Server) handleLedger(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Ledger())
}

func (s *Server) handleLedgerRecord(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Record(r.PathValue("reference")))
}

// bankView is a bank's state as the admin API shows it.
type bankView struct {
	Bank            string      `json:"bank"`
	Down            bool        `json:"down"`
	Latency         latencyJSON `json:"latency"`
	ErrorRateBefore float64     `json:"error_rate_before"`
	ErrorRateAfter  float64     `json:"error_rate_after"`
	ProcessingRate  float64     `json:"processing_rate"`
	RateLimit       float64     `json:"rate_limit"`
}

type latencyJSON struct {
	MedianMS float64 `json:"median_ms"`
	P99MS    float64 `json:"p99_ms"`
}

// configPatch is a partial BankConfig: absent fields stay as they are.
type configPatch struct {
	Latency *struct {
		MedianMS *float64 `json:"median_ms"`
		P99MS    *float64 `json:"p99_ms"`
	} `json:"latency"`
	ErrorRateBefore *float64 `json:"error_rate_before"`
	ErrorRateAfter  *float64 `json:"error_rate_after"`
	ProcessingRate  *float64 `json:"processing_rate"`
	RateLimit       *float64 `json:"rate_limit"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fromMS(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

func (s *Server) view(code string) bankView {
	st := s.banks[code]
	return bankView{
		Bank:            code,
		Down:            st.down,
		Latency:         latencyJSON{MedianMS: ms(st.cfg.Latency.Median), P99MS: ms(st.cfg.Latency.P99)},
		ErrorRateBefore: st.cfg.ErrorRateBefore,
		ErrorRateAfter:  st.cfg.ErrorRateAfter,
		ProcessingRate:  st.cfg.ProcessingRate,
		RateLimit:       st.cfg.RateLimit,
	}
}

func (s *Server) handleBanks(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := make([]bankView, 0, len(s.banks))
	for code := range s.banks {
		out = append(out, s.view(code))
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b bankView) int { return strings.Compare(a.Bank, b.Bank) })
	writeJSON(w, http.StatusOK, map[string]any{"banks": out})
}

func (s *Server) handleDown(down bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		code := r.PathValue("bank")
		if err := s.SetDown(code, down); err != nil {
			writeError(w, http.StatusNotFound, CodeUnknownBank, "unknown bank")
			return
		}
		s.mu.Lock()
		v := s.view(code)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, v)
	}
}

func (s *Server) handleConfig(w http.ResponseWriter, r *http.Request) {
	code := r.PathValue("bank")
	cfg, ok := s.Config(code)
	if !ok {
		writeError(w, http.StatusNotFound, CodeUnknownBank, "unknown bank")
		return
	}
	if r.Method == http.MethodPost {
		var p configPatch
		if !decode(w, r, &p, true) {
			return
		}
		if l := p.Latency; l != nil {
			if l.MedianMS != nil {
				cfg.Latency.Median = fromMS(*l.MedianMS)
			}
			if l.P99MS != nil {
				cfg.Latency.P99 = fromMS(*l.P99MS)
			}
		}
		set := func(dst *float64, v *float64) {
			if v != nil {
				*dst = *v
			}
		}
		set(&cfg.ErrorRateBefore, p.ErrorRateBefore)
		set(&cfg.ErrorRateAfter, p.ErrorRateAfter)
		set(&cfg.ProcessingRate, p.ProcessingRate)
		set(&cfg.RateLimit, p.RateLimit)
		if err := s.Configure(code, cfg); err != nil {
			writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
			return
		}
	}
	s.mu.Lock()
	v := s.view(code)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, v)
}

// SetDown takes a bank down (every request answered 503, nothing recorded)
// or brings it back up. Errors wrap connectors.ErrUnknownBank.
func (s *Server) SetDown(bank string, down bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.banks[bank]
	if !ok {
		return fmt.Errorf("banksim: %w: %q", connectors.ErrUnknownBank, bank)
	}
	if st.down != down {
		st.down = down
		s.log.Info("banksim: bank availability changed", "bank", bank, "down", down)
	}
	return nil
}

// Configure replaces a bank's configuration. Errors name the bad setting, or
// wrap connectors.ErrUnknownBank.
func (s *Server) Configure(bank string, cfg BankConfig) error {
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("banksim: %s: %w", bank, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.banks[bank]
	if !ok {
		return fmt.Errorf("banksim: %w: %q", connectors.ErrUnknownBank, bank)
	}
	if cfg.RateLimit != st.cfg.RateLimit {
		st.limiter = newBucket(cfg.RateLimit, s.now())
	}
	st.cfg = cfg
	s.log.Info("banksim: bank configured", "bank", bank,
		"latency_median", cfg.Latency.Median, "latency_p99", cfg.Latency.P99,
		"error_rate_before", cfg.ErrorRateBefore, "error_rate_after", cfg.ErrorRateAfter,
		"processing_rate", cfg.ProcessingRate, "rate_limit", cfg.RateLimit)
	return nil
}

// Config is a bank's current configuration.
func (s *Server) Config(bank string) (BankConfig, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.banks[bank]
	if !ok {
		return BankConfig{}, false
	}
	return st.cfg, true
}

// --- helpers ---

func (s *Server) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < p
}

func (s *Server) latency(l Latency) time.Duration {
	if l.Median <= 0 {
		return 0
	}
	s.mu.Lock()
	z := s.rng.NormFloat64()
	s.mu.Unlock()
	return l.sample(z)
}

// sleep waits d, or less when ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// decode reads one JSON object from a size-limited body; it answers 400
// itself and reports false on failure. A strict decode rejects unknown fields
// (admin settings, where a typo must not pass silently); the bank API ignores
// them, as a bank would.
func decode(w http.ResponseWriter, r *http.Request, v any, strict bool) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if strict {
		dec.DisallowUnknownFields()
	}
	err := dec.Decode(v)
	if err == nil {
		if _, e := dec.Token(); !errors.Is(e, io.EOF) {
			err = errors.New("data after the JSON object")
		}
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "bad JSON body: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, errCode, msg string) {
	writeJSON(w, code, map[string]string{"error": msg, "code": errCode})
}

// mask keeps the last four digits of an account number for logs.
func mask(acct string) string {
	if len(acct) <= 4 {
		return "****"
	}
	return strings.Repeat("*", len(acct)-4) + acct[len(acct)-4:]
}
