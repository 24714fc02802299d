-- The latest state of each payout: the event with the highest version wins
-- (ReplacingMergeTree(version)); read with FINAL. Fed by payouts_mv from
-- payout_events. Partitioned by the month the payout was created, which
-- never changes, so all versions of a payout meet in one partition.
-- TTL: 5 years after creation (finance retention).
CREATE TABLE IF NOT EXISTS {db}.payouts
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
    created_at      DateTime64(3, 'UTC'),
    updated_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(created_at)
ORDER BY (merchant_id, environment, disbursement_id)
TTL toDateTime(created_at) + INTERVAL 5 YEAR;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.payouts_mv TO {db}.payouts AS
SELECT disbursement_id, merchant_id, environment, reference_id, batch_id, bank_code,
       amount, fee, currency, status, failure_code, version, created_at,
       event_time AS updated_at
FROM {db}.payout_events;
