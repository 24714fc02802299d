package dashboard

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/disburse/disburse/api"
	"github.com/disburse/disburse/controls"
	"github.com/disburse/disburse/payout"
)

// pauseSetting is the settings audit log's name of a pause or resume
// (controls.Store writes it).
const pauseSetting = "payouts_paused"

// pauseAuditDepth is how many recent audit entries are searched for who
// paused.
const pauseAuditDepth = 200

// pauseState is what the banner of every page and the controls page say
// of a pause.
type pauseState struct {
	controls.Controls
	By string // who paused (the settings audit log's actor), when found
}

// pauseOf reads the environment's controls and, when paused, who paused.
func (s *Server) pauseOf(ctx context.Context, rq *request) (pauseState, error) {
	c, err := s.API.Controls(ctx, rq.principal())
	if err != nil || !c.Paused {
		return pauseState{Controls: c}, err
	}
	st := pauseState{Controls: c}
	log, err := s.API.Merchants.AuditLog(ctx, rq.MerchantID, rq.Environment, 0, pauseAuditDepth)
	if err != nil {
		return st, err
	}
	for _, e := range log {
		if e.Setting == pauseSetting {
			st.By = e.Actor
			break
		}
	}
	return st, nil
}

type controlsView struct {
	Pause       pauseState
	Form        controls.Limits // the limits the form shows
	FieldErrors []payout.FieldError
}

// controlsPage shows the pause switch and the velocity limits with the
// operator's ceiling and the current usage.
func (s *Server) controlsPage(w http.ResponseWriter, r *http.Request, rq *request) {
	s.showControls(w, r, rq, controlsView{}, "", "")
}

func (s *Server) showControls(w http.ResponseWriter, r *http.Request, rq *request, v controlsView, flash, errText string) {
	st, err := s.pauseOf(r.Context(), rq)
	if err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	v.Pause = st
	if v.FieldErrors == nil {
		v.Form = st.Limits
	}
	s.view(w, r, rq, "controls", "controls", "ctl.title", v, flash, errText)
}

// pause stops the environment's payouts at once (api.Server.PausePayouts).
func (s *Server) pause(w http.ResponseWriter, r *http.Request, rq *request) {
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if fe := api.CheckReason(reason); fe != nil {
		s.showControls(w, r, rq, controlsView{}, "", T(rq.lang, "ctl.badreason"))
		return
	}
	if _, err := s.API.PausePayouts(r.Context(), rq.principal(), reason); err != nil {
		s.internal(w, r, rq.lang, err)
		return
	}
	s.Log.Warn("payouts paused from the dashboard", "merchant_id", rq.MerchantID, "environment", rq.Environment, "user_id", rq.ID)
	s.showControls(w, r, rq, controlsView{}, T(rq.lang, "ctl.paused"), "")
}

// resume lifts the merchant's pause (api.Server.ResumePayouts); the
// operator's pause stays until the operator lifts it.
func (s *Server) resume(w http.ResponseWriter, r *http.Request, rq *request) {
	_, err := s.API.ResumePayouts(r.Context(), rq.principal())
	switch {
	case errors.Is(err, controls.ErrOperatorPause):
		s.showControls(w, r, rq, controlsView{}, "", T(rq.lang, "ctl.operatoronly"))
		return
	case errors.Is(err, api.ErrNotRequeued):
		s.showControls(w, r, rq, controlsView{}, "", T(rq.lang, "ctl.notrequeued"))
		return
	case err != nil:
		s.internal(w, r, rq.lang, err)
		return
	}
	s.Log.Info("payouts resumed from the dashboard", "merchant_id", rq.MerchantID, "environment", rq.Environment, "user_id", rq.ID)
	s.showControls(w, r, rq, controlsView{}, T(rq.lang, "ctl.resumed"), "")
}

// saveVelocity sets the velocity limits (owner) through
// api.Server.SetVelocity: the API's range check and operator ceiling.
func (s *Server) saveVelocity(w http.ResponseWriter, r *http.Request, rq *request) {
	var fes []payout.FieldError
	l := controls.Limits{
		MaxAmountPerHour: formInt(r, controls.FieldNames[0], &fes),
		MaxCountPerHour:  formInt(r, controls.FieldNames[1], &fes),
		MaxAmountPerDay:  formInt(r, controls.FieldNames[2], &fes),
		MaxCountPerDay:   formInt(r, controls.FieldNames[3], &fes),
	}
	if len(fes) == 0 {
		fes = api.CheckLimits(l)
	}
	if len(fes) == 0 {
		var err error
		if _, fes, err = s.API.SetVelocity(r.Context(), rq.principal(), l); err != nil {
			s.internal(w, r, rq.lang, err)
			return
		}
	}
	if len(fes) > 0 {
		s.showControls(w, r, rq, controlsView{Form: l, FieldErrors: fes}, "", fieldMessage(fes))
		return
	}
	s.showControls(w, r, rq, controlsView{}, T(rq.lang, "set.saved"), "")
}
