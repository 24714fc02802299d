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
	mt := batch.MediaType(r.Header.Get("Content-Type"))
	if mt == "" {
		writeError(w, newProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "send a batch as application/json or text/csv"))
		return
	}
	if r.ContentLength > maxBatchBody {
		writeError(w, newProblem(http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("a batch body must be at most %d bytes", maxBatchBody)))
		return
	}
	header := batch.Header{}
	q := r.URL.Query()
	if mt == "text/csv" {
		header.ReferenceID, header.Mode = q.Get("reference_id"), q.Get("mode")
	} else if q.Has("reference_id") || q.Has("mode") {
		var fields []payout.FieldError
		for _, name := range []string{"reference_id", "mode"} {
			if q.Has(name) {
				fields = append(fields, payout.FieldError{Field: name, Code: "CSV_ONLY", Message: "a JSON batch carries " + name + " in its body, not the query"})
			}
		}
		writeError(w, newProblem(http.StatusBadRequest, CodeValidation, "a JSON batch carries reference_id and mode in its body, not the query", fields...))
		return
	}
	// The idempotency fingerprint covers the raw body and, for CSV, the query.
	hash := sha256.New()
	fmt.Fprintf(hash, "%s\x00%s\x00%s\x00", mt, header.ReferenceID, header.Mode)
	body := io.TeeReader(http.MaxBytesReader(w, r.Body, maxBatchBody), hash)
	parsed, err := batch.Read(body, mt, header)
	var tooBig *http.MaxBytesError
	var format *batch.FormatError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, newProblem(http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("a batch body must be at most %d bytes", maxBatchBody)))
		return
	case errors.Is(err, batch.ErrTooManyItems):
		writeError(w, newProblem(http.StatusRequestEntityTooLarge, CodeTooManyItems, fmt.Sprintf("a batch holds at most %d items; split it", batch.MaxItems)))
		return
	case errors.As(err, &format) && mt == "application/json" && format.Field != "":
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, format.Error(),
			payout.FieldError{Field: format.Field, Code: "UNKNOWN_FIELD", Message: "remove this field"}))
		return
	case errors.As(err, &format) && mt == "application/json":
		writeError(w, newProblem(http.StatusBadRequest, CodeInvalidJSON, format.Error()))
		return
	case errors.As(err, &format):
		writeError(w, newProblem(http.StatusBadRequest, CodeInvalidBatch, format.Error()))
		return
	case err != nil:
		writeError(w, newProblem(http.StatusBadRequest, CodeInvalidBatch, "could not read the batch body"))
		return
	}
	if fields := parsed.Header.Validate(); len(fields) > 0 {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, "the batch has invalid fields", fields...))
		return
	}
	if parsed.Rows == 0 {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, "the batch has no items"))
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
	_, _ = io.Copy(io.Discard, body) // anything after the batch still counts in the fingerprint
	accepted, replay, err := s.SubmitBatch(r.Context(), p, key, hash.Sum(nil), parsed)
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
	w.Header().Set("Location", "/v1/batches/"+accepted.ID)
	writeJSON(w, http.StatusAccepted, accepted)
}

// ErrNotQueued: SubmitBatch stored the batch but could not queue all of its
// items; submitting it again with the same idempotency key queues them.
var ErrNotQueued = errors.New("api: the batch is stored but not all items could be queued")

// SubmitBatch stores a parsed batch under the idempotency key (hash is the
// fingerprint of what was submitted) and queues its PENDING items for the
// ledger stage: what POST /v1/batches does once the body is read, shared
// with the dashboard's upload. replay reports a batch submitted before
// with the same key and hash.
func (s *Server) SubmitBatch(ctx context.Context, p merchant.Principal, key string, hash []byte, parsed *batch.Parsed) (accepted batch.Accepted, replay bool, err error) {
	accepted, pending, replay, err := batch.NewStore(s.Ledger.DB()).Create(ctx, p.MerchantID, p.Environment, key, hash, parsed)
	if err != nil {
		return accepted, replay, err
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
	writeJSON(w, http.StatusOK, b)
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
	case "", payout.Pending, payout.Processing, payout.Completed, payout.Failed, payout.Reversed, payout.Cancelled:
	default:
		writeError(w, badQuery("status", "INVALID_VALUE", "status must be one of PENDING, PROCESSING, COMPLETED, FAILED, REVERSED, CANCELLED"))
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
