// Package callbacks tells merchants about their payouts: it records a
// callback (webhook) for every terminal status change and completed batch,
// and delivers it to the environment's callback_url, signed, retried for
// days, with nothing held only in memory.
//
// Data flow:
//
//	status / batches topics -> processor/callbackstage -> Store.Enqueue (one row per callback id,
//	    idempotent) -> offsets committed -> Worker: Store.Claim (leases due rows, at most the
//	    environment's callback_concurrency) -> signed POST -> Store.Finish (attempt logged;
//	    delivered, retried after backoff, or failed after RetryFor). An environment with
//	    callback_batch_size > 1: Store.ClaimBatches (one lease per group of up to that many)
//	    -> one signed "callbacks.batch" POST -> Store.FinishBatch (an attempt on each)
//
// Policy holds the URL safety rules, checked when a URL is set (CheckURL)
// and at every connection (a dialer Control function, against DNS
// rebinding). Secrets are per environment; a rotation keeps the previous
// secret signing beside the new one for a grace period. The signature
// scheme itself lives in callbacks/signature, which merchants import alone.
package callbacks
