-- +goose Up

-- Each environment has its own bank gateway in the workers: sandbox payouts
-- go to the sandbox banks, production payouts to the production gateway.
-- So each environment has its own statement per bank (read by its own
-- follower, under its own lease and cursor) and its own breakers (one
-- environment's outage shows only in its own health rows). Rows from before
-- were the one gateway every payout went to: the sandbox banks.
ALTER TABLE statement_cursors ADD COLUMN environment text NOT NULL DEFAULT 'sandbox'
    CHECK (environment IN ('sandbox', 'production'));
ALTER TABLE statement_cursors DROP CONSTRAINT statement_cursors_pkey, ADD PRIMARY KEY (bank, environment);
ALTER TABLE statement_cursors ALTER COLUMN environment DROP DEFAULT;

ALTER TABLE bank_health ADD COLUMN environment text NOT NULL DEFAULT 'sandbox'
    CHECK (environment IN ('sandbox', 'production'));
ALTER TABLE bank_health DROP CONSTRAINT bank_health_pkey, ADD PRIMARY KEY (environment, bank, instance);
ALTER TABLE bank_health ALTER COLUMN environment DROP DEFAULT;

-- +goose Down
DELETE FROM bank_health WHERE environment <> 'sandbox';
ALTER TABLE bank_health DROP CONSTRAINT bank_health_pkey, ADD PRIMARY KEY (bank, instance);
ALTER TABLE bank_health DROP COLUMN environment;
DELETE FROM statement_cursors WHERE environment <> 'sandbox';
ALTER TABLE statement_cursors DROP CONSTRAINT statement_cursors_pkey, ADD PRIMARY KEY (bank);
ALTER TABLE statement_cursors DROP COLUMN environment;
