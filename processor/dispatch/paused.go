package dispatch

import "time"

// reasonPaused parks a payout of a paused environment (the kill switch).
const reasonPaused = "paused"

// pausedRecheck is how long a paused payout stays parked before dispatch
// looks again: a resume reaches it within this time.
const pausedRecheck = 2 * time.Second

// Pauses tells whether an environment's payouts are paused.
type Pauses interface {
	Paused(merchantID, environment string) bool
}

// parkPaused parks a claimed payout of a paused environment before its
// first send: only one whose transfer call is recorded with the claim and
// not yet made (a payout that may already be at its bank goes on, so its
// outcome is asked for, never left unknown). The call is marked not sent
// when the claim is released, so the payout stays cancellable.
func (s *Stage) parkPaused(j *job) (verdict, bool) {
	d := j.claim.Disbursement
	if s.Pauses == nil || j.claim.CallID == 0 || j.called || !s.Pauses.Paused(d.MerchantID, d.Environment) {
		return verdict{}, false
	}
	s.Log.Info("environment paused; parking the payout before its send", "disbursement_id", d.ID, "request_id", j.requestID,
		"merchant_id", d.MerchantID, "environment", d.Environment)
	return parkUntil(time.Now().Add(pausedRecheck), reasonPaused), true
}
