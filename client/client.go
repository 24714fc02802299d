// Package client is the Go client of the disburse merchant API: a typed
// call for every merchant operation, an Idempotency-Key generated for each
// create call and reused on its retries (so a retried call never pays
// twice), iterators over cursor pages, and VerifyCallback for the
// signature of the callbacks disburse sends.
//
//	c := client.New("https://api.example.com", os.Getenv("DISBURSE_KEY"))
//	d, err := c.CreateDisbursement(ctx, client.DisbursementRequest{
//		ReferenceID: "order-1001", BankCode: "bca", AccountNumber: "1234567890", Amount: 150000,
//	})
//	for d, err := range c.ListDisbursements(ctx, client.DisbursementFilter{Statuses: []string{"FAILED"}}) { ... }
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls one environment of the merchant API with its secret key.
type Client struct {
	base string
	key  string
	// HTTP sends the requests (http.DefaultClient when nil).
	HTTP *http.Client
	// MaxRetries is how often a call is retried after a network error, a
	// 429 or a 5xx (default 3); create calls resend their Idempotency-Key.
	MaxRetries int
	// RetryWait is the first wait between tries, doubled each time
	// (default 200 ms); a Retry-After header wins.
	RetryWait time.Duration
}

// New returns a client of the API at baseURL (no trailing /v1) with the
// environment's secret key.
func New(baseURL, secretKey string) *Client {
	return &Client{base: strings.TrimRight(baseURL, "/"), key: secretKey, MaxRetries: 3, RetryWait: 200 * time.Millisecond}
}

// Error is an error answer of the API.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Fields  []struct {
		Field   string `json:"field"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"fields,omitempty"`
	Rows      []RowError `json:"rows,omitempty"`
	RequestID string     `json:"-"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("disburse: %d %s: %s (request %s)", e.Status, e.Code, e.Message, e.RequestID)
}

// NewIdempotencyKey returns a random key, for callers that keep their own.
func NewIdempotencyKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "idem_" + hex.EncodeToString(b)
}

type callOpts struct {
	idempotencyKey string
	contentType    string
	replayed       *bool
}

// CallOption changes one call.
type CallOption func(*callOpts)

// WithIdempotencyKey sets the Idempotency-Key of a create call; without
// it the client makes one and reuses it on the call's retries. Pass your
// own (an order id) to be safe across process restarts too.
func WithIdempotencyKey(key string) CallOption { return func(o *callOpts) { o.idempotencyKey = key } }

// Replayed records whether the answer was a replay of an earlier call
// with the same Idempotency-Key.
func Replayed(out *bool) CallOption { return func(o *callOpts) { o.replayed = out } }

// do sends one call, retrying it; body is JSON-encoded unless it is a
// []byte sent with opts.contentType. out (when not nil) receives the JSON
// answer.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body any, out any, idempotent bool, opts ...CallOption) error {
	resp, err := c.send(ctx, method, path, q, body, idempotent, opts...)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("disburse: decode %s %s: %w", method, path, err)
	}
	return nil
}

// send returns a 2xx answer (its body to close) or the error.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, body any, idempotent bool, opts ...CallOption) (*http.Response, error) {
	var o callOpts
	for _, f := range opts {
		f(&o)
	}
	if idempotent && o.idempotencyKey == "" {
		o.idempotencyKey = NewIdempotencyKey()
	}
	var payload []byte
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		payload, ct = b, o.contentType
	default:
		var err error
		if payload, err = json.Marshal(b); err != nil {
			return nil, err
		}
		ct = "application/json"
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	wait := c.RetryWait
	if wait <= 0 {
		wait = 200 * time.Millisecond
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(payload))
		if err != nil {
			return nil, err
		}
		req.SetBasicAuth(c.key, "")
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		if o.idempotencyKey != "" {
			req.Header.Set("Idempotency-Key", o.idempotencyKey)
		}
		resp, err := hc.Do(req)
		retryable := err != nil
		if err == nil {
			if resp.StatusCode < 300 {
				if o.replayed != nil {
					*o.replayed = resp.Header.Get("Idempotent-Replayed") == "true"
				}
				return resp, nil
			}
			apiErr := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
			var env struct {
				Error *Error `json:"error"`
			}
			env.Error = apiErr
			raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if json.Unmarshal(raw, &env) != nil || apiErr.Code == "" {
				apiErr.Code, apiErr.Message = "HTTP_"+strconv.Itoa(resp.StatusCode), strings.TrimSpace(string(raw))
			}
			err = apiErr
			retryable = resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
			if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 && retryable {
				wait = time.Duration(s) * time.Second
			}
		}
		max := c.MaxRetries
		if !retryable || attempt >= max || ctx.Err() != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func filterQuery(f DisbursementFilter) url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("reference_id", f.ReferenceID)
	set("batch_id", f.BatchID)
	set("bank_code", f.BankCode)
	for _, s := range f.Statuses {
		q.Add("status", s)
	}
	if !f.CreatedFrom.IsZero() {
		q.Set("created_from", f.CreatedFrom.UTC().Format(time.RFC3339Nano))
	}
	if !f.CreatedTo.IsZero() {
		q.Set("created_to", f.CreatedTo.UTC().Format(time.RFC3339Nano))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}
