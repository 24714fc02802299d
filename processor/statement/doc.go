// Package statement follows the banks' own record of what they did, their
// statements, and holds the ledger to it. It does not consume Kafka: it
// sits beside the dispatch stage (the dispatch worker starts it) because
// it settles the same payouts.
//
// Two things live here:
//
//   - Follower reads each bank's statement at one environment's gateway
//     continuously from a cursor stored in Postgres (table
//     statement_cursors, keyed by bank and environment) and applies what it
//     finds to that environment's payouts only: a RETURNED entry moves the payout COMPLETED -> REVERSED with
//     the money back (ledger.Store.Return); a PAID, REJECTED or RETURNED
//     entry for a payout still PROCESSING here (its outcome unknown, its
//     worker gone) settles it from the statement first (ledger.Store.Settle).
//     Each move acts only from the status it expects, so an entry applied
//     twice (a crash before the cursor was stored, two followers for a
//     moment) changes nothing the second time: every return is applied
//     exactly once, however many payouts complete meanwhile, because the
//     statement is read in full, in order, not sampled by recency.
//     The cursor is stored only after the entries before it are applied.
//     One follower per bank and environment at a time holds the lease row;
//     the others stand by and take over when it lapses.
//
//   - Reconcile compares one bank's statement for a day (Asia/Jakarta)
//     with the ledger's settlements and returns and lists every
//     difference: paid by the bank but not COMPLETED here, COMPLETED here
//     but unknown to the bank, amount differences, returns not applied,
//     reversals the bank never booked. `disburse reconcile` runs it once;
//     Schedule runs it in the dispatch worker every 15 minutes for today
//     and yesterday and exports disburse_reconcile_differences{environment,bank}.
//     Both work on one environment: its gateway, its payouts.
//
// Neither publishes status events: the change and its payout_events row
// are written by the ledger in one transaction, and the events relay
// carries them to Kafka.
package statement
