-- +goose Up

-- Per environment callback delivery settings (issue 16, item 5), set by the
-- merchant with PATCH /v1/settings:
--   callback_batch_size   1: one POST per callback (the default); 2..100: up
--                         to that many pending callbacks in one signed POST
--                         {"id", "type": "callbacks.batch", "events": [...]}
--   callback_concurrency  POSTs in flight to the endpoint at once, across
--                         workers (1..64; the operator's
--                         --callback-per-endpoint caps it)
ALTER TABLE merchant_environments
    ADD COLUMN callback_batch_size integer NOT NULL DEFAULT 1 CHECK (callback_batch_size BETWEEN 1 AND 100),
    ADD COLUMN callback_concurrency integer NOT NULL DEFAULT 4 CHECK (callback_concurrency BETWEEN 1 AND 64);

-- +goose Down
ALTER TABLE merchant_environments
    DROP COLUMN callback_batch_size,
    DROP COLUMN callback_concurrency;
