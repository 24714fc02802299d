// Package ledger moves money. It keeps a double-entry ledger in Postgres:
// every movement is one journal entry whose postings sum to zero, and the
// account balances shown to merchants are updated in the same transaction as
// the postings, so they cannot disagree.
//
// Accounts, per merchant, environment and currency:
//
//	deposits   the source of the merchant's money (negative)
//	available  what the merchant can spend (never below zero)
//	in_flight  debited payouts not yet settled (shown as "pending")
//	paid_out   payouts the bank completed
//	fees       fees taken from the merchant
//
// Movements:
//
//	deposit  deposits -x            available +x
//	debit    available -(a+f)       in_flight +(a+f)
//	settle   in_flight -(a+f)       paid_out +a, fees +f
//	fail     in_flight -(a+f)       available +(a+f)
//	return   paid_out -a            available +a   (the fee is kept: the bank did the work)
//
// Each payout movement is guarded twice: by the payout's status (a debit
// happens only from PENDING, a settle only from PROCESSING) and by a unique
// index on (disbursement id, entry kind), so a redelivered or concurrent
// request cannot move money twice.
//
// Locks are always taken in one order: payout rows by id, then account rows
// by id. Deadlocks and serialization failures are retried and counted.
package ledger
