-- Daily aggregates per merchant, environment, bank, status and currency:
-- how many payouts reached each status that day (UTC) and their amounts
-- and fees. SummingMergeTree adds rows with the same key at merges; read
-- with sum() ... GROUP BY. Exact because the sink inserts each
-- (disbursement_id, version) once. No TTL: the table is small (one row per
-- key and day) and holds the long-term totals.
CREATE TABLE IF NOT EXISTS {db}.daily_status
(
    day         Date,
    merchant_id LowCardinality(String),
    environment LowCardinality(String),
    bank_code   LowCardinality(String),
    status      LowCardinality(String),
    currency    LowCardinality(String),
    payouts     UInt64,
    amount      Int64,
    fee         Int64
)
ENGINE = SummingMergeTree((payouts, amount, fee))
PARTITION BY toYYYYMM(day)
ORDER BY (merchant_id, environment, day, bank_code, status, currency);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.daily_status_mv TO {db}.daily_status AS
SELECT toDate(event_time) AS day, merchant_id, environment, bank_code, status, currency,
       count() AS payouts, sum(amount) AS amount, sum(fee) AS fee
FROM {db}.payout_events
GROUP BY day, merchant_id, environment, bank_code, status, currency;
