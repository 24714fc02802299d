-- +goose Up

-- A business that uses disbursement. Each merchant has two environments,
-- sandbox and production, with separate keys, balances and settings.
CREATE TABLE merchants (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    status      text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'SUSPENDED')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE merchant_environments (
    merchant_id     text NOT NULL REFERENCES merchants (id),
    environment     text NOT NULL CHECK (environment IN ('sandbox', 'production')),
    billing         text NOT NULL DEFAULT 'deposit' CHECK (billing IN ('deposit', 'invoice')),
    fee_flat        bigint NOT NULL DEFAULT 0 CHECK (fee_flat >= 0),
    fee_bps         integer NOT NULL DEFAULT 0 CHECK (fee_bps BETWEEN 0 AND 10000),
    max_per_payout  bigint NOT NULL DEFAULT 0 CHECK (max_per_payout >= 0), -- 0: no limit
    max_per_day     bigint NOT NULL DEFAULT 0 CHECK (max_per_day >= 0),    -- 0: no limit
    callback_url    text NOT NULL DEFAULT '',
    activated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, environment)
);

-- Secret keys are stored only as a SHA-256 hash: a key is 32 random bytes,
-- so a fast hash is not guessable and lets the lookup use an index.
CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    merchant_id  text NOT NULL,
    environment  text NOT NULL,
    hash         bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    FOREIGN KEY (merchant_id, environment) REFERENCES merchant_environments (merchant_id, environment)
);

-- The double-entry ledger. Every movement of money is one journal entry
-- whose postings sum to zero. Account kinds per merchant and environment:
--   deposits   money that came in (negative: the source side)
--   available  what the merchant can spend
--   in_flight  debited, at the bank, not yet settled
--   paid_out   settled at the bank
--   fees       fee revenue taken from this merchant
CREATE TABLE accounts (
    id           bigserial PRIMARY KEY,
    merchant_id  text NOT NULL,
    environment  text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('deposits', 'available', 'in_flight', 'paid_out', 'fees')),
    currency     text NOT NULL,
    balance      bigint NOT NULL DEFAULT 0,
    UNIQUE (merchant_id, environment, kind, currency),
    CONSTRAINT available_never_negative CHECK (kind <> 'available' OR balance >= 0),
    CONSTRAINT in_flight_never_negative CHECK (kind <> 'in_flight' OR balance >= 0)
);

CREATE TABLE journal_entries (
    id               bigserial PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('deposit', 'debit', 'settle', 'fail', 'return')),
    merchant_id      text NOT NULL,
    environment      text NOT NULL,
    currency         text NOT NULL,
    disbursement_id  text,
    memo             text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now()
);
-- Each money movement of a payout happens at most once, whatever the code does.
CREATE UNIQUE INDEX journal_entries_once ON journal_entries (disbursement_id, kind)
    WHERE disbursement_id IS NOT NULL;

CREATE TABLE postings (
    entry_id    bigint NOT NULL REFERENCES journal_entries (id),
    account_id  bigint NOT NULL REFERENCES accounts (id),
    amount      bigint NOT NULL,
    PRIMARY KEY (entry_id, account_id)
);
CREATE INDEX postings_account ON postings (account_id);

-- One row per payout, created PENDING by the API (the row is also the
-- idempotency record), moved by the ledger and dispatch stages.
CREATE TABLE disbursements (
    id                   text PRIMARY KEY,
    merchant_id          text NOT NULL,
    environment          text NOT NULL,
    idempotency_key      text NOT NULL,
    request_hash         bytea NOT NULL,
    reference_id         text NOT NULL,
    batch_id             text,
    bank_code            text NOT NULL,
    account_number       text NOT NULL,
    account_holder_name  text NOT NULL DEFAULT '',
    amount               bigint NOT NULL CHECK (amount > 0),
    currency             text NOT NULL,
    description          text NOT NULL DEFAULT '',
    metadata             jsonb NOT NULL DEFAULT '{}',
    fee                  bigint NOT NULL DEFAULT 0 CHECK (fee >= 0),
    status               text NOT NULL CHECK (status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'REVERSED', 'CANCELLED')),
    failure_code         text NOT NULL DEFAULT '',
    version              integer NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    debited_at           timestamptz,
    completed_at         timestamptz,
    UNIQUE (merchant_id, environment, idempotency_key),
    UNIQUE (merchant_id, environment, reference_id)
);
CREATE INDEX disbursements_list ON disbursements (merchant_id, environment, created_at DESC, id DESC);
CREATE INDEX disbursements_open ON disbursements (status, updated_at) WHERE status IN ('PENDING', 'PROCESSING');
CREATE INDEX disbursements_daily ON disbursements (merchant_id, environment, debited_at) WHERE debited_at IS NOT NULL;

-- Every call to a bank about a payout: the record that proves a payout was
-- sent once. kind 'transfer' is a send; 'status' a status query.
CREATE TABLE bank_calls (
    id               bigserial PRIMARY KEY,
    disbursement_id  text NOT NULL REFERENCES disbursements (id),
    kind             text NOT NULL CHECK (kind IN ('transfer', 'status')),
    outcome          text NOT NULL DEFAULT 'started',
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX bank_calls_disbursement ON bank_calls (disbursement_id);

-- What operators did, for the audit trail.
CREATE TABLE operator_audit (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    action       text NOT NULL,
    merchant_id  text,
    details      jsonb NOT NULL DEFAULT '{}'
);

-- +goose Down
DROP TABLE operator_audit, bank_calls, disbursements, postings, journal_entries, accounts, api_keys, merchant_environments, merchants;
