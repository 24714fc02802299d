package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/batch"
	"github.com/disburse/disburse/hold"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas/events"
)

// maxBatchBody bounds a batch body: 100,000 items of ~300 bytes fit with room.
const maxBatchBody = 64 << 20

// publishChunk is how many request records are produced per round trip.
const publishChunk = 5000

func (s *Server) createBatch(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	key, prob := idempotencyKey(r)
	if prob != nil {
		writeError(w, prob)
		return
	}
	parsed, hash, ok := readBatch(w, r)
	if !ok {
		return
	}
	if parsed.InvalidRows > 0 && (parsed.Header.Mode == batch.AllOrNothing || len(parsed.Items) == 0) {
		pr := newProblem(http.StatusUnprocessableEntity, CodeValidation,
			fmt.Sprintf("%d of %d rows are invalid; nothing was accepted (mode %s)", parsed.InvalidRows, parsed.Rows, parsed.Header.Mode))
		pr.Rows = parsed.Errors
		pr.InvalidRows = parsed.InvalidRows
		writeError(w, pr)
		return
	}
	if parsed.Header.QuoteID != "" {
		if prob := s.checkQuote(r, p, parsed); prob != nil {
			writeError(w, prob)
			return
		}
	}
	if _, prob := s.parseScheduledAt(parsed.Header.ScheduledAt); prob != nil {
		writeError(w, prob)
		return
	}
	accepted, replay, err := s.SubmitBatch(r.Context(), p, key, hash, parsed)
	if errors.Is(err, batch.ErrIdempotencyKeyReused) {
		writeError(w, newProblem(http.StatusConflict, CodeIdempotencyReused, "this Idempotency-Key was used with a different batch; use a new key for a new batch"))
		return
	}
	if errors.Is(err, ErrNotQueued) {
		w.Header().Set("Retry-After", "1")
		writeError(w, newProblem(http.StatusServiceUnavailable, CodeUnavailable, "the batch is stored but not all items could be queued; retry with the same Idempotency-Key"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if replay {
		w.Header().Set("Idempotent-Replayed", "true")
	} else {
		s.logFor(r.Context()).Info("batch accepted", "batch_id", accepted.ID, "merchant_id", p.MerchantID, "environment", p.Environment,
			"items", accepted.ItemCount, "rejected", accepted.RejectedCount, "duplicates", accepted.DuplicateCount)
	}
	h, err := s.HoldOf(r.Context(), p, accepted.ID)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/batches/"+accepted.ID)
	writeJSON(w, http.StatusAccepted, struct {
		batch.Accepted
		Hold *hold.Hold `json:"hold,omitempty"`
	}{accepted, h})
}

// readBatch reads and validates a batch body (JSON or CSV) as POST
// /v1/batches and POST /v1/batches/quote take it, and returns it with the
// idempotency fingerprint of the raw body (and, for CSV, the query). On a
// problem it has answered and ok is false. Invalid rows are not a problem
// here: the caller decides what they mean.
func readBatch(w http.ResponseWriter, r *http.Request) (parsed *batch.Parsed, fingerprint []byte, ok bool) {
	fail := func(p *problem) (*batch.Parsed, []byte, bool) {
		writeError(w, p)
		return nil, nil, false
	}
	mt := batch.MediaType(r.Header.Get("Content-Type"))
	if mt == "" {
		return fail(newProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "send a batch as application/json or text/csv"))
	}
	if r.ContentLength > maxBatchBody {
		return fail(newProblem(http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("a batch body must be at most %d bytes", maxBatchBody)))
	}
	header := batch.Header{}
	q := r.URL.Query()
	if mt == "text/csv" {
		header.ReferenceID, header.Mode, header.QuoteID, header.ScheduledAt = q.Get("reference_id"), q.Get("mode"), q.Get("quote_id"), q.Get("scheduled_at")
	} else if q.Has("reference_id") || q.Has("mode") || q.Has("quote_id") || q.Has("scheduled_at") {
		var fields []payout.FieldError
		for _, name := range []string{"reference_id", "mode", "quote_id", "scheduled_at"} {
			if q.Has(name) {
				fields = append(fields, payout.FieldError{Field: name, Code: "CSV_ONLY", Message: "a JSON batch carries " + name + " in its body, not the query"})
			}
		}
		return fail(newProblem(http.StatusBadRequest, CodeValidation, "a JSON batch carries reference_id, mode, quote_id and scheduled_at in its body, not the query", fields...))
	}
	// The idempotency fingerprint covers the raw body and, for CSV, the query.
	hash := sha256.New()
	fmt.Fprintf(hash, "%s\x00%s\x00%s\x00", mt, header.ReferenceID, header.Mode)
	if header.QuoteID != "" || header.ScheduledAt != "" {
		fmt.Fprintf(hash, "%s\x00%s\x00", header.QuoteID, header.ScheduledAt)
	}
	body := io.TeeReader(http.MaxBytesReader(w, r.Body, maxBatchBody), hash)
	parsed, err := batch.Read(body, mt, header)
	var tooBig *http.MaxBytesError
	var format *batch.FormatError
	switch {
	case errors.As(err, &tooBig):
		return fail(newProblem(http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("a batch body must be at most %d bytes", maxBatchBody)))
	case errors.Is(err, batch.ErrTooManyItems):
		return fail(newProblem(http.StatusRequestEntityTooLarge, CodeTooManyItems, fmt.Sprintf("a batch holds at most %d items; split it", batch.MaxItems)))
	case errors.As(err, &format) && mt == "application/json" && format.Field != "":
		return fail(newProblem(http.StatusUnprocessableEntity, CodeValidation, format.Error(),
			payout.FieldError{Field: format.Field, Code: "UNKNOWN_FIELD", Message: "remove this field"}))
	case errors.As(err, &format) && mt == "application/json":
		return fail(newProblem(http.StatusBadRequest, CodeInvalidJSON, format.Error()))
	case errors.As(err, &format):
		return fail(newProblem(http.StatusBadRequest, CodeInvalidBatch, format.Error()))
	case err != nil:
		return fail(newProblem(http.StatusBadRequest, CodeInvalidBatch, "could not read the batch body"))
	}
	if fields := parsed.Header.Validate(); len(fields) > 0 {
		return fail(newProblem(http.StatusUnprocessableEntity, CodeValidation, "the batch has invalid fields", fields...))
	}
	if parsed.Rows == 0 {
		return fail(newProblem(http.StatusUnprocessableEntity, CodeValidation, "the batch has no items"))
	}
	_, _ = io.Copy(io.Discard, body) // anything after the batch still counts in the fingerprint
	return parsed, hash.Sum(nil), true
}

// ErrNotQueued: SubmitBatch stored the batch but could not queue all of its
// items; submitting it again with the same idempotency key queues them.
var ErrNotQueued = errors.New("api: the batch is stored but not all items could be queued")

// SubmitBatch stores a parsed batch under the idempotency key (hash is the
// fingerprint of what was submitted) and queues its PENDING items for the
// ledger stage: what POST /v1/batches does once the body is read, shared
// with the dashboard's upload. replay reports a batch submitted before
// with the same key and hash.
//
// A batch the environment's approval policy asks a checker for, or with a
// scheduled_at, is stored held (issue 14; holds.go) and nothing is queued;
// ErrInvalidSchedule refuses a scheduled_at that is not RFC 3339, in the
// future and at most 30 days ahead.
func (s *Server) SubmitBatch(ctx context.Context, p merchant.Principal, key string, hash []byte, parsed *batch.Parsed) (accepted batch.Accepted, replay bool, err error) {
	held, spec, err := s.batchHold(ctx, p, parsed)
	if err != nil {
		return accepted, false, err
	}
	accepted, pending, replay, err := batch.NewStore(s.Ledger.DB()).CreateHeld(ctx, p.MerchantID, p.Environment, key, hash, parsed, held)
	if err != nil {
		return accepted, replay, err
	}
	if spec != nil && spec.Approval && !replay {
		if h, err := s.holds().Get(ctx, p.MerchantID, p.Environment, accepted.ID); err == nil {
			s.announce(ctx, h, hold.TypeApprovalRequested)
		}
	}
	if err := s.publishRequests(ctx, p, accepted.ID, pending); err != nil {
		s.logFor(ctx).Error("publish batch items", "batch_id", accepted.ID, "merchant_id", p.MerchantID, "err", err)
		return accepted, replay, fmt.Errorf("%w: %v", ErrNotQueued, err)
	}
	return accepted, replay, nil
}

// publishRequests queues the batch's PENDING payouts for the ledger stage.
func (s *Server) publishRequests(ctx context.Context, p merchant.Principal, batchID string, ids []string) error {
	now := time.Now().UTC()
	for start := 0; start < len(ids); start += publishChunk {
		chunk := ids[start:min(start+publishChunk, len(ids))]
		recs := make([]*kgo.Record, len(chunk))
		for i, id := range chunk {
			recs[i] = processor.WithDisbursementID(processor.JSONRecord(s.Topics.Requests, p.MerchantID, events.Request{
				DisbursementID: id, MerchantID: p.MerchantID, Environment: p.Environment, BatchID: batchID, AcceptedAt: now,
			}), id)
		}
		if err := processor.Produce(ctx, s.Kafka, recs...); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	b, err := batch.NewStore(s.Ledger.DB()).Get(r.Context(), p.MerchantID, p.Environment, r.PathValue("id"))
	if errors.Is(err, batch.ErrNotFound) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such batch"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	h, err := s.HoldOf(r.Context(), p, b.ID)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		batch.Batch
		Hold *hold.Hold `json:"hold,omitempty"`
	}{b, h})
}

func (s *Server) listBatchItems(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	store := batch.NewStore(s.Ledger.DB())
	id := r.PathValue("id")
	if _, err := store.Get(r.Context(), p.MerchantID, p.Environment, id); err != nil {
		if errors.Is(err, batch.ErrNotFound) {
			writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such batch"))
			return
		}
		s.internalError(w, r, err)
		return
	}
	q := r.URL.Query()
	status := q.Get("status")
	switch payout.Status(status) {
	case "", payout.Pending, payout.Processing, payout.Completed, payout.Failed, payout.Reversed, payout.Cancelled,
		payout.AwaitingApproval, payout.Scheduled:
	default:
		writeError(w, badQuery("status", "INVALID_VALUE", "status must be one of PENDING, PROCESSING, COMPLETED, FAILED, REVERSED, CANCELLED, AWAITING_APPROVAL, SCHEDULED"))
		return
	}
	limit, prob := queryLimit(q, defaultPageSize, maxPageSize)
	if prob != nil {
		writeError(w, prob)
		return
	}
	cursor := q.Get("cursor")
	if len(cursor) > 64 {
		writeError(w, cursorProblem("cursor"))
		return
	}
	items, err := store.Items(r.Context(), id, status, cursor, limit)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	var next *string
	if len(items) == limit {
		next = &items[len(items)-1].ID
	}
	if items == nil {
		items = []payout.Disbursement{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": items, "next_cursor": next})
}

// listBatches serves GET /v1/batches: the environment's batches, newest
// first, with their progress, one cursor page at a time.
func (s *Server) listBatches(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	q := r.URL.Query()
	var f batch.ListFilter
	var prob *problem
	if f.ReferenceID, prob = queryText(q, "reference_id", 64); prob != nil {
		writeError(w, prob)
		return
	}
	for _, st := range q["status"] {
		switch st {
		case "": // sent empty: as if absent, like every optional parameter
		case "ACCEPTED", "PROCESSING", "COMPLETED":
			f.Statuses = append(f.Statuses, st)
		default:
			writeError(w, badQuery("status", "INVALID_VALUE", "status must be ACCEPTED, PROCESSING or COMPLETED; repeat the parameter for several"))
			return
		}
	}
	if f.CreatedFrom, prob = queryTime(q, "created_from"); prob != nil {
		writeError(w, prob)
		return
	}
	if f.CreatedTo, prob = queryTime(q, "created_to"); prob != nil {
		writeError(w, prob)
		return
	}
	if !f.CreatedFrom.IsZero() && !f.CreatedTo.IsZero() && !f.CreatedFrom.Before(f.CreatedTo) {
		writeError(w, badQuery("created_to", "INVALID_RANGE", "created_to must be after created_from"))
		return
	}
	limit, prob := queryLimit(q, defaultSearchLimit, batch.MaxListLimit)
	if prob != nil {
		writeError(w, prob)
		return
	}
	list, next, err := batch.NewStore(s.Ledger.DB()).List(r.Context(), p.MerchantID, p.Environment, f, q.Get("cursor"), limit)
	if errors.Is(err, batch.ErrBadCursor) {
		writeError(w, cursorProblem("cursor"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	var cursor *string
	if next != "" {
		cursor = &next
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": list, "next_cursor": cursor, "has_more": cursor != nil})
}
