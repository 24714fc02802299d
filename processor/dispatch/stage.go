// Package dispatch is the consumer stage that sends debited payouts to their
// banks and settles the outcome. It reads the dispatch topic (keyed by
// disbursement id, so one merchant's payouts spread over every partition),
// works on the payouts of a polled batch concurrently, and commits the batch
// once every payout in it has a definite outcome.
//
// Sending is guarded so a payout is never paid twice: each transfer call is
// recorded in Postgres before it is made; a payout whose transfer may have
// reached the bank (a timeout, a 5xx, a crash mid-call) is resolved by asking
// the bank for the status of its reference, and sent again only when the
// bank says it has never received it. The bank also dedups on the reference.
package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/batch"
	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/internal/retry"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/processor"
	"github.com/disburse/disburse/schemas/events"
)

var bankCalls = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "disburse_dispatch_bank_calls_total",
	Help: "Calls to banks by bank, kind (transfer, status) and outcome.",
}, []string{"bank", "kind", "outcome"})

// Stage sends payouts to banks.
type Stage struct {
	Payouts *payout.Store
	Ledger  *ledger.Store
	Batches *batch.Store
	Bank    connectors.Connector
	Kafka   *kgo.Client
	Topics  events.Topics
	Log     *slog.Logger

	// MaxInFlight bounds the payouts of one batch at their banks at once (default 64).
	MaxInFlight int
	// SendAttempts bounds sends that the bank certainly did not receive (default 5).
	SendAttempts int
	// Backoff spaces retries and status queries (default 200ms doubling to 5s).
	Backoff retry.Backoff
	// UnknownWindow is how long a sent payout's status is asked for before the
	// batch is given up and retried later (default 2m).
	UnknownWindow time.Duration
}

func (s *Stage) defaults() {
	if s.MaxInFlight <= 0 {
		s.MaxInFlight = 64
	}
	if s.SendAttempts <= 0 {
		s.SendAttempts = 5
	}
	if s.Backoff.Base <= 0 {
		s.Backoff = retry.Backoff{Base: 200 * time.Millisecond, Max: 5 * time.Second}
	}
	if s.UnknownWindow <= 0 {
		s.UnknownWindow = 2 * time.Minute
	}
}

// Run consumes until ctx ends.
func (s *Stage) Run(ctx context.Context) error {
	s.defaults()
	return processor.Consume(ctx, "dispatch", s.Kafka, 500, s.Log, s.Handle)
}

// Handle sends and settles every payout of a batch, then publishes their
// status events.
func (s *Stage) Handle(ctx context.Context, records []*kgo.Record) error {
	s.defaults()
	var (
		mu       sync.Mutex
		produce  []*kgo.Record
		settled  []payout.Disbursement
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, s.MaxInFlight)
	)
	seen := map[string]bool{}
	for _, r := range records {
		var ev events.Dispatch
		if err := json.Unmarshal(r.Value, &ev); err != nil || ev.DisbursementID == "" {
			s.Log.Error("skipping malformed dispatch record", "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		if seen[ev.DisbursementID] {
			continue
		}
		seen[ev.DisbursementID] = true
		wg.Add(1)
		sem <- struct{}{}
		go func(id string) {
			defer wg.Done()
			defer func() { <-sem }()
			d, err := s.process(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			if d != nil {
				produce = append(produce, processor.StatusEvent(s.Topics.Status, *d))
				settled = append(settled, *d)
			}
		}(ev.DisbursementID)
	}
	wg.Wait()
	// Publish what finished even when some payouts failed: their events are
	// true, and the failed ones are retried with the batch.
	if err := processor.Produce(ctx, s.Kafka, produce...); err != nil {
		return err
	}
	done, err := processor.BatchCompletions(ctx, s.Batches, s.Topics.Batches, settled)
	if err != nil {
		return err
	}
	if err := processor.Produce(ctx, s.Kafka, done...); err != nil {
		return err
	}
	return firstErr
}

// process brings one payout to a terminal status, or returns an error to
// have the batch retried. It returns the payout to announce, or nil.
func (s *Stage) process(ctx context.Context, id string) (*payout.Disbursement, error) {
	d, err := s.Payouts.Load(ctx, id)
	if errors.Is(err, payout.ErrNotFound) {
		s.Log.Error("dispatch record for an unknown payout", "disbursement_id", id)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if d.Status != payout.Processing {
		return &d, nil // already settled: announce again, harmlessly
	}
	res, err := s.outcome(ctx, d)
	if err != nil {
		return nil, err
	}
	switch res.Status {
	case connectors.StatusCompleted, connectors.StatusReturned:
		d, _, err = s.Ledger.Settle(ctx, d.ID, ledger.Outcome{Completed: true})
		if err == nil && res.Status == connectors.StatusReturned {
			d, _, err = s.Ledger.Return(ctx, d.ID)
		}
	case connectors.StatusFailed:
		d, _, err = s.Ledger.Settle(ctx, d.ID, ledger.Outcome{FailureCode: res.FailureCode})
	default:
		return nil, fmt.Errorf("bank answered %q for %s", res.Status, d.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("settle %s: %w", d.ID, err)
	}
	s.Log.Info("payout settled", "disbursement_id", d.ID, "merchant_id", d.MerchantID,
		"environment", d.Environment, "bank", d.BankCode, "status", d.Status)
	return &d, nil
}

// outcome gets the bank's definite answer for a debited payout.
func (s *Stage) outcome(ctx context.Context, d payout.Disbursement) (connectors.Result, error) {
	maybeSent, err := s.Payouts.MaybeSent(ctx, d.ID)
	if err != nil {
		return connectors.Result{}, err
	}
	deadline := time.Now().Add(s.UnknownWindow)
	notSent := 0
	for attempt := 0; ; attempt++ {
		if !maybeSent {
			res, err := s.send(ctx, d)
			switch {
			case err == nil && res.Status != connectors.StatusProcessing:
				return res, nil
			case errors.Is(err, connectors.ErrNotSent):
				notSent++
				if notSent >= s.SendAttempts {
					return connectors.Result{}, fmt.Errorf("%s: bank %s unavailable after %d attempts: %w", d.ID, d.BankCode, notSent, err)
				}
			default:
				maybeSent = true // sent, outcome unknown or still processing: ask, never resend blind
			}
		} else {
			res, err := s.Bank.Status(ctx, d.BankCode, d.ID)
			switch {
			case err == nil && res.Status != connectors.StatusProcessing:
				bankCalls.WithLabelValues(d.BankCode, payout.CallStatus, payout.OutcomeAnswered).Inc()
				return res, nil
			case errors.Is(err, connectors.ErrUnknownReference):
				// The bank never received it: sending is safe.
				bankCalls.WithLabelValues(d.BankCode, payout.CallStatus, payout.OutcomeNoSuchRef).Inc()
				s.Log.Warn("bank has no record of the transfer; sending it", "disbursement_id", d.ID, "bank", d.BankCode)
				if err := s.Payouts.MarkNotReceived(ctx, d.ID); err != nil {
					return connectors.Result{}, err
				}
				maybeSent = false
				continue
			case err != nil:
				bankCalls.WithLabelValues(d.BankCode, payout.CallStatus, payout.OutcomeUnknown).Inc()
			}
		}
		if time.Now().After(deadline) {
			return connectors.Result{}, fmt.Errorf("%s: outcome at bank %s still unknown after %s", d.ID, d.BankCode, s.UnknownWindow)
		}
		if err := s.Backoff.Sleep(ctx, min(attempt, 6)); err != nil {
			return connectors.Result{}, err
		}
	}
}

// send makes one recorded transfer call.
func (s *Stage) send(ctx context.Context, d payout.Disbursement) (connectors.Result, error) {
	callID, err := s.Payouts.StartCall(ctx, d.ID, payout.CallTransfer)
	if err != nil {
		return connectors.Result{}, err
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
