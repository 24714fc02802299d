-- +goose Up

-- Invoice billing: instead of spending a deposit, a merchant spends against
-- a credit limit. Payouts accrue to the open invoice period (the invoice
-- account, negative = owed); closing the period moves the accrual to
-- receivable; the merchant's payment settles receivable from deposits.
ALTER TABLE merchant_environments
    ADD COLUMN credit_limit bigint NOT NULL DEFAULT 0 CHECK (credit_limit >= 0);

ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check
    CHECK (kind IN ('deposits', 'available', 'in_flight', 'paid_out', 'fees', 'invoice', 'receivable'));

ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_kind_check;
ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_kind_check
    CHECK (kind IN ('deposit', 'debit', 'settle', 'fail', 'return', 'invoice_close', 'invoice_payment'));

-- The account that paid for a payout, so a failure or a return goes back
-- to it even if the merchant's billing changed meanwhile.
ALTER TABLE disbursements
    ADD COLUMN funded_by text NOT NULL DEFAULT 'available' CHECK (funded_by IN ('available', 'invoice'));

INSERT INTO accounts (merchant_id, environment, kind, currency)
SELECT DISTINCT merchant_id, environment, k, currency
FROM accounts, unnest(ARRAY['invoice', 'receivable']) AS k
ON CONFLICT DO NOTHING;

CREATE TABLE invoices (
    id            bigserial PRIMARY KEY,
    merchant_id   text NOT NULL,
    environment   text NOT NULL,
    currency      text NOT NULL,
    period_start  timestamptz NOT NULL,
    period_end    timestamptz,
    status        text NOT NULL CHECK (status IN ('OPEN', 'ISSUED', 'PAID')),
    amount_due    bigint,
    paid_at       timestamptz
);
CREATE UNIQUE INDEX invoices_one_open ON invoices (merchant_id, environment, currency) WHERE status = 'OPEN';

-- +goose Down
DROP TABLE invoices;
ALTER TABLE disbursements DROP COLUMN funded_by;
DELETE FROM accounts WHERE kind IN ('invoice', 'receivable');
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_kind_check;
ALTER TABLE journal_entries ADD CONSTRAINT journal_entries_kind_check
    CHECK (kind IN ('deposit', 'debit', 'settle', 'fail', 'return'));
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check
    CHECK (kind IN ('deposits', 'available', 'in_flight', 'paid_out', 'fees'));
ALTER TABLE merchant_environments DROP COLUMN credit_limit;
