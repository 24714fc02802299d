-- +goose Up
-- The X-Request-Id of the API call that created the payout (docs/operations.md:
-- one trace per payout). Empty for payouts created before this column or
-- outside the API.
ALTER TABLE disbursements ADD COLUMN request_id text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE disbursements DROP COLUMN request_id;
