-- +goose Up

-- Scoped keys (issue 14, item 1). A key with scopes NULL is the
-- environment's full secret key (every key made before this migration, and
-- the keys activation, rotation and the operator make); a key with scopes
-- may only make the calls those scopes cover. label names a key for its
-- owner; last_used_at is written at most once a minute per key and API
-- instance (so it is exact to the minute, and no request writes a shared
-- row more often than that).
ALTER TABLE api_keys
    ADD COLUMN scopes text[] CHECK (scopes IS NULL OR cardinality(scopes) > 0),
    ADD COLUMN label text NOT NULL DEFAULT '',
    ADD COLUMN last_used_at timestamptz;

-- Batch quotes (issue 14, item 3): what POST /v1/batches/quote answered,
-- with the digest of the batch it priced and the fees it priced with, so a
-- batch created with its quote_id can be held to it. Kept past expiry for
-- the record; a quote moves no money.
CREATE TABLE batch_quotes (
    id              text PRIMARY KEY,
    merchant_id     text NOT NULL,
    environment     text NOT NULL,
    digest          bytea NOT NULL,
    fee_flat        bigint NOT NULL,
    fee_bps         bigint NOT NULL,
    max_per_payout  bigint NOT NULL,
    item_count      integer NOT NULL,
    total_debit     bigint NOT NULL,
    response        jsonb NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    FOREIGN KEY (merchant_id, environment) REFERENCES merchant_environments (merchant_id, environment)
);

-- Velocity limits and the kill switch (issue 14, item 6), one row per
-- environment that has any (no row: no limit, not paused).
--   merchant_paused / operator_paused  "pause all payouts": the ledger stage
--       debits none of the environment's payouts while either is set (they
--       stay PENDING, parked until resume), and dispatch parks debited ones
--       not yet sent. Only the operator lifts an operator pause.
--   max_*     the merchant's limits; ceiling_* the operator's. 0: none.
--       A merchant limit is at most the ceiling; the effective limit is the
--       smaller set one. Windows are rolling: the last hour, the last 24 hours.
CREATE TABLE payout_controls (
    merchant_id              text NOT NULL,
    environment              text NOT NULL,
    merchant_paused          boolean NOT NULL DEFAULT false,
    operator_paused          boolean NOT NULL DEFAULT false,
    paused_at                timestamptz,
    pause_reason             text NOT NULL DEFAULT '',
    max_amount_per_hour      bigint NOT NULL DEFAULT 0 CHECK (max_amount_per_hour >= 0),
    max_count_per_hour       bigint NOT NULL DEFAULT 0 CHECK (max_count_per_hour >= 0),
    max_amount_per_day       bigint NOT NULL DEFAULT 0 CHECK (max_amount_per_day >= 0),
    max_count_per_day        bigint NOT NULL DEFAULT 0 CHECK (max_count_per_day >= 0),
    ceiling_amount_per_hour  bigint NOT NULL DEFAULT 0 CHECK (ceiling_amount_per_hour >= 0),
    ceiling_count_per_hour   bigint NOT NULL DEFAULT 0 CHECK (ceiling_count_per_hour >= 0),
    ceiling_amount_per_day   bigint NOT NULL DEFAULT 0 CHECK (ceiling_amount_per_day >= 0),
    ceiling_count_per_day    bigint NOT NULL DEFAULT 0 CHECK (ceiling_count_per_day >= 0),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, environment),
    FOREIGN KEY (merchant_id, environment) REFERENCES merchant_environments (merchant_id, environment)
);
CREATE INDEX payout_controls_paused ON payout_controls (merchant_id, environment) WHERE merchant_paused OR operator_paused;

-- +goose Down
DROP TABLE payout_controls;
DROP TABLE batch_quotes;
ALTER TABLE api_keys DROP COLUMN scopes, DROP COLUMN label, DROP COLUMN last_used_at;
