// Package banksim is the sandbox bank: a real HTTP server that plays every
// bank in the connectors directory, so that sandbox payouts, development and
// tests run the same connector code as production against something that
// behaves like a bank: it takes time, fails, goes down, rate limits, and
// keeps a ledger of every reference it was sent.
//
// Only banks (Kind "bank") have endpoints. An e-wallet is paid through its
// host bank: the client sends to /banks/{host}/... with the virtual account
// number from connectors.Bank.DestinationAccount, and the host bank applies
// the e-wallet's limits to it.
//
// # Bank API
//
//	POST /banks/{bank}/transfers            {"reference","account_number","account_holder_name","amount","currency"}
//	                                        -> 200 {"reference","status","failure_code"}
//	GET  /banks/{bank}/transfers/{reference} -> 200 the same, or 404 code UNKNOWN_REFERENCE
//	POST /banks/{bank}/inquiries            {"account_number"} -> 200 {"account_number","account_holder_name","status"}
//	GET  /banks/{bank}/statement?after=CURSOR&limit=N&from=T&to=T
//	                                        -> 200 {"entries":[{"cursor","booked_at","reference","kind","amount",
//	                                                 "currency","failure_code"}],"next","has_more"}
//
// # Statement
//
// The statement is what the bank booked, as a real bank's statement or
// return file lists it: every transfer it PAID or REJECTED and every later
// RETURNED, each its own entry with its booking time, reference, amount and
// kind (REJECTED with its failure code). A transfer is booked when the bank
// decides it, not when it receives it: an ordinary one PAID at once, a
// PROCESSING one PAID when it completes, a ...3333 one PAID at once and
// RETURNED after Options.ReturnDelay, a ...4444 one PAID and RETURNED at
// once (two entries), a refused one REJECTED at once. A
// duplicate receipt books nothing. Each bank has its own statement (an
// e-wallet's transfers are in its host bank's); entries are in booking
// order, which is also time order, and never change.
//
// Read it from the start with no after, then pass next as after: the page
// holds up to limit entries (default 500, at most 5000) after the cursor;
// has_more says more are there now; next is the last entry's cursor, or
// after itself when there is nothing new. from and to (RFC 3339) keep only
// entries booked in [from, to). The endpoint has the bank's gate (down,
// rate limit) and latency like the others.
//
// A cursor is this server's: one that is malformed, past the statement's
// end or handed out by another run of the server (the statement lives in
// memory) is 400 BAD_CURSOR. A limit or time that does not parse is 400
// BAD_REQUEST.
//
// Errors are JSON {"error": "<message>", "code": "<CODE>"}:
//
//	400 BAD_REQUEST       body not JSON, no reference, reference longer than 128 bytes; nothing recorded
//	400 BAD_CURSOR        a statement cursor the bank never handed out
//	404 UNKNOWN_BANK      no such bank; nothing recorded
//	404 UNKNOWN_REFERENCE the bank never received this reference (status only)
//	429 RATE_LIMITED      over the bank's rate limit, with Retry-After; nothing recorded
//	500 INTERNAL_ERROR    injected error; before or after recording (see BankConfig)
//	503 BANK_DOWN         the bank is down; nothing recorded
//
// A 503 from this API always means the request was not acted on; a 500 may
// or may not have been.
//
// A reference is recorded once, whatever bank it came through. Sending it
// again pays nothing: the bank answers the stored transfer's current status
// and counts a duplicate receipt in its ledger (and a conflict when the
// amount, bank or account differ from the first receipt).
//
// Transfers are recorded first and answered after the bank's latency, so a
// client that gives up while waiting leaves a recorded transfer behind, as a
// real bank would.
//
// # Magic account numbers
//
// By the suffix of the destination account (for an e-wallet, of the phone
// number, which ends the virtual account):
//
//	...0000  FAILED INVALID_ACCOUNT; inquiry INVALID
//	...1111  FAILED BANK_REJECTED
//	...9999  FAILED ACCOUNT_CLOSED; inquiry CLOSED
//	...2222  recorded as PROCESSING; the response hangs for Options.Hang or until
//	         the client gives up; COMPLETED after Options.CompleteDelay
//	...3333  COMPLETED, then RETURNED after Options.ReturnDelay
//	...4444  paid and returned at once: the response hangs like ...2222, and the
//	         first status query answers RETURNED (a caller whose first definite
//	         answer is a return)
//	other    COMPLETED after the bank's latency (or, for the ProcessingRate
//	         fraction, PROCESSING then COMPLETED after Options.CompleteDelay)
//
// An account of the wrong shape for the bank (connectors.Bank.ValidateAccount)
// fails with INVALID_ACCOUNT, an amount outside the bank's or e-wallet's
// limits with AMOUNT_LIMIT_EXCEEDED, a currency other than IDR with
// BANK_REJECTED. The bank does not compare account_holder_name with its
// directory: name checks are the caller's, through an inquiry. Inquiry names
// are upper case and deterministic per account number.
//
// # Admin API
//
//	GET  /admin/ledger                 {"transfers","receipts","duplicates":[{"reference","count"}],"conflicts":[...],"by_bank":{...}}
//	GET  /admin/ledger/{reference}     {"reference","received","bank","status","failure_code","conflict"}
//	GET  /admin/banks                  every bank's state
//	POST /admin/banks/{bank}/down      the bank answers 503 to everything
//	POST /admin/banks/{bank}/up
//	GET  /admin/banks/{bank}/config
//	POST /admin/banks/{bank}/config    partial update: {"latency":{"median_ms","p99_ms"},"error_rate_before",
//	                                   "error_rate_after","processing_rate","rate_limit"}
//	POST /admin/banks/{bank}/statement {"reference","kind","amount","currency","failure_code"} -> 200 the entry
//	GET  /healthz
//	GET  /readyz                       200 once serving (the simulator depends on nothing)
//
// POST /admin/banks/{bank}/statement is for tests only: it books an entry
// on the bank's statement now, exactly as given, without a transfer behind
// it and without changing the bank's transfers: a payment disburse never
// sent, a second payment or another amount for a reference it did send, a
// return. Reconciliation must then find the difference. kind is PAID,
// REJECTED or RETURNED, amount positive, currency IDR when absent; a bad
// body is 400 and books nothing.
//
// Tests in Go use the same controls through Server's methods (Received,
// Duplicates, Ledger, SetDown, Configure, Statement, Inject).
package banksim
