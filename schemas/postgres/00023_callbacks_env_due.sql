-- +goose Up

-- The callbacks stage claims, for each merchant environment, its oldest
-- due callbacks, only as many as the endpoint has room for (Claim,
-- ClaimBatches). This index lets that read stop after those few instead of
-- ranking every pending callback on every claim, which during a
-- 100,000-item batch was a fifth of Postgres's time.
CREATE INDEX callbacks_env_due ON callbacks (merchant_id, environment, next_attempt_at, id) WHERE status = 'pending';

-- +goose Down
DROP INDEX callbacks_env_due;
