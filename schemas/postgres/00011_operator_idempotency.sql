-- +goose Up

-- The idempotency record of operator calls that move money (top-ups,
-- closing and paying invoices): the key, the request's fingerprint, and
-- the answer to replay. The row is inserted in the same transaction as the
-- movement (a top-up) or held locked while it runs (invoices), so retries
-- of one call, concurrent or not, move money once.
CREATE TABLE operator_requests (
    idempotency_key  text PRIMARY KEY,
    request_hash     bytea NOT NULL,
    status           integer NOT NULL DEFAULT 0,
    response         json,  -- json, not jsonb: a replay is byte for byte the first answer
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE operator_requests;
