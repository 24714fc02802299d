-- +goose Up

-- One trace per payout (issue 11), the parts 00016 left out.
--
-- The batch create's X-Request-Id reaches every item. Items are inserted
-- by one set-based INSERT that does not name request_id; the batch store
-- sets the transaction-local setting disburse.request_id before it, and
-- the column's default reads it. Outside such a transaction the setting
-- is unset (NULL) or '' and the default stays ''.
ALTER TABLE disbursements ALTER COLUMN request_id
    SET DEFAULT coalesce(current_setting('disburse.request_id', true), '');
ALTER TABLE batches ADD COLUMN request_id text NOT NULL DEFAULT '';

-- A callback carries the request id of what it announces (the payout's,
-- or the batch's for batch.completed): its delivery logs and its POST's
-- X-Request-Id header show it.
ALTER TABLE callbacks ADD COLUMN request_id text NOT NULL DEFAULT '';

-- Who wrote each step of a payout's story: the application_name of the
-- writing connection, which every role sets to "disburse <role> <host>
-- pid <n>" (cmd/disburse openPostgres). disburse trace prints it. A
-- default, so no writer has to remember it; '' for rows written before.
-- Added with '' and then given the default, so existing rows are not
-- stamped with the migrating connection's name.
ALTER TABLE payout_events ADD COLUMN actor text NOT NULL DEFAULT '';
ALTER TABLE journal_entries ADD COLUMN actor text NOT NULL DEFAULT '';
ALTER TABLE bank_calls ADD COLUMN actor text NOT NULL DEFAULT '';
ALTER TABLE callback_attempts ADD COLUMN actor text NOT NULL DEFAULT '';
ALTER TABLE payout_events ALTER COLUMN actor SET DEFAULT current_setting('application_name');
ALTER TABLE journal_entries ALTER COLUMN actor SET DEFAULT current_setting('application_name');
ALTER TABLE bank_calls ALTER COLUMN actor SET DEFAULT current_setting('application_name');
ALTER TABLE callback_attempts ALTER COLUMN actor SET DEFAULT current_setting('application_name');

-- +goose Down
ALTER TABLE callback_attempts DROP COLUMN actor;
ALTER TABLE bank_calls DROP COLUMN actor;
ALTER TABLE journal_entries DROP COLUMN actor;
ALTER TABLE payout_events DROP COLUMN actor;
ALTER TABLE callbacks DROP COLUMN request_id;
ALTER TABLE batches DROP COLUMN request_id;
ALTER TABLE disbursements ALTER COLUMN request_id SET DEFAULT '';
