// Package batch holds bulk payouts: one request of up to 100,000 items, as
// JSON or CSV. The parsers stream the body item by item, so a batch is never
// held as one document in memory. Validation reports every invalid row
// (row number, field, code). The Postgres store inserts the items as PENDING
// payouts in one transaction, through a COPY into a temporary table. Each
// item's id derives from its reference_id, so an item whose reference the
// merchant already used, in this batch or any earlier one, is never paid again.
// Accepted items then flow through the same pipeline as single payouts.
// A batch's progress (counts and sums per item status and failure code) is kept by a
// trigger in the same transaction as each item's status change, so polling
// it reads a handful of rows.
package batch
