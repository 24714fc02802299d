-- +goose Up

-- Every status change of a payout, written in the same transaction as the
-- change: the ordered feed of GET /v1/events, and the source of batch
-- progress. id orders the feed; (disbursement_id, version) is unique, so a
-- change cannot be recorded twice.
CREATE TABLE payout_events (
    id               bigserial PRIMARY KEY,
    disbursement_id  text NOT NULL,
    merchant_id      text NOT NULL,
    environment      text NOT NULL,
    batch_id         text,
    status           text NOT NULL,
    failure_code     text NOT NULL DEFAULT '',
    version          integer NOT NULL,
    at               timestamptz NOT NULL DEFAULT now(),
    UNIQUE (disbursement_id, version)
);
CREATE INDEX payout_events_feed ON payout_events (merchant_id, environment, id);

-- +goose Down
DROP TABLE payout_events;
