package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/batch"
	"github.com/disburse/disburse/hold"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/quote"
)

// maxUploadBody bounds an upload: 100,000 rows of ~300 bytes, as the API's
// batch body limit.
const maxUploadBody = 64 << 20

// shownRowErrors is how many invalid rows the check page lists.
const shownRowErrors = 200

type batchesView struct {
	Recent []batchRow
}

// batchRow is a listed batch with its hold (approval, schedule), if any.
type batchRow struct {
	batch.Batch
	Hold *hold.Hold
}

// batches lists the recent batches beside the upload form.
func (s *Server) batches(w http.ResponseWriter, r *http.Request, rq *request) {
	s.showBatches(w, r, rq, "")
}

func (s *Server) showBatches(w http.ResponseWriter, r *http.Request, rq *request, errText string) {
	list, _, err := batch.NewStore(s.API.Ledger.DB()).List(r.Context(), rq.MerchantID, rq.Environment, batch.ListFilter{}, "", 20)
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	v := batchesView{Recent: make([]batchRow, len(list))}
	for i, b := range list {
		// A primary-key read each, for the 20 listed batches.
		h, err := s.API.HoldOf(r.Context(), rq.principal(), b.ID)
		if err != nil {
			s.internal(w, r, rq.lang, err)
			return
		}
		v.Recent[i] = batchRow{Batch: b, Hold: h}
	}
	s.view(w, r, rq, "batches", "batches", "batch.title", v, "", errText)
}

type checkView struct {
	UploadID, FileName, ReferenceID string
	Rows, Valid, Invalid            int
	Total                           int64
	Errors                          []batch.RowError
	MoreErrors                      int
	Mode                            string      // the mode the send button sends with
	Quote                           quote.Quote // the price of sending it (api.Server.QuoteBatch)
	MoreDuplicates                  int
	ScheduledAt                     string     // RFC 3339, empty: at once
	Start                           *time.Time // ScheduledAt read
	NeedsApproval                   bool       // the approval policy will hold it
}

// fingerprint is the idempotency hash of a CSV batch as POST /v1/batches
// computes it: media type, reference and mode, then the body.
func fingerprint(ref, mode string, body []byte) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", "text/csv", ref, mode)
	h.Write(body)
	return h.Sum(nil)
}

// parseUpload reads a CSV with the batch parser of the merchant API. A
// message for the user comes back when the file is not a batch at all.
func parseUpload(lang string, body []byte, ref, mode, scheduledAt string) (*batch.Parsed, string) {
	parsed, err := batch.Read(bytes.NewReader(body), "text/csv", batch.Header{ReferenceID: ref, Mode: mode, ScheduledAt: scheduledAt})
	var format *batch.FormatError
	switch {
	case errors.Is(err, batch.ErrTooManyItems):
		return nil, T(lang, "batch.toomany")
	case errors.As(err, &format):
		return nil, T(lang, "batch.unreadable") + " " + format.Error()
	case err != nil:
		return nil, T(lang, "batch.unreadable") + " " + err.Error()
	}
	if fes := parsed.Header.Validate(); len(fes) > 0 {
		return nil, fieldMessage(fes)
	}
	if parsed.Rows == 0 {
		return nil, T(lang, "batch.empty")
	}
	return parsed, ""
}

// upload validates a CSV and shows the check: the invalid rows, before
// anything is sent. The file is kept until the user sends it.
func (s *Server) upload(w http.ResponseWriter, r *http.Request, rq *request) {
	if active, err := s.environmentActive(r.Context(), rq); err != nil || !active {
		if err != nil {
			s.internal(w, r, rq.lang, err)
			return
		}
		s.showBatches(w, r, rq, T(rq.lang, "err.notactive"))
		return
	}
	f, hdr, err := r.FormFile("file")
	if err != nil {
		s.showBatches(w, r, rq, T(rq.lang, "batch.nofile"))
		return
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, maxUploadBody+1))
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	if len(body) > maxUploadBody {
		s.showBatches(w, r, rq, T(rq.lang, "batch.toomany"))
		return
	}
	ref := strings.TrimSpace(r.PostFormValue("reference_id"))
	if ref == "" {
		ref = "dashboard-" + s.now().In(jakarta).Format("20060102-150405") + "-" + randomToken(3)
	}
	// The send time is typed in Jakarta time (datetime-local) and checked
	// as the API checks scheduled_at.
	var scheduled string
	var start *time.Time
	if raw := strings.TrimSpace(r.PostFormValue("scheduled_at")); raw != "" {
		local, err := time.ParseInLocation("2006-01-02T15:04", raw, jakarta)
		if err != nil {
			s.showBatches(w, r, rq, T(rq.lang, "batch.badschedule"))
			return
		}
		scheduled = local.Format(time.RFC3339)
		var fes []payout.FieldError
		if start, fes = s.API.ParseScheduledAt(scheduled); len(fes) > 0 {
			s.showBatches(w, r, rq, T(rq.lang, "batch.badschedule"))
			return
		}
	}
	parsed, msg := parseUpload(rq.lang, body, ref, batch.Partial, scheduled)
	if msg != "" {
		s.showBatches(w, r, rq, msg)
		return
	}
	name := hdr.Filename
	if len(name) > 200 || !payout.CleanText(name) {
		name = "upload.csv"
	}
	id, err := s.Store.SaveUpload(r.Context(), Upload{MerchantID: rq.MerchantID, Environment: rq.Environment, UserID: rq.ID,
		FileName: name, Body: body, CreatedAt: s.now()})
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	v := checkView{UploadID: id, FileName: name, ReferenceID: ref, Rows: parsed.Rows, Valid: len(parsed.Items), Invalid: parsed.InvalidRows,
		ScheduledAt: scheduled, Start: start}
	for _, it := range parsed.Items {
		v.Total += it.Amount
	}
	v.Errors = parsed.Errors
	if len(v.Errors) > shownRowErrors {
		v.MoreErrors = len(v.Errors) - shownRowErrors
		v.Errors = v.Errors[:shownRowErrors]
	}
	// Quoted in the mode the send button will use, so the sent batch
	// matches its quote (quote_id) unless the file or the fees changed.
	v.Mode = batch.AllOrNothing
	if parsed.InvalidRows > 0 {
		v.Mode = batch.Partial
	}
	parsed.Header.Mode = v.Mode
	if v.Quote, err = s.API.QuoteBatch(r.Context(), rq.principal(), parsed, start); err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	pol, err := s.holds().Policy(r.Context(), rq.MerchantID, rq.Environment)
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	v.NeedsApproval = pol.BatchNeeds(len(parsed.Items), v.Total)
	if len(v.Quote.Duplicates) > shownRowErrors {
		v.MoreDuplicates = len(v.Quote.Duplicates) - shownRowErrors
		v.Quote.Duplicates = v.Quote.Duplicates[:shownRowErrors]
	}
	s.Log.Info("batch file checked in the dashboard", "merchant_id", rq.MerchantID, "environment", rq.Environment,
		"user_id", rq.ID, "upload_id", id, "rows", parsed.Rows, "invalid_rows", parsed.InvalidRows)
	s.view(w, r, rq, "check", "batches", "batch.title", v, "", "")
}

// send turns a checked upload into a batch through the merchant API's
// SubmitBatch (the same store and queueing as POST /v1/batches). The
// upload id is the idempotency key: a second click shows the same batch.
func (s *Server) send(w http.ResponseWriter, r *http.Request, rq *request) {
	ctx := r.Context()
	u, err := s.Store.Upload(ctx, rq.MerchantID, rq.Environment, r.PostFormValue("upload_id"))
	if errors.Is(err, ErrNotFound) {
		s.fail(w, r, rq, http.StatusNotFound, T(rq.lang, "err.notfound"))
		return
	}
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	if u.BatchID != "" {
		http.Redirect(w, r, "/batches/"+u.BatchID, http.StatusSeeOther)
		return
	}
	mode := batch.AllOrNothing
	if r.PostFormValue("mode") == batch.Partial {
		mode = batch.Partial
	}
	ref := r.PostFormValue("reference_id")
	parsed, msg := parseUpload(rq.lang, u.Body, ref, mode, r.PostFormValue("scheduled_at"))
	if msg != "" {
		s.showBatches(w, r, rq, msg)
		return
	}
	if parsed.InvalidRows > 0 && (mode == batch.AllOrNothing || len(parsed.Items) == 0) {
		s.showBatches(w, r, rq, fmt.Sprintf("%d %s", parsed.InvalidRows, T(rq.lang, "batch.invalid")))
		return
	}
	// Sent with the quote the check page showed: a file, reference, mode
	// or fee changed since refuses to send, as POST /v1/batches does.
	if qid := r.PostFormValue("quote_id"); qid != "" {
		parsed.Header.QuoteID = qid
		err := s.API.CheckQuote(ctx, rq.principal(), parsed)
		switch {
		case errors.Is(err, quote.ErrNotFound), errors.Is(err, quote.ErrExpired), errors.Is(err, quote.ErrMismatch):
			s.showBatches(w, r, rq, T(rq.lang, "quote.stale")+" ("+err.Error()+")")
			return
		case err != nil:
			s.internal(w, r, rq.lang, err)
			return
		}
	}
	accepted, _, err := s.API.SubmitBatch(ctx, rq.principal(), "dashboard:"+u.ID, fingerprint(ref, mode, u.Body), parsed)
	if errors.Is(err, batch.ErrIdempotencyKeyReused) {
		s.showBatches(w, r, rq, T(rq.lang, "err.csrf"))
		return
	}
	if errors.Is(err, api.ErrInvalidSchedule) { // the time passed between the check and the send
		s.showBatches(w, r, rq, T(rq.lang, "batch.badschedule"))
		return
	}
	if err != nil && !errors.Is(err, api.ErrNotQueued) {
		s.internal(w, r, rq.lang, err)
		return
	}
	if err != nil {
		// Stored but not all queued: sending again (same key) queues the rest.
		s.showBatches(w, r, rq, err.Error())
		return
	}
	if err := s.Store.MarkSent(ctx, u.ID, accepted.ID); err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	s.Log.Info("batch sent from the dashboard", "merchant_id", rq.MerchantID, "environment", rq.Environment,
		"user_id", rq.ID, "batch_id", accepted.ID, "items", accepted.ItemCount)
	http.Redirect(w, r, "/batches/"+accepted.ID, http.StatusSeeOther)
}

// progress is a batch's progress as the page and its live updates show it.
type progress struct {
	ID          string         `json:"id"`
	ReferenceID string         `json:"reference_id"`
	Status      string         `json:"status"`
	Items       int            `json:"items"`
	Finished    int            `json:"finished"`
	Completed   int            `json:"completed"`
	Failed      int            `json:"failed"`
	Percent     int            `json:"percent"`
	Counts      map[string]int `json:"counts"`
	Done        bool           `json:"done"`
	Total       int64          `json:"total_amount"`
	CreatedAt   time.Time      `json:"created_at"`
}

func progressOf(b batch.Batch) progress {
	p := progress{ID: b.ID, ReferenceID: b.ReferenceID, Status: b.Status, Items: b.ItemCount, Finished: b.Finished(),
		Completed: b.Counts["COMPLETED"].Count, Failed: b.Counts["FAILED"].Count, Counts: map[string]int{},
		Done: b.Status == "COMPLETED", Total: b.TotalAmount, CreatedAt: b.CreatedAt}
	for st, c := range b.Counts {
		p.Counts[st] = c.Count
	}
	if b.ItemCount > 0 {
		p.Percent = p.Finished * 100 / b.ItemCount
	}
	return p
}

func (s *Server) loadBatch(ctx context.Context, rq *request, id string) (batch.Batch, error) {
	return batch.NewStore(s.API.Ledger.DB()).Get(ctx, rq.MerchantID, rq.Environment, id)
}

// batchPage shows a batch's progress; the page follows it live.
func (s *Server) batchPage(w http.ResponseWriter, r *http.Request, rq *request) {
	b, err := s.loadBatch(r.Context(), rq, r.PathValue("id"))
	if errors.Is(err, batch.ErrNotFound) {
		s.fail(w, r, rq, http.StatusNotFound, T(rq.lang, "err.notfound"))
		return
	}
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	h, err := s.API.HoldOf(r.Context(), rq.principal(), b.ID)
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	s.view(w, r, rq, "batch", "batches", "batch.progress", batchView{progress: progressOf(b), Hold: h, Waiting: waiting(h)}, "", "")
}

// batchView is the batch page: its progress and its hold, if any.
type batchView struct {
	progress
	Hold    *hold.Hold
	Waiting bool // held: cancellable with nothing debited
}

// cancelBatch cancels what of a batch is not yet at its bank through
// api.Server.CancelBatch (held items with nothing debited).
func (s *Server) cancelBatch(w http.ResponseWriter, r *http.Request, rq *request) {
	bc, err := s.API.CancelBatch(r.Context(), rq.principal(), r.PathValue("id"))
	if errors.Is(err, batch.ErrNotFound) {
		s.fail(w, r, rq, http.StatusNotFound, T(rq.lang, "err.notfound"))
		return
	}
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	s.Log.Info("batch cancelled from the dashboard", "merchant_id", rq.MerchantID, "environment", rq.Environment,
		"user_id", rq.ID, "batch_id", bc.BatchID, "cancelled", bc.Cancelled)
	http.Redirect(w, r, "/batches/"+bc.BatchID, http.StatusSeeOther)
}

// progressEvery is how often the live progress reads the batch.
const progressEvery = 500 * time.Millisecond

// batchProgress streams the batch's progress as server-sent events, one
// "progress" event per change, until the batch completes (then a "done"
// event) or the client leaves. The browser's EventSource reconnects by
// itself if the stream is cut.
func (s *Server) batchProgress(w http.ResponseWriter, r *http.Request, rq *request) {
	ctx := r.Context()
	id := r.PathValue("id")
	b, err := s.loadBatch(ctx, rq, id)
	if errors.Is(err, batch.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Minute)) // longer than the server's write timeout
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var last []byte
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		p := progressOf(b)
		data, _ := json.Marshal(p)
		if !bytes.Equal(data, last) {
			event := "progress"
			if p.Done {
				event = "done"
			}
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			last = data
		}
		if p.Done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if b, err = s.loadBatch(ctx, rq, id); err != nil {
			if ctx.Err() == nil {
				s.Log.Error("batch progress", "batch_id", id, "err", err)
			}
			return
		}
	}
}

// resultColumns is the header of the results file.
var resultColumns = []string{"reference_id", "id", "bank_code", "account_number", "amount", "fee", "currency", "status", "failure_code", "created_at", "completed_at"}

// batchResults streams every item of the batch with its outcome as CSV.
func (s *Server) batchResults(w http.ResponseWriter, r *http.Request, rq *request) {
	ctx := r.Context()
	id := r.PathValue("id")
	if _, err := s.loadBatch(ctx, rq, id); err != nil {
		if errors.Is(err, batch.ErrNotFound) {
			s.fail(w, r, rq, http.StatusNotFound, T(rq.lang, "err.notfound"))
			return
		}
		s.internal(w, r, rq.lang, err)
		return
	}
	store := batch.NewStore(s.API.Ledger.DB())
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="batch-`+id+`-results.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write(resultColumns)
	after := ""
	for {
		items, err := store.Items(ctx, id, "", after, 1000)
		if err != nil {
			s.Log.Error("batch results", "batch_id", id, "merchant_id", rq.MerchantID, "err", err)
			panic(http.ErrAbortHandler) // a cut download, never a complete-looking short file
		}
		for _, d := range items {
			completed := ""
			if d.CompletedAt != nil {
				completed = d.CompletedAt.UTC().Format(time.RFC3339)
			}
			failure := ""
			if d.FailureCode != nil {
				failure = *d.FailureCode
			}
			_ = cw.Write([]string{csvSafe(d.ReferenceID), d.ID, d.BankCode, csvSafe(d.AccountNumber), strconv.FormatInt(d.Amount, 10),
				strconv.FormatInt(d.Fee, 10), d.Currency, string(d.Status), failure, d.CreatedAt.UTC().Format(time.RFC3339), completed})
		}
		if len(items) < 1000 {
			break
		}
		after = items[len(items)-1].ID
	}
	cw.Flush()
}

// csvSafe keeps a spreadsheet from reading a cell as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
