-- +goose Up

-- GET /v1/balance/transactions reads one account's postings in entry order
-- and sums those before a page for its opening balance: both are ranges of
-- this index, read without the table.
CREATE INDEX postings_account_entry ON postings (account_id, entry_id) INCLUDE (amount);

-- +goose Down
DROP INDEX postings_account_entry;
