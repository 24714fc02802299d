// Package controls holds an environment's payout controls (issue 14, item
// 6): velocity limits (amount and count per rolling hour and 24 hours, set
// by the merchant below the operator's ceiling) and the kill switch ("pause
// all payouts", by the merchant or the operator).
//
// Data flow:
//
//   - Store keeps the settings in payout_controls and answers the API.
//   - Gate runs in the ledger stage before each polled batch is debited:
//     payouts of a paused environment are held (left PENDING, not debited;
//     the API's resume publishes them again), payouts over a velocity limit
//     are FAILED with VELOCITY_LIMIT_EXCEEDED (nothing was debited), the rest
//     go on to the debit. The ledger stage consumes each merchant's requests
//     from one partition in order, so the usage Gate counts is the debits
//     before this batch.
//   - Pauses is an in-memory view of the paused environments, refreshed
//     every second, which dispatch asks before a payout's first send: a
//     debited payout of a paused environment is parked, not sent, and goes
//     on after the resume.
//
// Nothing here moves money: a held payout was never debited, a failed one
// is failed from PENDING, and a parked one keeps its debit until it is sent
// or cancelled.
package controls
