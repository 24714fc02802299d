// Package dashboard is the merchant dashboard: server-rendered pages
// (html/template, assets embedded, no script or style from anywhere but
// itself under a strict Content-Security-Policy) in Bahasa Indonesia and
// English, served on its own listener (--dashboard-addr).
//
// A business signs up (a merchant and its owner), signs in at /login, and
// finds the product's menus: Disbursement (Aktivasi of the sandbox with
// the demo deposit, the production request the operator approves, the
// balance and its statement), Settings (secret key rotation, IP whitelist,
// callback URL with a test callback), Payouts (search, a payout's
// timeline, bank calls and callbacks), Bulk upload (a CSV checked before
// anything is sent, then live progress and a results file) and Reports.
//
// Every action goes through the merchant API's own functions (package
// api's exported doors, the merchant, batch, payout, callbacks, ledger and
// reports stores), with the signed-in user as the actor the settings
// audit log records. The package's own state, in Postgres (migration
// 00018), is its users (argon2id password hashes, roles owner, finance
// and viewer, sign-in lockout), sessions (only token hashes stored; a CSRF
// token per session on every form), operator-issued password reset
// links, production activation requests and uploads awaiting "send".
package dashboard
