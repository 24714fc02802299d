-- +goose Up

-- The events feed (GET /v1/events) must never skip a change. payout_events.id
-- is taken from a sequence before commit, so a change with a smaller id can
-- become visible after one with a larger id. Each row therefore records the
-- id of the transaction that wrote it; the feed orders by (txid, id) and
-- shows only rows of transactions older than every transaction still
-- running (pg_snapshot_xmin), a set that never gains rows before a cursor.
ALTER TABLE payout_events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX payout_events_feed_tx ON payout_events (merchant_id, environment, txid, id);

-- One callback (webhook) to a merchant environment's callback_url. id is
-- derived from what it announces (a payout's version, a batch), so a
-- redelivered status event inserts nothing new. body holds the exact bytes
-- sent and signed on every attempt.
CREATE TABLE callbacks (
    id               text PRIMARY KEY,
    merchant_id      text NOT NULL,
    environment      text NOT NULL,
    type             text NOT NULL,
    subject_id       text NOT NULL,  -- disbursement or batch id
    body             bytea NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,  -- attempts since created or last redelivered
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    retry_until      timestamptz NOT NULL,        -- after a failed attempt past this: failed
    lease            bigint,                      -- the claim of the worker sending it now
    leased_until     timestamptz NOT NULL DEFAULT '-infinity',
    event_at         timestamptz NOT NULL,        -- when the announced change happened
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    last_status_code integer,
    last_error       text NOT NULL DEFAULT ''
);
CREATE INDEX callbacks_due ON callbacks (next_attempt_at) WHERE status = 'pending';
CREATE INDEX callbacks_leased ON callbacks (merchant_id, environment, leased_until) WHERE status = 'pending';
CREATE INDEX callbacks_log ON callbacks (merchant_id, environment, created_at DESC, id DESC);

-- Every attempt to deliver a callback: the delivery log.
CREATE TABLE callback_attempts (
    id            bigserial PRIMARY KEY,
    callback_id   text NOT NULL REFERENCES callbacks (id),
    url           text NOT NULL,
    started_at    timestamptz NOT NULL,
    duration_ms   integer NOT NULL,
    status_code   integer,          -- null: no HTTP answer
    error         text NOT NULL DEFAULT '',
    response_body text NOT NULL DEFAULT ''  -- the first bytes only
);
CREATE INDEX callback_attempts_callback ON callback_attempts (callback_id, id);

-- Callback signing secrets per environment. The current one has no
-- expires_at; after a rotation the previous one signs beside it until it
-- expires. Stored in the clear: HMAC needs the secret itself.
CREATE TABLE callback_secrets (
    id           bigserial PRIMARY KEY,
    merchant_id  text NOT NULL,
    environment  text NOT NULL,
    secret       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    FOREIGN KEY (merchant_id, environment) REFERENCES merchant_environments (merchant_id, environment)
);
CREATE UNIQUE INDEX callback_secrets_current ON callback_secrets (merchant_id, environment) WHERE expires_at IS NULL;

-- +goose Down
DROP TABLE callback_secrets, callback_attempts, callbacks;
DROP INDEX payout_events_feed_tx;
ALTER TABLE payout_events DROP COLUMN txid;
