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
}

var (
	finished = verdict{finished: true}
	// abandoned leaves the record unfinished: the partition was revoked or
	// the stage is stopping, and the record comes again to its next owner.
	abandoned = verdict{}
)

func parkUntil(t time.Time, reason string) verdict { return verdict{parkAt: t, reason: reason} }

// run works one job in a lane worker.
func (s *Stage) run(j *job) {
	if !j.part.begin() {
		return
	}
	defer j.part.end()
	v := s.handle(j.part.ctx, j)
	switch {
	case !v.parkAt.IsZero():
		s.park(j, v.parkAt, v.reason)
	case v.finished:
		j.part.finish(j.rec.Offset)
	}
}

// handle brings one payout to a terminal status, parks it, or leaves it to
// the reconciler.
func (s *Stage) handle(ctx context.Context, j *job) verdict {
	id := j.ev.DisbursementID
	retryLater := func(err error) verdict {
		if ctx.Err() != nil {
			return abandoned
		}
		s.Log.Warn("dispatch failed; parking the payout to retry", "disbursement_id", id, "err", err)
		return parkUntil(time.Now().Add(s.parkDelay(j.ev.Attempt)), "error")
	}
	d, err := s.Payouts.Load(ctx, id)
	if errors.Is(err, payout.ErrNotFound) {
		s.Log.Error("dispatch record for an unknown payout", "disbursement_id", id)
		return finished
	}
	if err != nil {
		return retryLater(err)
	}
	if d.Status != payout.Processing {
		return finished // already settled (a redelivery); the outbox announced it
	}
	p := s.Bank.Profile(d.BankCode)
	owner := s.instance + "/" + token()
	ok, until, err := s.Payouts.ClaimLease(ctx, id, owner, s.instance, s.LeaseTTL)
	if err != nil {
		return retryLater(err)
	}
	if !ok {
		// Someone else is on it; come back when their lease ends, in case
		// they died with it.
		return parkUntil(until.Add(time.Second), reasonLeased)
	}
	defer func() {
		if err := s.Payouts.ReleaseLease(context.WithoutCancel(ctx), id, owner); err != nil {
			s.Log.Warn("release lease", "disbursement_id", id, "err", err)
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, s.workLimit(p))
	defer cancel()

	res, v, err := s.outcome(wctx, d, p, owner, j.ev.Attempt)
	switch {
	case err != nil:
		return retryLater(err)
	case v != nil:
		return *v
	}
	if _, err := s.settle(ctx, d, res); err != nil {
		return retryLater(err)
	}
	return finished
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

// settle applies a definite bank answer to the ledger.
func (s *Stage) settle(ctx context.Context, d payout.Disbursement, res connectors.Result) (payout.Disbursement, error) {
	var err error
	switch res.Status {
	case connectors.StatusCompleted, connectors.StatusReturned:
		d, _, err = s.Ledger.Settle(ctx, d.ID, ledger.Outcome{Completed: true})
		if err == nil && res.Status == connectors.StatusReturned {
			d, _, err = s.Ledger.Return(ctx, d.ID)
		}
	case connectors.StatusFailed:
		d, _, err = s.Ledger.Settle(ctx, d.ID, ledger.Outcome{FailureCode: res.FailureCode})
	default:
		return d, fmt.Errorf("bank answered %q for %s", res.Status, d.ID)
	}
	if err != nil {
		return d, fmt.Errorf("settle %s: %w", d.ID, err)
	}
	s.Log.Info("payout settled", "disbursement_id", d.ID, "merchant_id", d.MerchantID,
		"environment", d.Environment, "bank", d.BankCode, "status", d.Status)
	return d, nil
}

// outcome gets the bank's definite answer for a debited payout. Instead of
// an answer it may return a verdict: park (the bank would not take it now)
// or finished (still unknown after UnknownWindow: the reconciler takes
// over), or abandoned when ctx ended.
func (s *Stage) outcome(ctx context.Context, d payout.Disbursement, p connectors.Profile, owner string, parked int) (connectors.Result, *verdict, error) {
	maybeSent, err := s.Payouts.MaybeSent(ctx, d.ID)
	if err != nil {
		return connectors.Result{}, nil, err
	}
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
			if v := unavailable(s.Bank.Admit(d.BankCode)); v != nil {
				return connectors.Result{}, v, nil
			}
			res, err := s.send(ctx, d, owner)
			switch {
			case err == nil && res.Status != connectors.StatusProcessing:
				return res, nil, nil
			case errors.Is(err, payout.ErrLeaseLost):
				// Our lease ran out and someone may have taken the payout
				// over: touch the bank no more; come back after their lease.
				s.Log.Warn("dispatch lease lost before a send; parking the payout", "disbursement_id", d.ID, "bank", d.BankCode)
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
					s.Log.Warn("bank did not take the payout; parking it", "disbursement_id", d.ID, "bank", d.BankCode, "attempts", notSent, "err", err)
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
			res, err := s.Bank.Status(ctx, d.BankCode, d.ID)
			switch {
			case err == nil && res.Status != connectors.StatusProcessing:
				bankCalls.WithLabelValues(d.BankCode, payout.CallStatus, payout.OutcomeAnswered).Inc()
				return res, nil, nil
			case errors.Is(err, connectors.ErrUnknownReference):
				// The bank never received it: sending is safe.
				bankCalls.WithLabelValues(d.BankCode, payout.CallStatus, payout.OutcomeNoSuchRef).Inc()
				s.Log.Warn("bank has no record of the transfer; sending it", "disbursement_id", d.ID, "bank", d.BankCode)
				if err := s.Payouts.MarkNotReceived(ctx, d.ID); err != nil {
					return connectors.Result{}, nil, err
				}
				maybeSent = false
				continue
			case err != nil:
				bankCalls.WithLabelValues(d.BankCode, payout.CallStatus, payout.OutcomeUnknown).Inc()
			}
			if time.Now().After(deadline) {
				s.Log.Warn("payout outcome still unknown; leaving it to the reconciler", "disbursement_id", d.ID,
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

// send makes one recorded transfer call, while owner holds the lease.
func (s *Stage) send(ctx context.Context, d payout.Disbursement, owner string) (connectors.Result, error) {
	callID, err := s.Payouts.StartTransfer(ctx, d.ID, owner, s.Reconcile.After)
	if errors.Is(err, payout.ErrLeaseLost) {
		return connectors.Result{}, err
	}
	if err != nil {
		return connectors.Result{}, fmt.Errorf("%w: %w", connectors.ErrNotSent, err)
	}
	res, err := s.Bank.Transfer(ctx, connectors.TransferRequest{
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
		s.Log.Warn("transfer outcome unknown; will ask the bank", "disbursement_id", d.ID, "bank", d.BankCode, "err", err)
	}
	bankCalls.WithLabelValues(d.BankCode, payout.CallTransfer, outcome).Inc()
	if ferr := s.Payouts.FinishCall(context.WithoutCancel(ctx), callID, outcome); ferr != nil && err == nil {
		err = ferr
	}
	return res, err
}
