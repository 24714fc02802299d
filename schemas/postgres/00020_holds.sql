-- +goose Up

-- Held payouts (issue 14, items 2 and 4): AWAITING_APPROVAL waits for a
-- checker, SCHEDULED for its time; both come before PENDING and debit
-- nothing. A held payout is created PENDING and moved to its hold in the
-- creating transaction (so the transitions and events are the usual ones).
ALTER TABLE disbursements DROP CONSTRAINT disbursements_status_check;
ALTER TABLE disbursements ADD CONSTRAINT disbursements_status_check
    CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'REVERSED', 'CANCELLED', 'AWAITING_APPROVAL', 'SCHEDULED'));

-- The maker-checker policy of an environment (no row: no approval needed).
--   payout_amount   a single payout of at least this amount waits (0: never)
--   batch_amount    a batch of at least this total waits (0: never)
--   batch_items     a batch of at least this many items waits (0: never)
--   expires_after   an approval not given within this many seconds fails
--                   its payouts (APPROVAL_EXPIRED)
CREATE TABLE approval_policies (
    merchant_id    text NOT NULL,
    environment    text NOT NULL,
    payout_amount  bigint NOT NULL DEFAULT 0 CHECK (payout_amount >= 0),
    batch_amount   bigint NOT NULL DEFAULT 0 CHECK (batch_amount >= 0),
    batch_items    integer NOT NULL DEFAULT 0 CHECK (batch_items >= 0),
    expires_after  integer NOT NULL DEFAULT 86400 CHECK (expires_after BETWEEN 60 AND 2592000),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, environment),
    FOREIGN KEY (merchant_id, environment) REFERENCES merchant_environments (merchant_id, environment)
);

-- One row per held subject: a single payout (kind 'payout', id the
-- disbursement id) or a batch (kind 'batch', id the batch id).
--   approval_status  NONE (no approval needed), PENDING, APPROVED, REJECTED,
--                    EXPIRED, CANCELLED
--   created_by       the key that created it (maker); decided_by the key or
--                    dashboard user that decided (checker), never the maker
--   scheduled_at     when it is to be debited and sent (NULL: at once)
--   released_at      when its payouts became PENDING (the relay role
--                    publishes any still PENDING a while after: a crash
--                    between the release and its publish delays it only)
CREATE TABLE holds (
    id               text PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('payout', 'batch')),
    merchant_id      text NOT NULL,
    environment      text NOT NULL,
    item_count       integer NOT NULL,
    total_amount     bigint NOT NULL,
    approval_status  text NOT NULL CHECK (approval_status IN ('NONE', 'PENDING', 'APPROVED', 'REJECTED', 'EXPIRED', 'CANCELLED')),
    created_by       text NOT NULL,
    decided_by       text,
    decided_at       timestamptz,
    decision_note    text NOT NULL DEFAULT '',
    expires_at       timestamptz,
    scheduled_at     timestamptz,
    released_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (merchant_id, environment) REFERENCES merchant_environments (merchant_id, environment)
);
CREATE INDEX holds_queue ON holds (merchant_id, environment, created_at DESC) WHERE approval_status = 'PENDING';
CREATE INDEX holds_expiry ON holds (expires_at) WHERE approval_status = 'PENDING';
CREATE INDEX holds_due ON holds (scheduled_at) WHERE released_at IS NULL AND scheduled_at IS NOT NULL;
CREATE INDEX holds_released ON holds (released_at) WHERE released_at IS NOT NULL;

-- Bulk account inquiries (issue 14, item 5): a job of up to 1,000
-- accounts, answered asynchronously by the API instances' inquiry runners
-- (a lease per job, so a crashed runner's job is taken over and only its
-- unanswered items are asked again).
CREATE TABLE account_inquiry_jobs (
    id            text PRIMARY KEY,
    merchant_id   text NOT NULL,
    environment   text NOT NULL,
    status        text NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED')),
    item_count    integer NOT NULL,
    answered      integer NOT NULL DEFAULT 0,
    lease_owner   text,
    lease_until   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    FOREIGN KEY (merchant_id, environment) REFERENCES merchant_environments (merchant_id, environment)
);
CREATE INDEX account_inquiry_jobs_open ON account_inquiry_jobs (created_at) WHERE status <> 'COMPLETED';
CREATE INDEX account_inquiry_jobs_environment ON account_inquiry_jobs (merchant_id, environment, created_at DESC);

-- One account of a job. status NULL: not answered yet; answered_at and
-- from_cache say when and whether an earlier answer of the same
-- environment served it.
CREATE TABLE account_inquiry_items (
    job_id               text NOT NULL REFERENCES account_inquiry_jobs (id),
    row                  integer NOT NULL,
    merchant_id          text NOT NULL,
    environment          text NOT NULL,
    bank_code            text NOT NULL,
    account_number       text NOT NULL,
    status               text CHECK (status IN ('VALID', 'INVALID', 'CLOSED', 'UNKNOWN')),
    account_holder_name  text NOT NULL DEFAULT '',
    from_cache           boolean NOT NULL DEFAULT false,
    answered_at          timestamptz,
    PRIMARY KEY (job_id, row)
);
-- The environment's earlier definite answers for an account (the cache).
CREATE INDEX account_inquiry_items_cache ON account_inquiry_items (merchant_id, environment, bank_code, account_number, answered_at DESC)
    WHERE status IN ('VALID', 'INVALID', 'CLOSED');

-- +goose Down
DROP TABLE account_inquiry_items, account_inquiry_jobs;
DROP TABLE holds, approval_policies;
ALTER TABLE disbursements DROP CONSTRAINT disbursements_status_check;
ALTER TABLE disbursements ADD CONSTRAINT disbursements_status_check
    CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'REVERSED', 'CANCELLED'));
