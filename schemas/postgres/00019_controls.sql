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

-- +goose Down
ALTER TABLE api_keys DROP COLUMN scopes, DROP COLUMN label, DROP COLUMN last_used_at;
