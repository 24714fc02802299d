// Package httpbank is the connector for banks that speak the sandbox bank's
// HTTP API (package banksim): it implements connectors.Connector over HTTP.
//
// Before sending, the client checks the payout against the bank directory
// (connectors.Lookup): a payout the directory already rules out (account of
// the wrong shape, amount outside the limits, currency other than IDR) comes
// back as a FAILED Result with its failure code and no error, without
// calling the bank, so the bank will not know its reference. An e-wallet
// payout goes to the e-wallet's host bank, credited to the virtual account
// built from the phone number (connectors.Bank.DestinationAccount).
//
// Errors are *Error. Transfer's errors say whether the payout may be sent
// again: they wrap connectors.ErrNotSent only when the bank certainly did not
// act on it (no connection, request not fully written, 400, 404 unknown bank,
// 413, 429, 503). A timeout, a 500 or any other answer, or a 200 with a body
// that does not parse, leaves the outcome unknown: resolve it with Status.
package httpbank

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/disburse/disburse/connectors"
)

// Defaults.
const (
	// DefaultTimeout bounds each call unless WithTimeout says otherwise. It
	// is well below the sandbox bank's default hang (30s).
	DefaultTimeout = 10 * time.Second
	// DefaultMaxResponseBytes bounds how much of a response body is read.
	DefaultMaxResponseBytes = 1 << 20
	// MaxReferenceLen is the longest reference the bank API takes, in bytes.
	MaxReferenceLen = 128
)

const (
	opTransfer  = "transfer"
	opStatus    = "status"
	opInquiry   = "inquiry"
	opStatement = "statement"
)

// Client talks to banks over HTTP. It is safe for concurrent use.
type Client struct {
	base     string
	hc       *http.Client
	timeout  time.Duration
	maxBytes int64
	token    string // sent as "Authorization: Bearer <token>" when set
}

var _ connectors.Connector = (*Client)(nil)

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client. Its Timeout, if any, applies on top of
// the per-call timeout; leave it zero and use WithTimeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithTimeout bounds each call (its context gets this deadline). Zero or
// negative: only the caller's context bounds it.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) { c.timeout = d }
}

// WithCredential sends token as a bearer credential with every call (a
// real bank gateway's; the sandbox banks take none).
func WithCredential(token string) Option {
	return func(c *Client) { c.token = token }
}

// WithMaxResponseBytes bounds how much of a response body is read; a longer
// body is an error (for Transfer, an unknown outcome).
func WithMaxResponseBytes(n int64) Option {
	return func(c *Client) {
		if n > 0 {
			c.maxBytes = n
		}
	}
}

// New makes a client for the bank API at baseURL (for the sandbox banks,
// the banksim server's root, e.g. "http://127.0.0.1:8090").
//
// The default HTTP client keeps up to 1,024 idle connections to the host:
// every sandbox bank is the same host, and the banks' lanes together may
// have their max in flight each (64 x 6 banks in the fast profile). With
// fewer idle slots than calls in flight, every round of calls closes the
// connections that do not fit and dials new ones (issue 16 measured 9% of
// the bench process's CPU in dialling with 128).
func New(baseURL string, opts ...Option) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 1024
	c := &Client{
		base:     strings.TrimRight(baseURL, "/"),
		hc:       &http.Client{Transport: tr},
		timeout:  DefaultTimeout,
		maxBytes: DefaultMaxResponseBytes,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// idempotent is a request body that carries its own idempotency key.
type idempotent interface{ idempotencyKey() string }

// idempotencyKey: the disbursement id is the reference at the bank, and the
// bank dedups on it. Sent as the Idempotency-Key header, it also lets Go's
// transport resend the POST when the bank closed a kept-alive connection
// just as it was reused (the bank never read it); otherwise that is an
// unknown outcome, resolved by asking the bank and sending again.
func (b transferBody) idempotencyKey() string { return b.Reference }

type transferBody struct {
	Reference         string `json:"reference"`
	AccountNumber     string `json:"account_number"`
	AccountHolderName string `json:"account_holder_name"`
	Amount            int64  `json:"amount"`
	Currency          string `json:"currency"`
}

type transferResult struct {
	Reference   string                    `json:"reference"`
	Status      connectors.TransferStatus `json:"status"`
	FailureCode string                    `json:"failure_code"`
}

type inquiryBody struct {
	AccountNumber string `json:"account_number"`
}

type inquiryResult struct {
	AccountNumber     string `json:"account_number"`
	AccountHolderName string `json:"account_holder_name"`
	Status            string `json:"status"`
}

// route is where a bank code's requests go: the bank itself, or an
// e-wallet's host bank.
func route(op, code string) (dest, host connectors.Bank, err error) {
	dest, ok := connectors.Lookup(code)
	if !ok {
		return dest, host, &Error{Op: op, Bank: code, NotSent: true, Err: connectors.ErrUnknownBank}
	}
	host = dest
	if dest.IsEWallet() {
		if host, ok = connectors.Lookup(dest.HostBank); !ok {
			return dest, host, &Error{Op: op, Bank: dest.HostBank, NotSent: true, Err: connectors.ErrUnknownBank}
		}
	}
	return dest, host, nil
}

// Transfer sends a payout. See the package doc for what its errors mean.
// A FAILED result from the bank with no failure code reads BANK_REJECTED.
func (c *Client) Transfer(ctx context.Context, req connectors.TransferRequest) (connectors.Result, error) {
	dest, host, err := route(opTransfer, req.BankCode)
	if err != nil {
		return connectors.Result{}, err
	}
	if req.Reference == "" || len(req.Reference) > MaxReferenceLen {
		return connectors.Result{}, &Error{Op: opTransfer, Bank: host.Code, NotSent: true, Err: ErrBadRequest,
			Message: fmt.Sprintf("reference must have 1 to %d bytes", MaxReferenceLen)}
	}
	failed := func(code string) (connectors.Result, error) {
		return connectors.Result{Reference: req.Reference, Status: connectors.StatusFailed, FailureCode: code}, nil
	}
	currency := req.Currency
	if currency == "" {
		currency = "IDR"
	}
	switch {
	case dest.ValidateAccount(req.AccountNumber) != nil:
		return failed(connectors.FailureInvalidAccount)
	case currency != "IDR":
		return failed(connectors.FailureBankRejected)
	case dest.ValidateAmount(req.Amount) != nil:
		return failed(connectors.FailureAmountLimit)
	}

	body := transferBody{
		Reference:         req.Reference,
		AccountNumber:     dest.DestinationAccount(req.AccountNumber),
		AccountHolderName: req.AccountHolderName,
		Amount:            req.Amount,
		Currency:          currency,
	}
	var out transferResult
	if err := c.call(ctx, opTransfer, host.Code, http.MethodPost, "/banks/"+url.PathEscape(host.Code)+"/transfers", body, &out); err != nil {
		return connectors.Result{}, err
	}
	return c.result(opTransfer, host.Code, req.Reference, out)
}

// Status asks the bank about a reference. It returns an error wrapping
// connectors.ErrUnknownReference only when the bank says it never received
// the reference (404 with code UNKNOWN_REFERENCE).
func (c *Client) Status(ctx context.Context, bankCode, reference string) (connectors.Result, error) {
	_, host, err := route(opStatus, bankCode)
	if err != nil {
		return connectors.Result{}, err
	}
	if reference == "" || len(reference) > MaxReferenceLen {
		return connectors.Result{}, &Error{Op: opStatus, Bank: host.Code, NotSent: true, Err: ErrBadRequest,
			Message: fmt.Sprintf("reference must have 1 to %d bytes", MaxReferenceLen)}
	}
	var out transferResult
	path := "/banks/" + url.PathEscape(host.Code) + "/transfers/" + url.PathEscape(reference)
	if err := c.call(ctx, opStatus, host.Code, http.MethodGet, path, nil, &out); err != nil {
		return connectors.Result{}, err
	}
	return c.result(opStatus, host.Code, reference, out)
}

func (c *Client) result(op, bank, reference string, out transferResult) (connectors.Result, error) {
	switch out.Status {
	case connectors.StatusCompleted, connectors.StatusFailed, connectors.StatusProcessing, connectors.StatusReturned:
	default:
		return connectors.Result{}, &Error{Op: op, Bank: bank, StatusCode: http.StatusOK, Message: fmt.Sprintf("malformed response: status %q", out.Status)}
	}
	if out.Reference != reference {
		return connectors.Result{}, &Error{Op: op, Bank: bank, StatusCode: http.StatusOK, Message: fmt.Sprintf("malformed response: reference %q, asked for %q", out.Reference, reference)}
	}
	res := connectors.Result{Reference: reference, Status: out.Status}
	if out.Status == connectors.StatusFailed {
		res.FailureCode = out.FailureCode
		if res.FailureCode == "" {
			res.FailureCode = connectors.FailureBankRejected
		}
	}
	return res, nil
}

type statementResult struct {
	Entries []connectors.StatementEntry `json:"entries"`
	Next    string                      `json:"next"`
	HasMore bool                        `json:"has_more"`
}

// Statement reads a page of the statement of bankCode's bank (an
// e-wallet's host bank). A cursor the bank does not know is an error
// wrapping connectors.ErrBadCursor; an entry with an unknown kind, no
// reference or no cursor makes the whole page a malformed response.
func (c *Client) Statement(ctx context.Context, bankCode string, q connectors.StatementQuery) (connectors.StatementPage, error) {
	_, host, err := route(opStatement, bankCode)
	if err != nil {
		return connectors.StatementPage{}, err
	}
	v := url.Values{}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339Nano))
	}
	path := "/banks/" + url.PathEscape(host.Code) + "/statement"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var out statementResult
	if err := c.call(ctx, opStatement, host.Code, http.MethodGet, path, nil, &out); err != nil {
		return connectors.StatementPage{}, err
	}
	for _, e := range out.Entries {
		if !e.Kind.Valid() || e.Reference == "" || e.Cursor == "" {
			return connectors.StatementPage{}, &Error{Op: opStatement, Bank: host.Code, StatusCode: http.StatusOK,
				Message: fmt.Sprintf("malformed response: entry %+v", e)}
		}
	}
	page := connectors.StatementPage{Entries: out.Entries, Next: out.Next, More: out.HasMore}
	if page.Entries == nil {
		page.Entries = []connectors.StatementEntry{}
	}
	if page.Next == "" {
		page.Next = q.After
	}
	return page, nil
}

// Inquire looks up an account's holder. An account the directory rules out
// is INVALID without asking the bank. The Inquiry echoes bankCode and
// accountNumber as given (for an e-wallet, the phone number, not the VA).
func (c *Client) Inquire(ctx context.Context, bankCode, accountNumber string) (connectors.Inquiry, error) {
	dest, host, err := route(opInquiry, bankCode)
	if err != nil {
		return connectors.Inquiry{}, err
	}
	inq := connectors.Inquiry{BankCode: bankCode, AccountNumber: accountNumber, Status: connectors.InquiryInvalid}
	if dest.ValidateAccount(accountNumber) != nil {
		return inq, nil
	}
	var out inquiryResult
	body := inquiryBody{AccountNumber: dest.DestinationAccount(accountNumber)}
	if err := c.call(ctx, opInquiry, host.Code, http.MethodPost, "/banks/"+url.PathEscape(host.Code)+"/inquiries", body, &out); err != nil {
		return connectors.Inquiry{}, err
	}
	switch out.Status {
	case connectors.InquiryValid, connectors.InquiryInvalid, connectors.InquiryClosed, connectors.InquiryUnknown:
	default:
		return connectors.Inquiry{}, &Error{Op: opInquiry, Bank: host.Code, StatusCode: http.StatusOK, Message: fmt.Sprintf("malformed response: status %q", out.Status)}
	}
	inq.Status = out.Status
	inq.AccountHolderName = out.AccountHolderName
	return inq, nil
}

// call does one request and decodes a 200 answer into out. Any other answer
// is an *Error that says whether the bank acted on the request.
func (c *Client) call(ctx context.Context, op, bank, method, path string, in, out any) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	fail := func(e *Error) error { e.Op, e.Bank = op, bank; return e }

	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fail(&Error{NotSent: true, Err: err})
		}
		body = bytes.NewReader(b)
	}
	// The request counts as sent once a connection is in hand, unless
	// writing it failed: from then on the bank may have it, even when the
	// round trip fails before WroteRequest is reported.
	var gotConn, writeFailed atomic.Bool
	trace := &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) },
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err != nil {
				writeFailed.Store(true)
			}
		},
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), method, c.base+path, body)
	if err != nil {
		return fail(&Error{NotSent: true, Err: err})
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if k, ok := in.(idempotent); ok {
		req.Header.Set("Idempotency-Key", k.idempotencyKey())
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fail(&Error{NotSent: !gotConn.Load() || writeFailed.Load(), Err: err})
	}
	defer resp.Body.Close()

	raw, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	if err != nil {
		return fail(&Error{StatusCode: resp.StatusCode, Message: "reading response", Err: err, NotSent: notActedOn(resp.StatusCode, "")})
	}
	if int64(len(raw)) > c.maxBytes {
		return fail(&Error{StatusCode: resp.StatusCode, Message: fmt.Sprintf("response larger than %d bytes", c.maxBytes), NotSent: notActedOn(resp.StatusCode, "")})
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			return fail(&Error{StatusCode: resp.StatusCode, Message: "malformed response", Err: err})
		}
		return nil
	}
	var eb struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	_ = json.Unmarshal(raw, &eb) // a body that is not the bank's error JSON leaves both empty
	return fail(&Error{
		StatusCode: resp.StatusCode,
		Code:       eb.Code,
		Message:    eb.Error,
		RetryAfter: retryAfter(resp.Header.Get("Retry-After")),
		NotSent:    notActedOn(resp.StatusCode, eb.Code),
	})
}

// notActedOn says whether an HTTP answer proves the bank did not act on the
// request. It errs towards "maybe it did": a plain 404 (a wrong base URL, a
// proxy) is not proof.
func notActedOn(status int, code string) bool {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return true
	case http.StatusNotFound:
		return code == codeUnknownBank
	}
	return false
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}
