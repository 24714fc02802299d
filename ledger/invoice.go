package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Invoice billing. An invoice-billed environment spends against a credit
// limit instead of its deposit: each debit moves money from the invoice
// account (the open period's usage, negative) to in flight. Closing the
// period issues the invoice (invoice -> receivable); the merchant's payment
// settles it (deposits -> receivable). Credit used is what the open period
// and the unpaid invoices owe together.

var (
	// ErrNoOpenInvoice: the environment is not invoice-billed.
	ErrNoOpenInvoice = errors.New("ledger: no open invoice period (the environment is billed by deposit)")
	// ErrInvoiceState: the invoice is not ISSUED (already paid, or still open).
	ErrInvoiceState = errors.New("ledger: invoice is not awaiting payment")
)

// InvoiceRecord is one invoice period.
type InvoiceRecord struct {
	ID          int64      `json:"id"`
	Currency    string     `json:"currency"`
	PeriodStart time.Time  `json:"period_start"`
	PeriodEnd   *time.Time `json:"period_end"`
	Status      string     `json:"status"`
	AmountDue   *int64     `json:"amount_due"`
	PaidAt      *time.Time `json:"paid_at"`
}

// InvoiceBalance is the invoice part of GET /v1/balance.
type InvoiceBalance struct {
	PeriodStart    time.Time `json:"period_start"`
	Used           int64     `json:"used"`            // in the open period
	Unpaid         int64     `json:"unpaid_invoices"` // issued, not yet paid
	CreditLimit    int64     `json:"credit_limit"`
	LimitRemaining int64     `json:"limit_remaining"`
}

// SetBilling switches an environment between deposit and invoice billing
// and sets its credit limit; switching to invoice opens a period.
func (s *Store) SetBilling(ctx context.Context, merchantID, environment, billing string, creditLimit int64) error {
	if billing != "deposit" && billing != "invoice" {
		return fmt.Errorf("billing must be deposit or invoice, got %q", billing)
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE merchant_environments SET billing = $3, credit_limit = $4
			WHERE merchant_id = $1 AND environment = $2`, merchantID, environment, billing, creditLimit)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNoAccounts
		}
		if billing == "invoice" {
			_, err = tx.Exec(ctx, `INSERT INTO invoices (merchant_id, environment, currency, period_start, status)
				VALUES ($1, $2, 'IDR', now(), 'OPEN') ON CONFLICT DO NOTHING`, merchantID, environment)
		}
		return err
	})
}

// CloseInvoice ends the open period: the usage becomes an issued invoice
// awaiting payment, and a new period opens.
func (s *Store) CloseInvoice(ctx context.Context, merchantID, environment, currency string) (InvoiceRecord, error) {
	var inv InvoiceRecord
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var billing string
		err := tx.QueryRow(ctx, `SELECT billing FROM merchant_environments WHERE merchant_id = $1 AND environment = $2`,
			merchantID, environment).Scan(&billing)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && billing != "invoice") {
			return ErrNoOpenInvoice
		}
		if err != nil {
			return err
		}
		// Lock the invoice account first: debits lock it too, so no payout
		// slips between reading the usage and closing.
		var usage int64
		err = tx.QueryRow(ctx, `SELECT balance FROM accounts WHERE merchant_id = $1 AND environment = $2
			AND currency = $3 AND kind = 'invoice' FOR NO KEY UPDATE`, merchantID, environment, currency).Scan(&usage)
		if err != nil {
			return fmt.Errorf("lock invoice account: %w", err)
		}
		due := -usage
		err = tx.QueryRow(ctx, `UPDATE invoices SET status = 'ISSUED', period_end = now(), amount_due = $4
			WHERE merchant_id = $1 AND environment = $2 AND currency = $3 AND status = 'OPEN'
			RETURNING id, currency, period_start, period_end, status, amount_due, paid_at`,
			merchantID, environment, currency, due).Scan(&inv.ID, &inv.Currency, &inv.PeriodStart, &inv.PeriodEnd, &inv.Status, &inv.AmountDue, &inv.PaidAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNoOpenInvoice
		}
		if err != nil {
			return err
		}
		if due != 0 {
			if err := post(ctx, tx, "invoice_close", merchantID, environment, currency, nil,
				fmt.Sprintf("invoice %d issued", inv.ID), map[string]int64{Invoice: due, Receivable: -due}); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO invoices (merchant_id, environment, currency, period_start, status)
			VALUES ($1, $2, $3, now(), 'OPEN')`, merchantID, environment, currency)
		return err
	})
	return inv, err
}

// PayInvoice records the merchant's payment of an issued invoice, once.
func (s *Store) PayInvoice(ctx context.Context, merchantID, environment string, invoiceID int64) (InvoiceRecord, error) {
	var inv InvoiceRecord
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT id, currency, period_start, period_end, status, amount_due, paid_at FROM invoices
			WHERE id = $1 AND merchant_id = $2 AND environment = $3 FOR UPDATE`, invoiceID, merchantID, environment).
			Scan(&inv.ID, &inv.Currency, &inv.PeriodStart, &inv.PeriodEnd, &inv.Status, &inv.AmountDue, &inv.PaidAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrInvoiceState
		}
		if err != nil {
			return err
		}
		if inv.Status != "ISSUED" {
			return ErrInvoiceState
		}
		if due := *inv.AmountDue; due != 0 {
			if err := post(ctx, tx, "invoice_payment", merchantID, environment, inv.Currency, nil,
				fmt.Sprintf("invoice %d paid", inv.ID), map[string]int64{Deposits: -due, Receivable: due}); err != nil {
				return err
			}
		}
		return tx.QueryRow(ctx, `UPDATE invoices SET status = 'PAID', paid_at = now() WHERE id = $1 RETURNING status, paid_at`,
			inv.ID).Scan(&inv.Status, &inv.PaidAt)
	})
	return inv, err
}

// Invoices lists an environment's invoice periods, newest first.
func (s *Store) Invoices(ctx context.Context, merchantID, environment string) ([]InvoiceRecord, error) {
	rows, err := s.db.Query(ctx, `SELECT id, currency, period_start, period_end, status, amount_due, paid_at FROM invoices
		WHERE merchant_id = $1 AND environment = $2 ORDER BY id DESC LIMIT 100`, merchantID, environment)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (InvoiceRecord, error) {
		var inv InvoiceRecord
		err := r.Scan(&inv.ID, &inv.Currency, &inv.PeriodStart, &inv.PeriodEnd, &inv.Status, &inv.AmountDue, &inv.PaidAt)
		return inv, err
	})
}
