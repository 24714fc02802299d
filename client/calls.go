package client

import (
	"context"
	"io"
	"iter"
	"net/url"
	"strconv"
	"time"
)

// page is one page of a cursor list.
type page[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// pages iterates over every item of a cursor list, fetching a page when
// the last one is used up; an error ends the iteration after it is
// yielded. cursorParam names the query parameter the next page takes.
func pages[T any](ctx context.Context, c *Client, path string, q url.Values, cursorParam string) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		cursor := ""
		for {
			pq := url.Values{}
			for k, v := range q {
				pq[k] = v
			}
			if cursor != "" {
				pq.Set(cursorParam, cursor)
			}
			var p page[T]
			if err := c.do(ctx, "GET", path, pq, nil, &p, false); err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, item := range p.Data {
				if !yield(item, nil) {
					return
				}
			}
			if p.NextCursor == nil || *p.NextCursor == "" || len(p.Data) == 0 {
				return
			}
			cursor = *p.NextCursor
		}
	}
}

// CreateDisbursement creates one payout (202, PENDING). The same
// Idempotency-Key (made for the call, or WithIdempotencyKey) goes with
// every retry: the payout is created once.
func (c *Client) CreateDisbursement(ctx context.Context, req DisbursementRequest, opts ...CallOption) (Disbursement, error) {
	var d Disbursement
	err := c.do(ctx, "POST", "/v1/disbursements", nil, req, &d, true, opts...)
	return d, err
}

// GetDisbursement reads one payout.
func (c *Client) GetDisbursement(ctx context.Context, id string) (Disbursement, error) {
	var d Disbursement
	err := c.do(ctx, "GET", "/v1/disbursements/"+url.PathEscape(id), nil, nil, &d, false)
	return d, err
}

// ListDisbursements iterates over the payouts matching f, newest first.
func (c *Client) ListDisbursements(ctx context.Context, f DisbursementFilter) iter.Seq2[Disbursement, error] {
	return pages[Disbursement](ctx, c, "/v1/disbursements", filterQuery(f), "cursor")
}

// CancelDisbursement cancels a payout not yet handed to its bank (PENDING,
// or parked with no transfer call); its debit returns to the balance. A
// payout at its bank or ended answers an *Error with Code
// "NOT_CANCELLABLE" (409). Cancelling twice answers the cancelled payout
// again, so retries are safe.
func (c *Client) CancelDisbursement(ctx context.Context, id string) (Disbursement, error) {
	var d Disbursement
	err := c.do(ctx, "POST", "/v1/disbursements/"+url.PathEscape(id)+"/cancel", nil, nil, &d, false)
	return d, err
}

// CancelBatch cancels every item of a batch not yet handed to its bank and
// says how many were and were not cancelled. Repeating it is harmless.
func (c *Client) CancelBatch(ctx context.Context, id string) (BatchCancel, error) {
	var bc BatchCancel
	err := c.do(ctx, "POST", "/v1/batches/"+url.PathEscape(id)+"/cancel", nil, nil, &bc, false)
	return bc, err
}

// CreateBatch creates a batch from JSON items, once per Idempotency-Key.
func (c *Client) CreateBatch(ctx context.Context, req BatchRequest, opts ...CallOption) (BatchAccepted, error) {
	var a BatchAccepted
	err := c.do(ctx, "POST", "/v1/batches", nil, req, &a, true, opts...)
	return a, err
}

// CreateBatchCSV creates a batch from a CSV file (header row of column
// names) with the batch's reference and mode ("" for all_or_nothing).
func (c *Client) CreateBatchCSV(ctx context.Context, referenceID, mode string, csv []byte, opts ...CallOption) (BatchAccepted, error) {
	q := url.Values{"reference_id": {referenceID}}
	if mode != "" {
		q.Set("mode", mode)
	}
	var a BatchAccepted
	err := c.do(ctx, "POST", "/v1/batches", q, csv, &a, true, append(opts, func(o *callOpts) { o.contentType = "text/csv" })...)
	return a, err
}

// GetBatch reads a batch and its progress.
func (c *Client) GetBatch(ctx context.Context, id string) (Batch, error) {
	var b Batch
	err := c.do(ctx, "GET", "/v1/batches/"+url.PathEscape(id), nil, nil, &b, false)
	return b, err
}

// ListBatches iterates over the environment's batches, newest first.
func (c *Client) ListBatches(ctx context.Context, f BatchFilter) iter.Seq2[Batch, error] {
	q := url.Values{}
	if f.ReferenceID != "" {
		q.Set("reference_id", f.ReferenceID)
	}
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
	return pages[Batch](ctx, c, "/v1/batches", q, "cursor")
}

// ListBatchItems iterates over a batch's payouts, optionally of one status.
func (c *Client) ListBatchItems(ctx context.Context, batchID, status string) iter.Seq2[Disbursement, error] {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	return pages[Disbursement](ctx, c, "/v1/batches/"+url.PathEscape(batchID)+"/items", q, "cursor")
}

// Balance reads the environment's balance.
func (c *Client) Balance(ctx context.Context) (Balance, error) {
	var b Balance
	err := c.do(ctx, "GET", "/v1/balance", nil, nil, &b, false)
	return b, err
}

func periodQuery(p Period) url.Values {
	q := url.Values{}
	if !p.From.IsZero() {
		q.Set("from", p.From.UTC().Format(time.RFC3339Nano))
	}
	if !p.To.IsZero() {
		q.Set("to", p.To.UTC().Format(time.RFC3339Nano))
	}
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	return q
}

// BalanceTransactions iterates over the balance statement, oldest first,
// each line with the balance after it.
func (c *Client) BalanceTransactions(ctx context.Context, p Period) iter.Seq2[Movement, error] {
	return pages[Movement](ctx, c, "/v1/balance/transactions", periodQuery(p), "cursor")
}

// BalanceTransactionsCSV streams the statement as CSV; close the reader.
func (c *Client) BalanceTransactionsCSV(ctx context.Context, p Period) (io.ReadCloser, error) {
	p.Limit = 0
	resp, err := c.send(ctx, "GET", "/v1/balance/transactions.csv", periodQuery(p), nil, false)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Banks lists the supported banks and e-wallets and whether each is up.
func (c *Client) Banks(ctx context.Context) ([]Bank, error) {
	var out struct {
		Data []Bank `json:"data"`
	}
	err := c.do(ctx, "GET", "/v1/banks", nil, nil, &out, false)
	return out.Data, err
}

// AccountInquiry asks the bank about an account.
func (c *Client) AccountInquiry(ctx context.Context, bankCode, accountNumber string) (Inquiry, error) {
	var in Inquiry
	err := c.do(ctx, "POST", "/v1/account-inquiry", nil, map[string]string{"bank_code": bankCode, "account_number": accountNumber}, &in, false)
	return in, err
}

// Settings reads the environment's settings (callback URL and secret, IP
// whitelist, rate limits).
func (c *Client) Settings(ctx context.Context) (Settings, error) {
	var s Settings
	err := c.do(ctx, "GET", "/v1/settings", nil, nil, &s, false)
	return s, err
}

// UpdateSettings changes the callback URL, the IP whitelist and/or the
// callback delivery settings (batch size, concurrency).
func (c *Client) UpdateSettings(ctx context.Context, p SettingsPatch) (Settings, error) {
	var s Settings
	err := c.do(ctx, "PATCH", "/v1/settings", nil, p, &s, false)
	return s, err
}

// RotateSecretKey issues a new secret key; the old one keeps working for
// the grace period. The client goes on with the old key: make a new
// client with the new one.
func (c *Client) RotateSecretKey(ctx context.Context) (map[string]any, error) {
	var out map[string]any
	err := c.do(ctx, "POST", "/v1/settings/secret-key/rotate", nil, nil, &out, false)
	return out, err
}

// RotateCallbackSecret issues a new callback secret; the old one signs
// beside it for the grace period.
func (c *Client) RotateCallbackSecret(ctx context.Context) (map[string]any, error) {
	var out map[string]any
	err := c.do(ctx, "POST", "/v1/settings/callback-secret/rotate", nil, nil, &out, false)
	return out, err
}

// Events iterates over the environment's payout status changes after the
// event id after ("" from the first), in a stable order. It stops at the
// end of the feed; call it again with the last id to follow.
func (c *Client) Events(ctx context.Context, after string) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for {
			q := url.Values{}
			if after != "" {
				q.Set("after", after)
			}
			var p struct {
				Data       []Event `json:"data"`
				NextCursor string  `json:"next_cursor"`
				HasMore    bool    `json:"has_more"`
			}
			if err := c.do(ctx, "GET", "/v1/events", q, nil, &p, false); err != nil {
				yield(Event{}, err)
				return
			}
			for _, e := range p.Data {
				if !yield(e, nil) {
					return
				}
			}
			if !p.HasMore || p.NextCursor == "" {
				return
			}
			after = p.NextCursor
		}
	}
}

// Callbacks iterates over the delivery log, newest first, optionally of
// one status (pending, delivered, failed).
func (c *Client) Callbacks(ctx context.Context, status string) iter.Seq2[Callback, error] {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	return pages[Callback](ctx, c, "/v1/callbacks", q, "cursor")
}

// GetCallback reads one callback with its attempts.
func (c *Client) GetCallback(ctx context.Context, id string) (Callback, error) {
	var cb Callback
	err := c.do(ctx, "GET", "/v1/callbacks/"+url.PathEscape(id), nil, nil, &cb, false)
	return cb, err
}

// RedeliverCallback sends a callback again.
func (c *Client) RedeliverCallback(ctx context.Context, id string) (Callback, error) {
	var cb Callback
	err := c.do(ctx, "POST", "/v1/callbacks/"+url.PathEscape(id)+"/redeliver", nil, nil, &cb, false)
	return cb, err
}

func reportQuery(r ReportQuery) url.Values {
	q := filterQuery(r.Filter)
	q.Del("limit")
	q.Set("from", r.From)
	q.Set("to", r.To)
	if r.TZ != "" {
		q.Set("tz", r.TZ)
	}
	if r.GroupBy != "" {
		q.Set("group_by", r.GroupBy)
	}
	return q
}

// ReportSummary counts the payouts created in the period, each once under
// its current status, grouped by day, bank or status.
func (c *Client) ReportSummary(ctx context.Context, r ReportQuery) ([]ReportRow, error) {
	var out struct {
		Data []ReportRow `json:"data"`
	}
	err := c.do(ctx, "GET", "/v1/reports/summary", reportQuery(r), nil, &out, false)
	return out.Data, err
}

// ReportCSV streams the CSV export of the payouts created in the period;
// close the reader.
func (c *Client) ReportCSV(ctx context.Context, r ReportQuery) (io.ReadCloser, error) {
	r.GroupBy = ""
	resp, err := c.send(ctx, "GET", "/v1/reports/disbursements.csv", reportQuery(r), nil, false)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// OpenAPI reads the API's OpenAPI document.
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	resp, err := c.send(ctx, "GET", "/v1/openapi.yaml", nil, nil, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}
