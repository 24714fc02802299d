-- +goose Up

-- The transactional outbox: the relay publishes payout_events to the status
-- topic in (txid, id) order, the order in which their transactions became
-- visible, and remembers here how far it got. One row per relay stream
-- (named after the topic it feeds).
CREATE INDEX payout_events_outbox ON payout_events (txid, id);
CREATE TABLE outbox_cursors (
    name        text PRIMARY KEY,
    txid        xid8 NOT NULL,
    id          bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Leases are short and renewed by their process's heartbeat: instance names
-- the process, so one statement renews all of its leases and a crashed
-- process's leases run out within one lease time.
ALTER TABLE dispatch_leases ADD COLUMN instance text NOT NULL DEFAULT '';
CREATE INDEX dispatch_leases_instance ON dispatch_leases (instance);

-- Batch progress is kept by payout.MoveAll, once per batch for each set of
-- payouts it moves, instead of by a trigger once per payout (which took the
-- batch's rows once per settled item).
DROP TRIGGER disbursements_batch_progress ON disbursements;
DROP FUNCTION batch_progress();

-- A payout cancelled after its debit (never handed to its bank) gets its
-- money back under an entry of its own kind.
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_kind_check;
ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_kind_check
    CHECK (kind IN ('deposit', 'debit', 'settle', 'fail', 'return', 'cancel', 'invoice_close', 'invoice_payment'));

-- +goose Down
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_kind_check;
ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_kind_check
    CHECK (kind IN ('deposit', 'debit', 'settle', 'fail', 'return', 'invoice_close', 'invoice_payment'));
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
DROP INDEX dispatch_leases_instance;
ALTER TABLE dispatch_leases DROP COLUMN instance;
DROP TABLE outbox_cursors;
DROP INDEX payout_events_outbox;
