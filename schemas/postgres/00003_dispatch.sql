-- +goose Up

-- Who is working on a payout at the dispatch stage right now. A lane worker
-- or the reconciler claims the lease before it touches the bank about a
-- payout and releases it when done; a lease that expires (its holder died)
-- can be claimed again. It fences two holders of the same payout (a parked
-- copy and a redelivered one, a zombie after a rebalance) so that a payout
-- is never sent twice at once.
CREATE TABLE dispatch_leases (
    disbursement_id  text PRIMARY KEY REFERENCES disbursements (id),
    owner            text NOT NULL,
    expires_at       timestamptz NOT NULL
);

-- Each dispatch instance's view of each bank's circuit breaker, refreshed
-- every few seconds, so that GET /v1/banks (served by the API processes) can
-- say whether a bank is up.
CREATE TABLE bank_health (
    bank        text NOT NULL,
    instance    text NOT NULL,
    breaker     text NOT NULL CHECK (breaker IN ('closed', 'half-open', 'open')),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bank, instance)
);

-- The reconciler's scans: transfer calls by age, completed payouts by time.
CREATE INDEX bank_calls_transfer_started ON bank_calls (started_at) WHERE kind = 'transfer';
CREATE INDEX disbursements_completed ON disbursements (completed_at) WHERE status = 'COMPLETED';

-- +goose Down
DROP INDEX disbursements_completed;
DROP INDEX bank_calls_transfer_started;
DROP TABLE bank_health, dispatch_leases;
