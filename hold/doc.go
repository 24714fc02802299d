// Package hold keeps payouts that wait before PENDING (issue 14): for a
// checker's approval (maker-checker, AWAITING_APPROVAL) or for their time
// (scheduled payouts, SCHEDULED). Nothing held is debited, so ending a
// hold (reject, expire, cancel) gives nothing back.
//
// Data flow:
//
//   - The API creates a held payout or batch through the usual create
//     (payout.Store.CreateSetThen, batch.Store.CreateHeld) and, in the same
//     transaction, Place moves its PENDING payouts to their hold and stores
//     the hold row (table holds). The API publishes nothing for it.
//   - Decide (the API's approve and reject) and Worker (run by the relay
//     role: due schedules, expired approvals) move held payouts on with
//     payout.MoveAll, so each step writes its payout_events rows, which the
//     outbox relay publishes. A payout that becomes PENDING is published to
//     the requests topic by whoever released it, through the path a new
//     payout takes; from there nothing downstream knows it was held.
//   - A crash between a release's commit and its publish leaves the payout
//     PENDING with released_at set: Worker publishes such payouts again
//     after RepublishAfter (the debit dedups), so a schedule firing during a
//     restart is late, never lost.
//   - Callbacks announce the approval steps (approval.requested,
//     approval.approved, approval.rejected, approval.expired); the payouts'
//     own status callbacks follow as for any payout.
package hold
