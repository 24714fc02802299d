-- +goose Up

-- The live API instances (issue 16). Each instance upserts its row every
-- heartbeat and counts the rows heartbeaten within the liveness window; it
-- then admits 1/count of each merchant's rate from buckets in its own
-- memory, so a request writes nothing shared. An instance that stops
-- heartbeating falls out of every count within the window; its row is
-- deleted by the next instance that sees it long dead. UNLOGGED: losing the
-- rows in a crash only makes each instance count itself alone until the
-- next heartbeat.
CREATE UNLOGGED TABLE api_instances (
    id            text PRIMARY KEY,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL
);

-- +goose Down
DROP TABLE api_instances;
