package httpbank

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/disburse/disburse/connectors"
)

// ErrBadRequest: the request was malformed (the bank answered 400, or the
// client would not send it: empty or over-long reference). It was not sent
// and sending it again will not help.
var ErrBadRequest = errors.New("httpbank: bad request")

// Error codes of the bank API's error bodies {"error","code"}.
const (
	codeBadRequest       = "BAD_REQUEST"
	codeUnknownBank      = "UNKNOWN_BANK"
	codeUnknownReference = "UNKNOWN_REFERENCE"
	codeBadCursor        = "BAD_CURSOR"
)

// Error is a failed call to a bank. Check it with errors.Is against
// connectors.ErrNotSent (the bank certainly did not act on the request),
// connectors.ErrUnknownReference, connectors.ErrUnknownBank,
// connectors.ErrRateLimited (429), connectors.ErrBadCursor and ErrBadRequest; use errors.As for the HTTP details and RetryAfter.
type Error struct {
	Op         string        // "transfer", "status", "inquiry" or "statement"
	Bank       string        // the bank called: for an e-wallet, its host bank
	StatusCode int           // HTTP status; 0 when no response arrived
	Code       string        // the bank's error code, when its body had one
	Message    string        // the bank's error message, or what went wrong
	RetryAfter time.Duration // from Retry-After on 429 and 503
	NotSent    bool          // the bank did not act on the request
	Err        error         // the cause: transport, decoding or a sentinel
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "httpbank: %s at %s", e.Op, e.Bank)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.NotSent {
		b.WriteString(" (not sent)")
	} else if e.Op == opTransfer {
		b.WriteString(" (outcome unknown)")
	}
	return b.String()
}

// RetryDelay is the bank's Retry-After (connectors.RetryDelay reads it).
func (e *Error) RetryDelay() time.Duration { return e.RetryAfter }

// Unwrap exposes the sentinels the error stands for, and its cause.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.NotSent {
		errs = append(errs, connectors.ErrNotSent)
	}
	if e.StatusCode == http.StatusTooManyRequests {
		errs = append(errs, connectors.ErrRateLimited)
	}
	switch e.Code {
	case codeBadRequest:
		errs = append(errs, ErrBadRequest)
	case codeUnknownBank:
		errs = append(errs, connectors.ErrUnknownBank)
	case codeUnknownReference:
		errs = append(errs, connectors.ErrUnknownReference)
	case codeBadCursor:
		errs = append(errs, connectors.ErrBadCursor)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}
