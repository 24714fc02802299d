package dispatch

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/disburse/disburse/internal/retry"
	"github.com/disburse/disburse/ledger"
	"github.com/disburse/disburse/payout"
)

var settleGroup = promauto.NewHistogram(prometheus.HistogramOpts{
	Name:    "disburse_dispatch_settle_group_size",
	Help:    "Bank outcomes settled together in one transaction.",
	Buckets: prometheus.ExponentialBuckets(1, 2, 11),
})

// settler gathers the bank outcomes of every lane and settles them in
// groups: one transaction per group (ledger.SettleAll), which also ends the
// group's claims (bank calls answered, leases released). A group closes when
// it holds SettleGroup outcomes or SettleEvery has passed since its first;
// only after its commit are the group's records finished, so a crash before
// it redelivers them and the next owner asks the bank, whose answer is the
// same.
type settler struct {
	s     *Stage
	mu    sync.Mutex
	items []settleItem
	kick  chan struct{}
}

type settleItem struct {
	j *job
	o ledger.Outcome
}

func newSettler(s *Stage) *settler {
	return &settler{s: s, kick: make(chan struct{}, 1)}
}

// add hands a job's outcome to the next group. The job counts as running
// (Stage.jobs) until its group commits, so shutdown waits for it.
func (st *settler) add(j *job, o ledger.Outcome) {
	st.s.jobs.Add(1)
	st.mu.Lock()
	st.items = append(st.items, settleItem{j, o})
	full := len(st.items) >= st.s.SettleGroup
	st.mu.Unlock()
	if full || st.s.Naive {
		select {
		case st.kick <- struct{}{}:
		default:
		}
	}
}

// run settles groups until ctx ends and nothing is left.
func (st *settler) run(ctx context.Context) {
	t := time.NewTicker(st.s.SettleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			st.flush()
			return
		case <-st.kick:
		case <-t.C:
		}
		st.flush()
	}
}

// flush settles everything gathered, a group at a time.
func (st *settler) flush() {
	for {
		st.mu.Lock()
		n := min(len(st.items), st.s.SettleGroup)
		if st.s.Naive {
			n = min(n, 1)
		}
		group := append([]settleItem(nil), st.items[:n]...)
		st.items = st.items[n:]
		st.mu.Unlock()
		if len(group) == 0 {
			return
		}
		st.settle(group)
	}
}

// settle commits one group, retrying until it does: each outcome is the
// bank's definite answer and must reach the ledger.
func (st *settler) settle(group []settleItem) {
	s := st.s
	outcomes := make([]ledger.Outcome, len(group))
	claims := make([]payout.Claim, len(group))
	for i, it := range group {
		outcomes[i] = it.o
		claims[i] = *it.j.claim
	}
	backoff := retry.Backoff{Base: 50 * time.Millisecond, Max: 5 * time.Second}
	for attempt := 0; ; attempt++ {
		out, changed, err := s.Ledger.SettleAll(context.Background(), outcomes, func(tx pgx.Tx) error {
			return payout.EndClaims(context.Background(), tx, claims)
		})
		if err == nil {
			settleGroup.Observe(float64(len(group)))
			rid := make(map[string]string, len(group))
			for _, it := range group {
				rid[it.j.claim.ID] = it.j.requestID
			}
			for i, d := range out {
				if changed[i] {
					s.Log.Info("payout settled", "disbursement_id", d.ID, "request_id", rid[d.ID], "merchant_id", d.MerchantID,
						"environment", d.Environment, "bank", d.BankCode, "status", d.Status)
				}
			}
			for _, it := range group {
				it.j.part.finish(it.j.rec.Offset)
				s.jobs.Done()
			}
			return
		}
		s.Log.Warn("settle group failed; retrying", "payouts", len(group), "attempt", attempt+1, "err", err)
		_ = backoff.Sleep(context.Background(), min(attempt, 6))
	}
}

// leaseFresh reports whether the job's lease is surely still live: claimed
// or renewed by the heartbeat within the last three quarters of a lease
// time. A send under a claim's pre-recorded call is made only then.
func (s *Stage) leaseFresh(j *job) bool {
	last := max(j.claimedAt, s.renewedAt.Load())
	return time.Since(time.Unix(0, last)) < s.LeaseTTL-s.LeaseTTL/4
}
