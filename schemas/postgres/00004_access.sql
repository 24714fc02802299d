-- +goose Up

-- Merchant access settings per environment (issue 5).
--   callback_secret         HMAC key of the environment's callbacks; shown to
--                           the merchant by GET /v1/settings, so stored as is
--   ip_whitelist            normalized CIDR prefixes; empty allows every address
--   rate_*_per_second       the operator's per-merchant limits; 0 takes the
--                           service default (--rate-create, --rate-read)
ALTER TABLE merchant_environments
    ADD COLUMN callback_secret text NOT NULL DEFAULT '',
    ADD COLUMN ip_whitelist text[] NOT NULL DEFAULT '{}',
    ADD COLUMN rate_create_per_second integer NOT NULL DEFAULT 0 CHECK (rate_create_per_second >= 0),
    ADD COLUMN rate_read_per_second integer NOT NULL DEFAULT 0 CHECK (rate_read_per_second >= 0);

-- hint names a key without revealing it (prefix and last 4 characters), for
-- the operator's list; keys made before this migration have none.
ALTER TABLE api_keys ADD COLUMN hint text NOT NULL DEFAULT '';
CREATE INDEX api_keys_environment ON api_keys (merchant_id, environment);

-- Every change to an environment's access settings: who (the key id, or
-- 'operator'), when, and the old and new value. Secrets never appear here:
-- a key or callback secret is named by its id or hint.
CREATE TABLE settings_audit (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL,
    merchant_id  text NOT NULL,
    environment  text NOT NULL,
    actor        text NOT NULL,
    setting      text NOT NULL,
    old_value    jsonb,
    new_value    jsonb,
    FOREIGN KEY (merchant_id, environment) REFERENCES merchant_environments (merchant_id, environment)
);
CREATE INDEX settings_audit_environment ON settings_audit (merchant_id, environment, id DESC);

-- Token buckets of the request rate limits, one per merchant, environment
-- and budget, shared by every API instance. UNLOGGED: no WAL and no fsync on
-- the per-request update; a crash or failover only refills the buckets.
CREATE UNLOGGED TABLE rate_buckets (
    merchant_id  text NOT NULL,
    environment  text NOT NULL,
    budget       text NOT NULL CHECK (budget IN ('create', 'read')),
    tokens       double precision NOT NULL,
    allowed      boolean NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, environment, budget)
);

-- +goose Down
DROP TABLE rate_buckets, settings_audit;
DROP INDEX api_keys_environment;
ALTER TABLE api_keys DROP COLUMN hint;
ALTER TABLE merchant_environments
    DROP COLUMN callback_secret,
    DROP COLUMN ip_whitelist,
    DROP COLUMN rate_create_per_second,
    DROP COLUMN rate_read_per_second;
