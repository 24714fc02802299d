package client_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/disburse/disburse/client"
)

// Send a payout; a retry of the call, after a lost answer, reuses its
// Idempotency-Key and pays once.
func ExampleClient_CreateDisbursement() {
	c := client.New("http://127.0.0.1:8080", "sk_sandbox_...")
	d, err := c.CreateDisbursement(context.Background(), client.DisbursementRequest{
		ReferenceID: "order-1001", BankCode: "bca", AccountNumber: "1234567890", Amount: 150000,
	}, client.WithIdempotencyKey("order-1001"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.ID, d.Status)
}

// Follow every page of a search.
func ExampleClient_ListDisbursements() {
	c := client.New("http://127.0.0.1:8080", "sk_sandbox_...")
	for d, err := range c.ListDisbursements(context.Background(), client.DisbursementFilter{Statuses: []string{client.StatusFailed}}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(d.ReferenceID, d.Status)
	}
}

// Verify a callback before acting on it.
func ExampleVerifyCallback() {
	secret := "whsec_..." // GET /v1/settings: callback_secret
	http.HandleFunc("/disburse", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err := client.VerifyCallback(secret, r.Header.Get("X-Callback-Signature"), body, 5*time.Minute, time.Now()); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
