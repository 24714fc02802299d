package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/disburse/disburse/controls"
	"github.com/disburse/disburse/hold"
	"github.com/disburse/disburse/merchant"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/schemas/events"
)

// CodePausedByOperator: the merchant tried to resume an operator's pause.
const CodePausedByOperator = "PAUSED_BY_OPERATOR"

// maxVelocity bounds a velocity limit (an amount or a count).
const maxVelocity = int64(1) << 53

func (s *Server) controlStore() *controls.Store { return controls.NewStore(s.Ledger.DB()) }

// getControls serves GET /v1/controls.
func (s *Server) getControls(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	c, err := s.controlStore().Get(r.Context(), p.MerchantID, p.Environment)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// readLimits decodes and range-checks a body of velocity limits.
func readLimits(w http.ResponseWriter, r *http.Request, limit int64) (controls.Limits, *problem) {
	var in controls.Limits
	if prob := decodeJSON(w, r, limit, &in); prob != nil {
		return in, prob
	}
	if fields := CheckLimits(in); len(fields) > 0 {
		return in, newProblem(http.StatusUnprocessableEntity, CodeValidation, "the limits have invalid fields", fields...)
	}
	return in, nil
}

// CheckLimits range-checks velocity limits (each 0, no limit, to 2^53).
func CheckLimits(in controls.Limits) []payout.FieldError {
	var fields []payout.FieldError
	for i, v := range [4]int64{in.MaxAmountPerHour, in.MaxCountPerHour, in.MaxAmountPerDay, in.MaxCountPerDay} {
		if v < 0 || v > maxVelocity {
			fields = append(fields, payout.FieldError{Field: controls.FieldNames[i], Code: "OUT_OF_RANGE",
				Message: controls.FieldNames[i] + " must be 0 (no limit) to 2^53"})
		}
	}
	return fields
}

// setVelocity serves PUT /v1/controls/velocity: the merchant's limits,
// each at most the operator's ceiling.
func (s *Server) setVelocity(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	in, prob := readLimits(w, r, maxSettingsBody)
	if prob != nil {
		writeError(w, prob)
		return
	}
	c, fields, err := s.SetVelocity(r.Context(), p, in)
	if len(fields) > 0 {
		writeError(w, newProblem(http.StatusUnprocessableEntity, CodeValidation, "a limit is above the operator's ceiling", fields...))
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// SetVelocity sets the merchant's velocity limits (checked by
// CheckLimits) as p.KeyID, each at most the operator's ceiling: a limit
// above it comes back as an OVER_CEILING field error and changes nothing.
// The change is in the settings audit log.
func (s *Server) SetVelocity(ctx context.Context, p merchant.Principal, in controls.Limits) (controls.Controls, []payout.FieldError, error) {
	c, err := s.controlStore().SetLimits(ctx, p.MerchantID, p.Environment, p.KeyID, in, s.now())
	if errors.Is(err, controls.ErrOverCeiling) {
		cur, gerr := s.controlStore().Get(ctx, p.MerchantID, p.Environment)
		if gerr != nil {
			return c, nil, gerr
		}
		var fields []payout.FieldError
		for _, f := range in.Within(cur.Ceiling) {
			fields = append(fields, payout.FieldError{Field: f, Code: "OVER_CEILING", Message: f + " must be set and at most the operator's ceiling (GET /v1/controls)"})
		}
		return cur, fields, nil
	}
	if err == nil {
		s.Log.Info("velocity limits set", "merchant_id", p.MerchantID, "environment", p.Environment, "by_key_id", p.KeyID, "limits", in)
	}
	return c, nil, err
}

// Controls are the environment's payout controls (GET /v1/controls).
func (s *Server) Controls(ctx context.Context, p merchant.Principal) (controls.Controls, error) {
	return s.controlStore().Get(ctx, p.MerchantID, p.Environment)
}

type pauseRequest struct {
	Reason string `json:"reason"`
}

// readPause decodes an optional {reason}.
func readPause(w http.ResponseWriter, r *http.Request) (string, *problem) {
	var in pauseRequest
	if prob := decodeOptional(w, r, &in); prob != nil {
		return "", prob
	}
	reason := strings.TrimSpace(in.Reason)
	if fe := CheckReason(reason); fe != nil {
		return "", newProblem(http.StatusUnprocessableEntity, CodeValidation, "reason must be at most 200 characters without control characters", *fe)
	}
	return reason, nil
}

// CheckReason checks a pause's reason (already trimmed).
func CheckReason(reason string) *payout.FieldError {
	if utf8.RuneCountInString(reason) > 200 || strings.IndexFunc(reason, unicode.IsControl) >= 0 {
		return &payout.FieldError{Field: "reason", Code: "INVALID_VALUE", Message: "at most 200 characters without control characters"}
	}
	return nil
}

// pausePayouts serves POST /v1/controls/pause: from its answer on, no
// payout of the environment is debited, and debited ones are not sent.
func (s *Server) pausePayouts(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	reason, prob := readPause(w, r)
	if prob != nil {
		writeError(w, prob)
		return
	}
	c, err := s.PausePayouts(r.Context(), p, reason)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// PausePayouts is the merchant's pause (POST /v1/controls/pause) by
// p.KeyID with reason (checked by CheckReason): from its return no payout
// of the environment is debited, and debited ones are not sent.
func (s *Server) PausePayouts(ctx context.Context, p merchant.Principal, reason string) (controls.Controls, error) {
	c, err := s.controlStore().Pause(ctx, p.MerchantID, p.Environment, controls.ByMerchant, p.KeyID, reason, s.now())
	if err == nil {
		s.Log.Warn("payouts paused", "merchant_id", p.MerchantID, "environment", p.Environment, "by", p.KeyID, "reason", reason)
	}
	return c, err
}

// resumePayouts serves POST /v1/controls/resume.
func (s *Server) resumePayouts(w http.ResponseWriter, r *http.Request, p merchant.Principal) {
	if prob := decodeEmpty(w, r); prob != nil {
		writeError(w, prob)
		return
	}
	c, err := s.ResumePayouts(r.Context(), p)
	switch {
	case errors.Is(err, controls.ErrOperatorPause):
		writeError(w, newProblem(http.StatusConflict, CodePausedByOperator, "the operator paused this environment's payouts; only the operator resumes them"))
	case errors.Is(err, ErrNotRequeued):
		notRequeued(w)
	case err != nil:
		s.internalError(w, r, err)
	default:
		writeJSON(w, http.StatusOK, c)
	}
}

// notRequeued answers 503 to a resume whose held payouts were not all queued.
func notRequeued(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	writeError(w, newProblem(http.StatusServiceUnavailable, CodeUnavailable, "resumed, but the held payouts could not all be queued; resume again"))
}

// ErrNotRequeued: resumed, but the held payouts could not all be queued
// again; resuming again queues them (the debit dedups).
var ErrNotRequeued = errors.New("api: resumed, but the held payouts could not all be queued; resume again")

// ResumePayouts lifts the merchant's pause (POST /v1/controls/resume) by
// p.KeyID and, once nothing pauses the environment, queues its held
// payouts again. controls.ErrOperatorPause: only the operator lifts the
// operator's pause; ErrNotRequeued: resumed but not all queued.
func (s *Server) ResumePayouts(ctx context.Context, p merchant.Principal) (controls.Controls, error) {
	c, err := s.controlStore().Resume(ctx, p.MerchantID, p.Environment, controls.ByMerchant, p.KeyID, s.now())
	if err != nil {
		return c, err
	}
	return c, s.requeue(ctx, p.MerchantID, p.Environment, c)
}

// requeue publishes the held payouts again once nothing pauses the
// environment (ErrNotRequeued when that fails).
func (s *Server) requeue(ctx context.Context, merchantID, environment string, c controls.Controls) error {
	if c.Paused {
		return nil
	}
	n, err := s.republish(ctx, merchantID, environment)
	if err != nil {
		s.Log.Error("publish held payouts after resume", "merchant_id", merchantID, "environment", environment, "err", err)
		return ErrNotRequeued
	}
	s.Log.Info("payouts resumed", "merchant_id", merchantID, "environment", environment, "requeued", n)
	return nil
}

// finishResume publishes the held payouts again once nothing pauses the
// environment, then answers the controls. A failed publish answers 503:
// resuming again publishes again (the debit dedups).
func (s *Server) finishResume(w http.ResponseWriter, r *http.Request, merchantID, environment string, c controls.Controls) {
	if err := s.requeue(r.Context(), merchantID, environment, c); err != nil {
		notRequeued(w)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// republish produces the request records of the environment's PENDING
// payouts again.
func (s *Server) republish(ctx context.Context, merchantID, environment string) (int, error) {
	reqs, err := s.controlStore().Pending(ctx, merchantID, environment)
	if err != nil {
		return 0, err
	}
	return len(reqs), s.produceRequests(ctx, reqs)
}

// produceRequests publishes request records (hold.Publisher).
func (s *Server) produceRequests(ctx context.Context, reqs []events.Request) error {
	return hold.Publisher(s.Kafka, s.Topics.Requests)(ctx, reqs)
}

// operatorEnv reads the merchant and environment of an operator call and
// checks that the environment is active (404 otherwise).
func (s *Server) operatorEnv(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	id, ok := s.merchantID(w, r)
	if !ok {
		return "", "", false
	}
	env, ok := s.environment(w, r)
	if !ok {
		return "", "", false
	}
	if _, err := s.Merchants.Settings(r.Context(), id, env); errors.Is(err, merchant.ErrNotFound) {
		writeError(w, newProblem(http.StatusNotFound, CodeNotFound, "this merchant's "+env+" is not active"))
		return "", "", false
	} else if err != nil {
		s.internalError(w, r, err)
		return "", "", false
	}
	return id, env, true
}

// setVelocityCeiling serves the operator's PUT .../velocity-ceiling.
func (s *Server) setVelocityCeiling(w http.ResponseWriter, r *http.Request) {
	id, env, ok := s.operatorEnv(w, r)
	if !ok {
		return
	}
	in, prob := readLimits(w, r, maxOperatorBody)
	if prob != nil {
		writeError(w, prob)
		return
	}
	c, err := s.controlStore().SetCeiling(r.Context(), id, env, in, s.now())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.audit(r.Context(), "velocity_ceiling.set", id, map[string]any{"environment": env, "ceiling": in})
	writeJSON(w, http.StatusOK, c)
}

// operatorPause serves the operator's POST .../pause.
func (s *Server) operatorPause(w http.ResponseWriter, r *http.Request) {
	id, env, ok := s.operatorEnv(w, r)
	if !ok {
		return
	}
	reason, prob := readPause(w, r)
	if prob != nil {
		writeError(w, prob)
		return
	}
	c, err := s.controlStore().Pause(r.Context(), id, env, controls.ByOperator, merchant.ActorOperator, reason, s.now())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.audit(r.Context(), "payouts.pause", id, map[string]any{"environment": env, "reason": reason})
	writeJSON(w, http.StatusOK, c)
}

// operatorResume serves the operator's POST .../resume: it lifts the
// operator's pause (a merchant's own pause stays).
func (s *Server) operatorResume(w http.ResponseWriter, r *http.Request) {
	id, env, ok := s.operatorEnv(w, r)
	if !ok {
		return
	}
	if prob := decodeEmpty(w, r); prob != nil {
		writeError(w, prob)
		return
	}
	c, err := s.controlStore().Resume(r.Context(), id, env, controls.ByOperator, merchant.ActorOperator, s.now())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	s.audit(r.Context(), "payouts.resume", id, map[string]any{"environment": env})
	s.finishResume(w, r, id, env, c)
}

// decodeOptional reads a body that may be absent (or {}), else a JSON
// object of at most maxSettingsBody into v.
func decodeOptional(w http.ResponseWriter, r *http.Request, v any) *problem {
	if r.ContentLength != 0 && r.Header.Get("Content-Type") != "" {
		return decodeJSON(w, r, maxSettingsBody, v)
	}
	return decodeEmpty(w, r)
}
