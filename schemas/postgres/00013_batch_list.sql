-- +goose Up

-- GET /v1/batches lists an environment's batches newest first, keyset
-- paginated on (created_at, id).
CREATE INDEX batches_list ON batches (merchant_id, environment, created_at DESC, id DESC);

-- +goose Down
DROP INDEX batches_list;
