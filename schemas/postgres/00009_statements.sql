-- +goose Up

-- Where each bank's statement has been read to, and who reads it. One
-- follower at a time holds a bank's lease (owner until lease_until) and
-- renews it while it reads; the others stand by and take over when it
-- lapses. The cursor moves only after the entries before it are applied,
-- and only by the lease's holder (compare-and-set on owner and cursor).
CREATE TABLE statement_cursors (
    bank         text PRIMARY KEY,
    cursor       text NOT NULL DEFAULT '',
    owner        text NOT NULL DEFAULT '',
    lease_until  timestamptz NOT NULL DEFAULT '-infinity',
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- When the dispatch reconciler next asks the bank about a payout whose
-- outcome may be unknown: set when a transfer is sent, pushed back with
-- backoff (checks counts the pushes) each time the reconciler takes it.
-- The partial index holds only PROCESSING payouts that were sent, so the
-- scan by due time stays small and a settled payout leaves it by itself.
ALTER TABLE disbursements ADD COLUMN check_at timestamptz, ADD COLUMN checks integer NOT NULL DEFAULT 0;
UPDATE disbursements SET check_at = now() WHERE status = 'PROCESSING';
CREATE INDEX disbursements_check ON disbursements (check_at) WHERE status = 'PROCESSING' AND check_at IS NOT NULL;

-- Daily reconciliation reads a day's settlements and returns by time.
CREATE INDEX journal_entries_bank_day ON journal_entries (created_at) WHERE kind IN ('settle', 'return');

-- +goose Down
DROP INDEX journal_entries_bank_day;
DROP INDEX disbursements_check;
ALTER TABLE disbursements DROP COLUMN checks, DROP COLUMN check_at;
DROP TABLE statement_cursors;
