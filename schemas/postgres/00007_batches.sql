-- +goose Up

-- A bulk batch of payouts. The row is the batch's idempotency record: the
-- same Idempotency-Key replays the stored response.
CREATE TABLE batches (
    id               text PRIMARY KEY,
    merchant_id      text NOT NULL,
    environment      text NOT NULL,
    idempotency_key  text NOT NULL,
    request_hash     bytea NOT NULL,
    reference_id     text NOT NULL,
    mode             text NOT NULL CHECK (mode IN ('all_or_nothing', 'partial')),
    status           text NOT NULL CHECK (status IN ('ACCEPTED', 'PROCESSING', 'COMPLETED')),
    item_count       integer NOT NULL DEFAULT 0,
    total_amount     bigint NOT NULL DEFAULT 0,
    terminal_count   integer NOT NULL DEFAULT 0,
    response         jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    UNIQUE (merchant_id, environment, idempotency_key)
);

-- Progress: count and amount of the batch's items per status and failure
-- code, kept by the trigger below in the same transaction as each change.
CREATE TABLE batch_counts (
    batch_id      text NOT NULL REFERENCES batches (id),
    status        text NOT NULL,
    failure_code  text NOT NULL DEFAULT '',
    count         integer NOT NULL DEFAULT 0,
    amount        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_id, status, failure_code)
);

CREATE INDEX disbursements_batch ON disbursements (batch_id, id) WHERE batch_id IS NOT NULL;

-- +goose StatementBegin
CREATE FUNCTION batch_progress() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE batch_counts SET count = count - 1, amount = amount - OLD.amount
    WHERE batch_id = OLD.batch_id AND status = OLD.status AND failure_code = OLD.failure_code;
    INSERT INTO batch_counts (batch_id, status, failure_code, count, amount)
    VALUES (NEW.batch_id, NEW.status, NEW.failure_code, 1, NEW.amount)
    ON CONFLICT (batch_id, status, failure_code)
    DO UPDATE SET count = batch_counts.count + 1, amount = batch_counts.amount + EXCLUDED.amount;

    IF NEW.status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND OLD.status IN ('PENDING', 'PROCESSING') THEN
        UPDATE batches SET terminal_count = terminal_count + 1,
            status = CASE WHEN terminal_count + 1 >= item_count THEN 'COMPLETED' ELSE 'PROCESSING' END,
            completed_at = CASE WHEN terminal_count + 1 >= item_count THEN now() END,
            updated_at = now()
        WHERE id = NEW.batch_id;
    ELSIF OLD.status = 'PENDING' THEN
        UPDATE batches SET status = 'PROCESSING', updated_at = now()
        WHERE id = NEW.batch_id AND status = 'ACCEPTED';
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER disbursements_batch_progress
    AFTER UPDATE OF status ON disbursements
    FOR EACH ROW WHEN (NEW.batch_id IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION batch_progress();

-- +goose Down
DROP TRIGGER disbursements_batch_progress ON disbursements;
DROP FUNCTION batch_progress();
DROP INDEX disbursements_batch;
DROP TABLE batch_counts, batches;
