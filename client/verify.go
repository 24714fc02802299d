package client

import (
	"time"

	"github.com/disburse/disburse/callbacks/signature"
)

// VerifyCallback checks a callback's X-Callback-Signature header against
// the raw body with the environment's callback secret (GET /v1/settings),
// refusing signatures older than tolerance (5 minutes is a good value)
// against now. Verify before acting on a callback; dedup on X-Callback-Id
// and keep the highest data.version per payout.
func VerifyCallback(secret, header string, body []byte, tolerance time.Duration, now time.Time) error {
	return signature.Verify(secret, header, body, tolerance, now)
}
