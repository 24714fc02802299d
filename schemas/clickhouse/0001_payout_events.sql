-- Every payout status event the sink reads from the status topic, one row
-- per (disbursement_id, version). Append-only; the sink never inserts a
-- (disbursement_id, version) the table already holds, and ReplacingMergeTree
-- folds any duplicate that slips through (read with FINAL when exact).
-- Ordered for per-merchant scans; partitioned by the event's month.
-- TTL: raw events are kept 2 years (the daily aggregates keep the totals).
CREATE TABLE IF NOT EXISTS {db}.payout_events
(
    disbursement_id String,
    merchant_id     LowCardinality(String),
    environment     LowCardinality(String),
    reference_id    String,
    batch_id        String,
    bank_code       LowCardinality(String),
    amount          Int64,
    fee             Int64,
    currency        LowCardinality(String),
    status          LowCardinality(String),
    failure_code    LowCardinality(String),
    version         UInt32,
    event_time      DateTime64(3, 'UTC'),
    created_at      DateTime64(3, 'UTC'),
    inserted_at     DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (merchant_id, environment, disbursement_id, version)
TTL toDateTime(event_time) + INTERVAL 2 YEAR;
