// Package signature signs and verifies disburse callbacks. It depends only
// on the standard library, so merchants can import it on its own:
//
//	err := signature.Verify(secret, r.Header.Get("X-Callback-Signature"), body, 5*time.Minute, time.Now())
//
// The header is "t=<unix seconds>,v1=<hex>[,v1=<hex>...]" where each v1 is
// HMAC-SHA256(secret, "<t>.<raw body>") under one of the environment's
// valid secrets (two while a rotated secret is in its grace period). A
// callback is authentic when any v1 matches a secret the merchant holds and
// t is within the tolerance of the merchant's clock, which bounds replays.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// HeaderName is the HTTP header that carries the signature.
const HeaderName = "X-Callback-Signature"

// MaxHeader bounds the header Parse accepts.
const MaxHeader = 4096

var (
	// ErrMalformed: the header is not "t=<unix>,v1=<hex>...".
	ErrMalformed = errors.New("signature: malformed header")
	// ErrNoMatch: no v1 value matches the secret.
	ErrNoMatch = errors.New("signature: no v1 signature matches the secret")
	// ErrTooOld: t is outside the tolerance (a replay, or a skewed clock).
	ErrTooOld = errors.New("signature: timestamp outside the tolerance")
)

// Header is a parsed signature header.
type Header struct {
	Timestamp int64
	V1        [][]byte // decoded HMAC values
}

// Sign returns the header value for body sent at t, with one v1 value per
// secret, in the order given.
func Sign(t time.Time, body []byte, secrets ...string) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=")
	b.WriteString(ts)
	for _, s := range secrets {
		b.WriteString(",v1=")
		b.WriteString(hex.EncodeToString(mac(s, ts, body)))
	}
	return b.String()
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Parse reads a header. Items are comma-separated key=value pairs; exactly
// one t, at least one v1; unknown keys (future schemes) are ignored.
func Parse(header string) (Header, error) {
	var h Header
	if len(header) > MaxHeader {
		return h, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxHeader)
	}
	seenT := false
	for _, item := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return Header{}, fmt.Errorf("%w: item without '='", ErrMalformed)
		}
		switch k {
		case "t":
			if seenT {
				return Header{}, fmt.Errorf("%w: t given twice", ErrMalformed)
			}
			ts, err := strconv.ParseInt(v, 10, 64)
			if err != nil || ts <= 0 || v[0] == '+' {
				return Header{}, fmt.Errorf("%w: t is not a positive unix time", ErrMalformed)
			}
			h.Timestamp, seenT = ts, true
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return Header{}, fmt.Errorf("%w: v1 is not 64 hex digits", ErrMalformed)
			}
			h.V1 = append(h.V1, sig)
		}
	}
	if !seenT || len(h.V1) == 0 {
		return Header{}, fmt.Errorf("%w: needs t and at least one v1", ErrMalformed)
	}
	return h, nil
}

// Verify checks that header signs body under secret and that its timestamp
// is within tolerance of now (either side). Compare in constant time; read
// body as the raw bytes received, before any JSON parsing.
func Verify(secret, header string, body []byte, tolerance time.Duration, now time.Time) error {
	h, err := Parse(header)
	if err != nil {
		return err
	}
	want := mac(secret, strconv.FormatInt(h.Timestamp, 10), body)
	matched := false
	for _, sig := range h.V1 {
		if hmac.Equal(sig, want) {
			matched = true
		}
	}
	if !matched {
		return ErrNoMatch
	}
	age := now.Sub(time.Unix(h.Timestamp, 0))
	if age > tolerance || -age > tolerance {
		return fmt.Errorf("%w: signed %s ago, tolerance %s", ErrTooOld, age.Round(time.Second), tolerance)
	}
	return nil
}
