package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/internal/retry"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/payout"
)

// verdict is what became of a job.
type verdict struct {
	finished bool      // the record is done with
	parkAt   time.Time // when set: park until then
	reason   string
	// settling: the bank answered and the outcome went to the settle
	// group, which finishes the record once the group commits.
	settling bool
}

var (
	finished = verdict{finished: true}
	settling = verdict{settling: true}
	// abandoned leaves the record unfinished: the partition was revoked or
	// the stage is stopping, and the record comes again to its next owner.
	abandoned = verdict{}
)

func parkUntil(t time.Time, reason string) verdict { return verdict{parkAt: t, reason: reason} }

// run works one claimed job in a lane worker.
func (s *Stage) run(j *job) {
	if !j.part.begin() {
		s.release(j, "")
		return
	}
	defer j.part.end()
	v := s.handle(j.part.ctx, j)
	switch {
	case v.settling:
		return // the settle group ends the claim and finishes the record
	case !v.parkAt.IsZero():
		s.release(j, v.reason)
		s.park(j, v.parkAt, v.reason)
	case v.finished:
		s.release(j, "")
		j.part.finish(j.rec.Offset)
	default:
		s.release(j, "")
	}
}

// release ends a job's claim that did not end in the settle group: the
// transfer call recorded with the claim and never made is marked not sent,
// so the next owner sends without asking the bank first; then the lease is
// released (the next owner need not wait for it to run out).
func (s *Stage) release(j *job, reason string) {
	if j.claim == nil {
		return
	}
	ctx := context.Background()
	if j.claim.CallID != 0 && !j.called {
		if err := s.Payouts.FinishCall(ctx, j.claim.CallID, payout.OutcomeNotSent); err != nil {
			s.Log.Warn("mark unused bank call", "disbursement_id", j.claim.ID, "request_id", j.requestID, "err", err)
		}
	}
	if err := s.Payouts.ReleaseLease(ctx, j.claim.ID, j.claim.Owner); err != nil {
		s.dropped.add(j.claim.Owner, j.claim.ID)
		s.Log.Warn("releasing the lease failed; the heartbeat will delete it", "disbursement_id", j.claim.ID, "request_id", j.requestID,
			"reason", reason, "err", err)
	}
}

// handle brings one claimed payout to a bank outcome (handed to the settle
// group), parks it, or leaves it to the reconciler.
func (s *Stage) handle(ctx context.Context, j *job) verdict {
	d := j.claim.Disbursement
	bank := s.Banks.For(d.Environment) // the payout's own environment, from its row
	p := bank.Profile(d.BankCode)
	if v, held := s.parkPaused(j); held {
		return v
	}
	wctx, cancel := context.WithTimeout(ctx, s.workLimit(p))
	defer cancel()
	if v, failed := s.checkHolder(wctx, j, bank); failed {
		return v
	}
	res, v, err := s.outcome(wctx, j, bank, p)
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return abandoned
		}
		s.Log.Warn("dispatch failed; parking the payout to retry", "disbursement_id", d.ID, "request_id", j.requestID, "err", err)
		return parkUntil(time.Now().Add(s.parkDelay(j.ev.Attempt)), "error")
	case v != nil:
		return *v
	}
	o, err := ledgerOutcome(d, res)
	if err != nil {
		s.Log.Error("bank answer not understood; parking the payout", "disbursement_id", d.ID, "request_id", j.requestID, "err", err)
		return parkUntil(time.Now().Add(s.parkDelay(j.ev.Attempt)), "error")
	}
	s.settler.add(j, o)
	return settling
}

// checkHolder compares a batch item's account_holder_name with the bank's
// name for the account before its first send (single payouts are checked by
// the API before they are accepted). A mismatch, or an account the bank
// says is invalid or closed, fails the payout with its debit returned,
// through the settle group, and the transfer call recorded with the claim
// is marked not sent. failed is false when the payout may go on to its
// bank (no name given, a name that matches, or the bank could not be asked:
// the transfer itself will then tell).
func (s *Stage) checkHolder(ctx context.Context, j *job, bank *connectors.Guard) (verdict, bool) {
	d := j.claim.Disbursement
	if d.AccountHolderName == "" || d.BatchID == nil || j.claim.CallID == 0 || j.called {
		return verdict{}, false
	}
	if !bank.Configured() {
		return verdict{}, false // the transfer parks it: no gateway to ask
	}
	inq, err := bank.Inquire(ctx, d.BankCode, d.AccountNumber)
	if err != nil {
		s.Log.Warn("holder-name check: the bank could not be asked; sending without it", "disbursement_id", d.ID, "request_id", j.requestID, "bank", d.BankCode, "err", err)
		return verdict{}, false
	}
	code := ""
	switch inq.Status {
	case connectors.InquiryInvalid:
		code = payout.InvalidAccount
	case connectors.InquiryClosed:
		code = payout.AccountClosed
	case connectors.InquiryValid:
		if connectors.NameScore(d.AccountHolderName, inq.AccountHolderName) < s.nameThreshold() {
			code = payout.NameMismatch
		}
	}
	if code == "" {
		return verdict{}, false
	}
	if err := s.Payouts.FinishCall(context.WithoutCancel(ctx), j.claim.CallID, payout.OutcomeNotSent); err != nil {
		return parkUntil(time.Now().Add(s.parkDelay(j.ev.Attempt)), "error"), true
	}
	j.claim.CallID = 0 // nothing for the settle group to mark answered
	s.Log.Info("payout failed before its send", "disbursement_id", d.ID, "request_id", j.requestID, "merchant_id", d.MerchantID, "failure_code", code)
	s.settler.add(j, ledger.Outcome{ID: d.ID, FailureCode: code})
	return settling, true
}

func (s *Stage) nameThreshold() float64 {
	if s.NameThreshold > 0 {
		return s.NameThreshold
	}
	return connectors.DefaultNameThreshold
}

// ledgerOutcome turns a bank's definite answer into a ledger outcome.
func ledgerOutcome(d payout.Disbursement, res connectors.Result) (ledger.Outcome, error) {
	switch res.Status {
	case connectors.StatusCompleted:
		return ledger.Outcome{ID: d.ID, Completed: true}, nil
	case connectors.StatusReturned:
		return ledger.Outcome{ID: d.ID, Completed: true, Returned: true}, nil
	case connectors.StatusFailed:
		return ledger.Outcome{ID: d.ID, FailureCode: res.FailureCode}, nil
	}
	return ledger.Outcome{}, fmt.Errorf("bank answered %q for %s", res.Status, d.ID)
}

// workLimit bounds everything a worker does with one payout: its sends,
// then asking about an unknown outcome for UnknownWindow. The lease is
// shorter and renewed by the heartbeat meanwhile.
func (s *Stage) workLimit(p connectors.Profile) time.Duration {
	return time.Duration(p.SendAttempts)*(p.Timeout+p.RetryMax) + s.UnknownWindow + p.Timeout
}

func token() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// settle applies one definite bank answer to the ledger at once (the
// reconciler's path; lanes go through the settle group).
func (s *Stage) settle(ctx context.Context, d payout.Disbursement, res connectors.Result) (payout.Disbursement, error) {
	o, err := ledgerOutcome(d, res)
	if err != nil {
		return d, err
	}
	d, _, err = s.Ledger.Settle(ctx, d.ID, o)
	if err != nil {
		return d, fmt.Errorf("settle %s: %w", d.ID, err)
	}
	s.Log.Info("payout settled", "disbursement_id", d.ID, "request_id", d.RequestID, "merchant_id", d.MerchantID,
		"environment", d.Environment, "bank", d.BankCode, "status", d.Status)
	return d, nil
}

// outcome gets the bank's definite answer for a debited payout. Instead of
// an answer it may return a verdict: park (the bank would not take it now)
// or finished (still unknown after UnknownWindow: the reconciler takes
// over), or abandoned when ctx ended.
func (s *Stage) outcome(ctx context.Context, j *job, bank *connectors.Guard, p connectors.Profile) (connectors.Result, *verdict, error) {
	d, parked := j.claim.Disbursement, j.ev.Attempt
	maybeSent := j.claim.CallID == 0
	backoff := retry.Backoff{Base: p.RetryBase, Max: p.RetryMax}
	var deadline time.Time
	notSent := 0
	unavailable := func(err error) *verdict {
		var ue *connectors.UnavailableError
		if errors.As(err, &ue) {
			v := parkUntil(s.unavailableUntil(ue, parked), ue.Reason)
			return &v
		}
		return nil
	}
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return connectors.Result{}, &abandoned, nil
		}
		wait := backoff.Delay(min(attempt, 6))
		if !maybeSent {
			if v := unavailable(bank.Admit(d.BankCode)); v != nil {
				return connectors.Result{}, v, nil
			}
			res, err := s.send(ctx, j, bank)
			switch {
			case err == nil && res.Status != connectors.StatusProcessing:
				return res, nil, nil
			case errors.Is(err, payout.ErrLeaseLost):
				// Our lease ran out and someone may have taken the payout
				// over: touch the bank no more; come back after their lease.
				s.Log.Warn("dispatch lease lost before a send; parking the payout", "disbursement_id", d.ID, "request_id", j.requestID, "bank", d.BankCode)
				v := parkUntil(time.Now().Add(s.LeaseTTL+time.Second), reasonLeased)
				return connectors.Result{}, &v, nil
			case errors.Is(err, connectors.ErrBankUnavailable):
				return connectors.Result{}, unavailable(err), nil
			case errors.Is(err, connectors.ErrNotSent):
				if ctx.Err() != nil {
					return connectors.Result{}, &abandoned, nil
				}
				notSent++
				if notSent >= p.SendAttempts {
					s.Log.Warn("bank did not take the payout; parking it", "disbursement_id", d.ID, "request_id", j.requestID, "bank", d.BankCode, "attempts", notSent, "err", err)
					v := parkUntil(time.Now().Add(s.parkDelay(parked)), reasonNotSent)
					return connectors.Result{}, &v, nil
				}
				wait = max(connectors.RetryDelay(err), backoff.Delay(notSent-1))
			default:
				// Sent, outcome unknown or still processing: ask, never resend blind.
				maybeSent = true
				wait = 0
			}
		} else {
			if deadline.IsZero() {
				deadline = time.Now().Add(s.UnknownWindow)
			}
			res, err := bank.Status(ctx, d.BankCode, d.ID)
			switch {
			case err == nil && res.Status != connectors.StatusProcessing:
				bankCalls.WithLabelValues(d.Environment, d.BankCode, payout.CallStatus, payout.OutcomeAnswered).Inc()
				return res, nil, nil
			case errors.Is(err, connectors.ErrUnknownReference):
				// The bank never received it: sending is safe.
				bankCalls.WithLabelValues(d.Environment, d.BankCode, payout.CallStatus, payout.OutcomeNoSuchRef).Inc()
				s.Log.Warn("bank has no record of the transfer; sending it", "disbursement_id", d.ID, "request_id", j.requestID, "bank", d.BankCode)
				if err := s.Payouts.MarkNotReceived(ctx, d.ID); err != nil {
					return connectors.Result{}, nil, err
				}
				maybeSent = false
				continue
			case err != nil:
				bankCalls.WithLabelValues(d.Environment, d.BankCode, payout.CallStatus, payout.OutcomeUnknown).Inc()
			}
			if time.Now().After(deadline) {
				s.Log.Warn("payout outcome still unknown; leaving it to the reconciler", "disbursement_id", d.ID, "request_id", j.requestID,
					"merchant_id", d.MerchantID, "bank", d.BankCode, "window", s.UnknownWindow)
				return connectors.Result{}, &finished, nil
			}
		}
		if err := sleep(ctx, wait); err != nil {
			return connectors.Result{}, &abandoned, nil
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// send makes one recorded transfer call while the job holds the lease: the
// first under the call recorded with the claim, any later one (after the
// bank certainly did not take the last) under a new record, fenced by the
// lease in Postgres.
func (s *Stage) send(ctx context.Context, j *job, bank *connectors.Guard) (connectors.Result, error) {
	d := j.claim.Disbursement
	callID := j.claim.CallID
	if j.called || callID == 0 {
		var err error
		callID, err = s.Payouts.StartTransfer(ctx, d.ID, j.claim.Owner, s.Reconcile.After)
		if errors.Is(err, payout.ErrLeaseLost) {
			return connectors.Result{}, err
		}
		if err != nil {
			return connectors.Result{}, fmt.Errorf("%w: %w", connectors.ErrNotSent, err)
		}
		j.claim.CallID = callID
	} else if !s.leaseFresh(j) {
		// The claim's call was recorded up front; send under it only while
		// the heartbeat has kept our leases alive.
		return connectors.Result{}, payout.ErrLeaseLost
	}
	j.called = true
	res, err := bank.Transfer(ctx, connectors.TransferRequest{
		Reference:         d.ID,
		BankCode:          d.BankCode,
		AccountNumber:     d.AccountNumber,
		AccountHolderName: d.AccountHolderName,
		Amount:            d.Amount,
		Currency:          d.Currency,
	})
	outcome := payout.OutcomeAnswered
	switch {
	case errors.Is(err, connectors.ErrNotSent):
		outcome = payout.OutcomeNotSent
	case err != nil:
		outcome = payout.OutcomeUnknown
		s.Log.Warn("transfer outcome unknown; will ask the bank", "disbursement_id", d.ID, "request_id", j.requestID, "bank", d.BankCode, "err", err)
	}
	bankCalls.WithLabelValues(d.Environment, d.BankCode, payout.CallTransfer, outcome).Inc()
	if outcome != payout.OutcomeAnswered { // an answered call ends with the settle group
		if ferr := s.Payouts.FinishCall(context.WithoutCancel(ctx), callID, outcome); ferr != nil && err == nil {
			err = ferr
		}
	}
	return res, err
}
