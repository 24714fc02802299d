package httpbank_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disburse/disburse/connectors"
	"github.com/disburse/disburse/connectors/banksim"
	"github.com/disburse/disburse/connectors/httpbank"
)

// sandbox starts a sandbox bank with quick timings and a client for it.
func sandbox(t *testing.T, opts ...httpbank.Option) (*banksim.Server, *httpbank.Client) {
	t.Helper()
	s := banksim.New(banksim.Options{
		Latency:       banksim.Latency{Median: time.Millisecond, P99: 3 * time.Millisecond},
		Hang:          5 * time.Second,
		CompleteDelay: 200 * time.Millisecond,
		ReturnDelay:   400 * time.Millisecond,
		Seed:          1,
	})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, httpbank.New(ts.URL+"/", append([]httpbank.Option{httpbank.WithTimeout(2 * time.Second)}, opts...)...)
}

func transfer(ref, bank, acct string) connectors.TransferRequest {
	return connectors.TransferRequest{Reference: ref, BankCode: bank, AccountNumber: acct, AccountHolderName: "Siti Rahman", Amount: 150_000, Currency: "IDR"}
}

// waitStatus polls Status until it reports want.
func waitStatus(t *testing.T, c *httpbank.Client, bank, ref string, want connectors.TransferStatus) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		res, err := c.Status(context.Background(), bank, ref)
		if err == nil && res.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status of %s at %s: %+v, %v; want %s", ref, bank, res, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTransferOutcomes(t *testing.T) {
	s, c := sandbox(t)
	tests := []struct {
		bank, acct string
		status     connectors.TransferStatus
		failure    string
		later      connectors.TransferStatus // the status it settles to; "" when the same
	}{
		{"bca", "1234567890", connectors.StatusCompleted, "", ""},
		{"bca", "1234560000", connectors.StatusFailed, connectors.FailureInvalidAccount, ""},
		{"bni", "1234561111", connectors.StatusFailed, connectors.FailureBankRejected, ""},
		{"mandiri", "1234569999", connectors.StatusFailed, connectors.FailureAccountClosed, ""},
		{"bri", "123456789013333", connectors.StatusCompleted, "", connectors.StatusReturned},
		{"ovo", "081234567890", connectors.StatusCompleted, "", ""},
		{"gopay", "+62 812 3456 0000", connectors.StatusFailed, connectors.FailureInvalidAccount, ""},
		{"dana", "6281234561111", connectors.StatusFailed, connectors.FailureBankRejected, ""},
		{"shopeepay", "081234563333", connectors.StatusCompleted, "", connectors.StatusReturned},
		{"linkaja", "0812345678", connectors.StatusCompleted, "", ""},
	}
	for i, tt := range tests {
		t.Run(tt.bank+"/"+tt.acct, func(t *testing.T) {
			ref := fmt.Sprintf("out-%d", i)
			res, err := c.Transfer(context.Background(), transfer(ref, tt.bank, tt.acct))
			if err != nil {
				t.Fatal(err)
			}
			want := connectors.Result{Reference: ref, Status: tt.status, FailureCode: tt.failure}
			if res != want {
				t.Fatalf("got %+v, want %+v", res, want)
			}
			if n := s.Received(ref); n != 1 {
				t.Fatalf("bank received %d times", n)
			}
			if tt.later != "" {
				waitStatus(t, c, tt.bank, ref, tt.later)
			} else if res, err := c.Status(context.Background(), tt.bank, ref); err != nil || res != want {
				t.Fatalf("Status = %+v, %v", res, err)
			}
		})
	}
	// E-wallet payouts land at the host bank: ovo and gopay at bca, dana at bni, linkaja at bri.
	if l := s.Ledger(); l.ByBank["bca"].Transfers != 4 || l.ByBank["bni"].Transfers != 2 || l.ByBank["bri"].Transfers != 2 {
		t.Fatalf("by bank: %+v", l.ByBank)
	}
}

// A payout the directory rules out fails without reaching the bank.
func TestTransferRejectedLocally(t *testing.T) {
	s, c := sandbox(t)
	tests := []struct {
		name    string
		req     connectors.TransferRequest
		failure string
	}{
		{"short account", connectors.TransferRequest{BankCode: "bca", AccountNumber: "12345", Amount: 50_000}, connectors.FailureInvalidAccount},
		{"letters", connectors.TransferRequest{BankCode: "bni", AccountNumber: "12345abcde", Amount: 50_000}, connectors.FailureInvalidAccount},
		{"landline wallet", connectors.TransferRequest{BankCode: "ovo", AccountNumber: "0212345678", Amount: 50_000}, connectors.FailureInvalidAccount},
		{"too small", connectors.TransferRequest{BankCode: "bca", AccountNumber: "1234567890", Amount: 9_999}, connectors.FailureAmountLimit},
		{"wallet too large", connectors.TransferRequest{BankCode: "gopay", AccountNumber: "081234567890", Amount: 20_000_001}, connectors.FailureAmountLimit},
		{"currency", connectors.TransferRequest{BankCode: "bca", AccountNumber: "1234567890", Amount: 50_000, Currency: "USD"}, connectors.FailureBankRejected},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Reference = fmt.Sprintf("local-%d", i)
			res, err := c.Transfer(context.Background(), tt.req)
			if err != nil || res.Status != connectors.StatusFailed || res.FailureCode != tt.failure || res.Reference != tt.req.Reference {
				t.Fatalf("got %+v, %v; want FAILED %s", res, err, tt.failure)
			}
			if s.Received(tt.req.Reference) != 0 {
				t.Fatal("sent to the bank")
			}
		})
	}
	// Currency defaults to IDR.
	req := transfer("idr-default", "bca", "1234567890")
	req.Currency = ""
	if res, err := c.Transfer(context.Background(), req); err != nil || res.Status != connectors.StatusCompleted {
		t.Fatalf("empty currency: %+v, %v", res, err)
	}
}

// The 2222 account: the bank records the transfer, the response hangs past
// the client's timeout, and the payout completes later. The client must call
// it unknown, not unsent, and Status must resolve it with one receipt.
func TestTimeoutThenStatus(t *testing.T) {
	s, c := sandbox(t, httpbank.WithTimeout(150*time.Millisecond))
	for _, tt := range []struct{ bank, acct string }{{"bca", "1234562222"}, {"ovo", "081234562222"}} {
		ref := "hang-" + tt.bank
		begin := time.Now()
		res, err := c.Transfer(context.Background(), transfer(ref, tt.bank, tt.acct))
		if err == nil {
			t.Fatalf("%s: Transfer = %+v, want a timeout", tt.bank, res)
		}
		if errors.Is(err, connectors.ErrNotSent) {
			t.Fatalf("%s: a timeout after sending was reported as not sent: %v", tt.bank, err)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: error %v is not a deadline", tt.bank, err)
		}
		if el := time.Since(begin); el > time.Second {
			t.Errorf("%s: Transfer took %v with a 150ms timeout", tt.bank, el)
		}
		waitStatus(t, c, tt.bank, ref, connectors.StatusCompleted)
		if n := s.Received(ref); n != 1 {
			t.Fatalf("%s: bank received %d times, want 1", tt.bank, n)
		}
	}
	if d := s.Duplicates(); len(d) != 0 {
		t.Fatalf("duplicates %v", d)
	}
}

func TestSameReferenceTwice(t *testing.T) {
	s, c := sandbox(t)
	req := transfer("twice", "permata", "1234567890")
	first, err := c.Transfer(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Transfer(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if first != second || first.Status != connectors.StatusCompleted {
		t.Fatalf("first %+v, second %+v", first, second)
	}
	if d := s.Duplicates(); len(d) != 1 || d["twice"] != 2 {
		t.Fatalf("Duplicates = %v", d)
	}
	if l := s.Ledger(); l.ByBank["permata"].AmountPaid != req.Amount || l.Transfers != 1 {
		t.Fatalf("paid %d in %d transfers, want %d once", l.ByBank["permata"].AmountPaid, l.Transfers, req.Amount)
	}
}

func TestBankUnavailable(t *testing.T) {
	s, c := sandbox(t)
	if err := s.SetDown("bca", true); err != nil {
		t.Fatal(err)
	}
	// bca and the e-wallets it hosts are down; nothing is recorded.
	for _, req := range []connectors.TransferRequest{transfer("down-1", "bca", "1234567890"), transfer("down-2", "ovo", "081234567890")} {
		_, err := c.Transfer(context.Background(), req)
		var he *httpbank.Error
		if !errors.Is(err, connectors.ErrNotSent) || !errors.As(err, &he) || he.StatusCode != 503 {
			t.Fatalf("%s down: %v", req.BankCode, err)
		}
		if s.Received(req.Reference) != 0 {
			t.Fatal("a down bank recorded the transfer")
		}
	}
	if _, err := c.Status(context.Background(), "bca", "down-1"); err == nil || errors.Is(err, connectors.ErrUnknownReference) {
		t.Fatalf("Status at a down bank: %v; must not claim the reference is unknown", err)
	}
	if _, err := c.Inquire(context.Background(), "bca", "1234567890"); !errors.Is(err, connectors.ErrNotSent) {
		t.Fatalf("Inquire at a down bank: %v", err)
	}
	// Other banks still pay.
	if _, err := c.Transfer(context.Background(), transfer("up-1", "bni", "1234567890")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDown("bca", false); err != nil {
		t.Fatal(err)
	}
	if res, err := c.Transfer(context.Background(), transfer("down-1", "bca", "1234567890")); err != nil || res.Status != connectors.StatusCompleted {
		t.Fatalf("after up: %+v, %v", res, err)
	}
}

func TestRateLimited(t *testing.T) {
	s, c := sandbox(t)
	if err := s.Configure("danamon", banksim.BankConfig{RateLimit: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Transfer(context.Background(), transfer("rl-1", "danamon", "1234567890")); err != nil {
		t.Fatal(err)
	}
	_, err := c.Transfer(context.Background(), transfer("rl-2", "danamon", "1234567890"))
	var he *httpbank.Error
	if !errors.Is(err, connectors.ErrNotSent) || !errors.As(err, &he) || he.StatusCode != 429 || he.RetryAfter < time.Second {
		t.Fatalf("over the rate limit: %v", err)
	}
	if s.Received("rl-2") != 0 {
		t.Fatal("a rate-limited transfer was recorded")
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := httpbank.New("http://" + addr)
	_, err = c.Transfer(context.Background(), transfer("refused", "bca", "1234567890"))
	if !errors.Is(err, connectors.ErrNotSent) {
		t.Fatalf("connection refused: %v", err)
	}
	// A context that ended before the call: nothing was sent either.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, c2 := sandbox(t)
	if _, err := c2.Transfer(ctx, transfer("cancelled", "bca", "1234567890")); !errors.Is(err, connectors.ErrNotSent) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}

func TestServerErrors(t *testing.T) {
	s, c := sandbox(t)
	// 500 after recording: unknown outcome; Status finds the transfer.
	if err := s.Configure("btn", banksim.BankConfig{ErrorRateAfter: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Transfer(context.Background(), transfer("e-after", "btn", "1234567890"))
	if err == nil || errors.Is(err, connectors.ErrNotSent) {
		t.Fatalf("500 after recording: %v", err)
	}
	if res, err := c.Status(context.Background(), "btn", "e-after"); err != nil || res.Status != connectors.StatusCompleted {
		t.Fatalf("Status after a 500: %+v, %v", res, err)
	}
	// 500 before recording: also unknown to the client; Status says the bank never got it.
	if err := s.Configure("btn", banksim.BankConfig{ErrorRateBefore: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Transfer(context.Background(), transfer("e-before", "btn", "1234567890"))
	if err == nil || errors.Is(err, connectors.ErrNotSent) {
		t.Fatalf("500 before recording: %v", err)
	}
	if _, err := c.Status(context.Background(), "btn", "e-before"); !errors.Is(err, connectors.ErrUnknownReference) {
		t.Fatalf("Status of a transfer the bank never recorded: %v", err)
	}
}

// A bank that answers nonsense: nothing but a bad request, an unknown bank,
// 429 or 503 may count as not sent, and nothing but the bank's own
// UNKNOWN_REFERENCE as an unknown reference.
func TestOddAnswers(t *testing.T) {
	answers := map[string]struct {
		code int
		body string
	}{
		"garbage":      {200, `not json`},
		"wrong status": {200, `{"reference":"odd","status":"MAYBE"}`},
		"wrong ref":    {200, `{"reference":"other","status":"COMPLETED"}`},
		"huge":         {200, `{"reference":"odd","status":"COMPLETED","pad":"` + strings.Repeat("x", 2048) + `"}`},
		"plain 404":    {404, `404 page not found`},
		"bad gateway":  {502, `<html>`},
		"conflict":     {409, `{"error":"conflict"}`},
		"bad request":  {400, `{"error":"bad","code":"BAD_REQUEST"}`},
		"unknown bank": {404, `{"error":"unknown bank","code":"UNKNOWN_BANK"}`},
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := answers[r.Header.Get("X-Test-Answer")]
		w.WriteHeader(a.code)
		fmt.Fprint(w, a.body)
	}))
	defer ts.Close()

	tests := []struct {
		answer            string
		notSent, badReq   bool
		unknownBank       bool
		unknownReference  bool // for Status
		transferSucceeded bool
	}{
		{answer: "garbage"},
		{answer: "wrong status"},
		{answer: "wrong ref"},
		{answer: "huge"},
		{answer: "plain 404"},
		{answer: "bad gateway"},
		{answer: "conflict"},
		{answer: "bad request", notSent: true, badReq: true},
		{answer: "unknown bank", notSent: true, unknownBank: true},
	}
	for _, tt := range tests {
		t.Run(tt.answer, func(t *testing.T) {
			hc := &http.Client{Transport: headerTransport{"X-Test-Answer", tt.answer}}
			c := httpbank.New(ts.URL, httpbank.WithHTTPClient(hc), httpbank.WithMaxResponseBytes(1024))
			_, err := c.Transfer(context.Background(), transfer("odd", "bca", "1234567890"))
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, connectors.ErrNotSent) != tt.notSent || errors.Is(err, httpbank.ErrBadRequest) != tt.badReq || errors.Is(err, connectors.ErrUnknownBank) != tt.unknownBank {
				t.Fatalf("Transfer error %v", err)
			}
			_, err = c.Status(context.Background(), "bca", "odd")
			if err == nil || errors.Is(err, connectors.ErrUnknownReference) {
				t.Fatalf("Status error %v", err)
			}
		})
	}
}

type headerTransport struct{ key, value string }

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(h.key, h.value)
	return http.DefaultTransport.RoundTrip(r)
}

func TestRequestChecks(t *testing.T) {
	s, c := sandbox(t)
	_, err := c.Transfer(context.Background(), transfer("x", "nope", "1234567890"))
	if !errors.Is(err, connectors.ErrUnknownBank) || !errors.Is(err, connectors.ErrNotSent) {
		t.Fatalf("unknown bank code: %v", err)
	}
	for _, ref := range []string{"", strings.Repeat("r", httpbank.MaxReferenceLen+1)} {
		_, err := c.Transfer(context.Background(), transfer(ref, "bca", "1234567890"))
		if !errors.Is(err, httpbank.ErrBadRequest) || !errors.Is(err, connectors.ErrNotSent) {
			t.Fatalf("reference of %d bytes: %v", len(ref), err)
		}
	}
	if _, err := c.Status(context.Background(), "bca", "never-sent"); !errors.Is(err, connectors.ErrUnknownReference) {
		t.Fatalf("Status of an unknown reference: %v", err)
	}
	if _, err := c.Status(context.Background(), "nope", "x"); !errors.Is(err, connectors.ErrUnknownBank) {
		t.Fatalf("Status at an unknown bank: %v", err)
	}
	// References travel escaped in the status path.
	ref := "merchant/1 2?x=#y"
	if _, err := c.Transfer(context.Background(), transfer(ref, "bca", "1234567890")); err != nil {
		t.Fatal(err)
	}
	if res, err := c.Status(context.Background(), "bca", ref); err != nil || res.Reference != ref {
		t.Fatalf("Status(%q) = %+v, %v", ref, res, err)
	}
	if s.Received(ref) != 1 {
		t.Fatal("reference mangled")
	}
}

func TestInquire(t *testing.T) {
	_, c := sandbox(t)
	tests := []struct {
		bank, acct, status string
		named              bool
	}{
		{"bca", "1234567890", connectors.InquiryValid, true},
		{"bca", "1234560000", connectors.InquiryInvalid, false},
		{"bca", "1234569999", connectors.InquiryClosed, false},
		{"bca", "12345", connectors.InquiryInvalid, false},
		{"ovo", "0812-3456-7890", connectors.InquiryValid, true},
		{"ovo", "0212345678", connectors.InquiryInvalid, false},
		{"linkaja", "081234569999", connectors.InquiryClosed, false},
	}
	for _, tt := range tests {
		inq, err := c.Inquire(context.Background(), tt.bank, tt.acct)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.bank, tt.acct, err)
		}
		if inq.BankCode != tt.bank || inq.AccountNumber != tt.acct || inq.Status != tt.status || (inq.AccountHolderName != "") != tt.named {
			t.Errorf("%s %s: %+v", tt.bank, tt.acct, inq)
		}
	}
	// The same phone in any form has the same holder.
	a, _ := c.Inquire(context.Background(), "ovo", "081234567890")
	b, _ := c.Inquire(context.Background(), "ovo", "+6281234567890")
	if a.AccountHolderName == "" || a.AccountHolderName != b.AccountHolderName {
		t.Errorf("names %q and %q", a.AccountHolderName, b.AccountHolderName)
	}
	if _, err := c.Inquire(context.Background(), "nope", "1234567890"); !errors.Is(err, connectors.ErrUnknownBank) {
		t.Errorf("unknown bank: %v", err)
	}
}

func TestConcurrentTransfers(t *testing.T) {
	s, c := sandbox(t)
	codes := []string{"bca", "bni", "bri", "mandiri", "ovo", "dana"}
	const refs, sends = 60, 3
	var wg sync.WaitGroup
	errs := make(chan error, refs*sends)
	for i := range refs {
		for range sends {
			wg.Go(func() {
				code := codes[i%len(codes)]
				acct := fmt.Sprintf("12345678%02d", i)
				if b, _ := connectors.Lookup(code); b.IsEWallet() {
					acct = fmt.Sprintf("08123456%04d", i+100)
				}
				res, err := c.Transfer(context.Background(), transfer(fmt.Sprintf("cc-%d", i), code, acct))
				if err != nil || res.Status != connectors.StatusCompleted {
					errs <- fmt.Errorf("cc-%d: %+v, %v", i, res, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	l := s.Ledger()
	if l.Transfers != refs || l.Receipts != refs*sends || len(s.Duplicates()) != refs {
		t.Fatalf("transfers %d receipts %d duplicates %d", l.Transfers, l.Receipts, len(s.Duplicates()))
	}
	var paid int64
	for _, b := range l.ByBank {
		paid += b.AmountPaid
	}
	if paid != refs*150_000 {
		t.Fatalf("paid %d, want each reference once", paid)
	}
}

// TestStatement: the client reads the host bank's statement page by page
// (an e-wallet code reads its host's), sees a 3333 transfer paid and then
// returned, and maps a bad cursor to connectors.ErrBadCursor.
func TestStatement(t *testing.T) {
	_, c := sandbox(t)
	ctx := context.Background()
	for _, tr := range []connectors.TransferRequest{
		transfer("s-1", "bca", "1234567890"),
		transfer("s-2", "bca", "1234563333"),
		transfer("s-3", "bca", "1234560000"),
	} {
		if _, err := c.Transfer(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	waitStatus(t, c, "bca", "s-2", connectors.StatusReturned)
	var got []string
	after := ""
	for {
		page, err := c.Statement(ctx, "ovo", connectors.StatementQuery{After: after, Limit: 1}) // OVO's host is BCA
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entries {
			got = append(got, string(e.Kind)+" "+e.Reference)
			if e.Amount != 150_000 || e.Currency != "IDR" || e.BookedAt.IsZero() {
				t.Errorf("entry %+v", e)
			}
		}
		after = page.Next
		if !page.More {
			break
		}
	}
	want := "[PAID s-1 PAID s-2 REJECTED s-3 RETURNED s-2]"
	if fmt.Sprint(got) != want {
		t.Fatalf("statement %v, want %s", got, want)
	}
	page, err := c.Statement(ctx, "bca", connectors.StatementQuery{After: after})
	if err != nil || len(page.Entries) != 0 || page.Next != after || page.More {
		t.Fatalf("at the end: %+v, %v", page, err)
	}
	_, err = c.Statement(ctx, "bca", connectors.StatementQuery{After: "not-a-cursor"})
	if !errors.Is(err, connectors.ErrBadCursor) {
		t.Fatalf("bad cursor: %v, want ErrBadCursor", err)
	}
	if _, err := c.Statement(ctx, "nope", connectors.StatementQuery{}); !errors.Is(err, connectors.ErrUnknownBank) {
		t.Fatalf("unknown bank: %v", err)
	}
}
