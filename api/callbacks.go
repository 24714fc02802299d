package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/disburse/disburse/callbacks"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
)

// Page sizes of the lists in this file.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// listEvents serves GET /v1/events: the environment's payout status changes in a stable order.
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	limit, prob := queryLimit(r.URL.Query(), defaultPageSize, maxPageSize)
	if prob != nil {
		writeError(w, prob)
		return
	}
	after := r.URL.Query().Get("after")
	evs, next, err := s.Payouts.Events(r.Context(), p.MerchantID, p.Environment, after, limit)
	if errors.Is(err, payout.ErrBadCursor) {
		writeError(w, badQuery("after", "INVALID_CURSOR", "after must be the id of an event of this feed you read, or absent to start at the beginning"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": evs, "next_cursor": next, "has_more": len(evs) == limit})
}

// listCallbacks serves GET /v1/callbacks: the delivery log, newest first.
func (s *Server) listCallbacks(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	q := r.URL.Query()
	status := q.Get("status")
	switch status {
	case "", callbacks.Pending, callbacks.Delivered, callbacks.Failed:
	default:
		writeError(w, badQuery("status", "INVALID_VALUE", "status must be pending, delivered or failed"))
		return
	}
	limit, prob := queryLimit(q, defaultPageSize, 200)
	if prob != nil {
		writeError(w, prob)
		return
	}
	cursor := q.Get("cursor")
	if len(cursor) > 64 {
		writeError(w, cursorProblem("cursor"))
		return
	}
	if cursor != "" {
		ok, err := s.Callbacks.ValidCursor(r.Context(), p.MerchantID, p.Environment, cursor)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		if !ok {
			writeError(w, cursorProblem("cursor"))
			return
		}
	}
	list, err := s.Callbacks.List(r.Context(), p.MerchantID, p.Environment, status, cursor, limit)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeIDPage(w, list, limit, func(x callbacks.Callback) string { return x.ID })
}

func (s *Server) getCallback(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	c, err := s.Callbacks.Get(r.Context(), p.MerchantID, p.Environment, r.PathValue("id"))
	if errors.Is(err, callbacks.ErrNotFound) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such callback"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// redeliverCallback serves POST /v1/callbacks/{id}/redeliver.
func (s *Server) redeliverCallback(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	if prob := decodeEmpty(w, r); prob != nil {
		writeError(w, prob)
		return
	}
	c, err := s.Callbacks.Redeliver(r.Context(), p.MerchantID, p.Environment, r.PathValue("id"))
	if errors.Is(err, callbacks.ErrNotFound) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "no such callback"))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.logFor(r.Context()).Info("callback redelivery requested", "callback_id", c.ID, "merchant_id", p.MerchantID, "environment", p.Environment)
	writeJSON(w, http.StatusAccepted, c)
}

// rotateCallbackSecret serves POST /v1/settings/callback-secret/rotate.
func (s *Server) rotateCallbackSecret(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	if prob := decodeEmpty(w, r); prob != nil {
		writeError(w, prob)
		return
	}
	if p.Retiring {
		writeError(w, retiringKey())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	rot, err := s.Callbacks.RotateSecret(r.Context(), p.MerchantID, p.Environment)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.Log.Info("callback secret rotated", "merchant_id", p.MerchantID, "environment", p.Environment,
		"previous_expires_at", rot.PreviousSecretExpiresAt)
	writeJSON(w, http.StatusOK, rot)
}

// checkCallbackURL is the check PATCH /v1/settings runs on callback_url
// before storing anything: a refused URL is a 422 naming the field.
func (s *Server) checkCallbackURL(ctx context.Context, environment, raw string) *problem {
	err := s.CallbackPolicy.CheckURL(ctx, environment, raw)
	var ue *callbacks.URLError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ue):
		return newProblem(http.StatusUnprocessableEntity, CodeValidation, "callback_url is not allowed",
			payout.FieldError{Field: "callback_url", Code: ue.Code, Message: ue.Message})
	default:
		return newProblem(http.StatusServiceUnavailable, CodeUnavailable, "could not check callback_url; retry")
	}
}
