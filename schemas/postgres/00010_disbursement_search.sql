-- +goose Up

-- GET /v1/disbursements lists newest first, keyset-paginated on
-- (created_at, id). Every filter it takes has an index that ends in that
-- order, so a page is an index range scan whatever the filter:
--   no filter / created_from / created_to  disbursements_list (00001)
--   reference_id                           the unique (merchant, env, reference_id) (00001)
--   batch_id                               disbursements_batch_list
--   status (one or several)                disbursements_status_list
--   bank_code                              disbursements_bank_list
CREATE INDEX disbursements_batch_list ON disbursements (batch_id, created_at DESC, id DESC) WHERE batch_id IS NOT NULL;
CREATE INDEX disbursements_status_list ON disbursements (merchant_id, environment, status, created_at DESC, id DESC);
CREATE INDEX disbursements_bank_list ON disbursements (merchant_id, environment, bank_code, created_at DESC, id DESC);

-- +goose Down
DROP INDEX disbursements_bank_list, disbursements_status_list, disbursements_batch_list;
