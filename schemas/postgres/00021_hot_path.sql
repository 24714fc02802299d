-- +goose Up

-- The hot path writes each payout's row three times (created, debited,
-- settled) and every write of a status is a new index entry in every index
-- of disbursements. Issue 16 measured where Postgres spends its time on a
-- 20,000-item batch; this migration takes out what was paid for nothing.

-- When the dispatch reconciler next asks the bank about a payout whose
-- outcome may be unknown moves out of disbursements (00009) into a narrow
-- table of its own: the claim used to update every claimed payout's row
-- (a new entry in each of its indexes) only to set check_at. A row here is
-- written by the claim that records the transfer call, deleted by the
-- settlement that releases the claim, and a payout settled any other way
-- (statement, cancel, reconciler) leaves it when the reconciler next takes
-- it and finds it no longer PROCESSING.
CREATE TABLE payout_checks (
    disbursement_id text PRIMARY KEY,
    check_at        timestamptz NOT NULL,
    checks          integer NOT NULL DEFAULT 0
);
CREATE INDEX payout_checks_due ON payout_checks (check_at);
INSERT INTO payout_checks (disbursement_id, check_at, checks)
    SELECT id, check_at, checks FROM disbursements WHERE status = 'PROCESSING' AND check_at IS NOT NULL;
DROP INDEX disbursements_check;
ALTER TABLE disbursements DROP COLUMN check_at, DROP COLUMN checks;

-- Read by nothing: reconciliation reads journal_entries_bank_day, the
-- events feed reads payout_events_feed_tx (by transaction, 00010), and
-- postings_account_entry starts with account_id.
DROP INDEX disbursements_completed;
DROP INDEX payout_events_feed;
DROP INDEX postings_account;

-- +goose Down
CREATE INDEX postings_account ON postings (account_id);
CREATE INDEX payout_events_feed ON payout_events (merchant_id, environment, id);
CREATE INDEX disbursements_completed ON disbursements (completed_at) WHERE status = 'COMPLETED';
ALTER TABLE disbursements ADD COLUMN check_at timestamptz, ADD COLUMN checks integer NOT NULL DEFAULT 0;
UPDATE disbursements d SET check_at = c.check_at, checks = c.checks FROM payout_checks c WHERE c.disbursement_id = d.id;
CREATE INDEX disbursements_check ON disbursements (check_at) WHERE status = 'PROCESSING' AND check_at IS NOT NULL;
DROP TABLE payout_checks;
