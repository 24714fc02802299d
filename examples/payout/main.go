// Command payout sends one payout with the Go client and waits for its
// outcome. DISBURSE_URL (default http://127.0.0.1:8080) and DISBURSE_KEY
// (a sandbox secret key, printed by `make run`) configure it:
//
//	DISBURSE_KEY=sk_sandbox_... go run ./examples/payout order-1001
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/disburse/disburse/client"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: payout <reference_id>")
	}
	base := os.Getenv("DISBURSE_URL")
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	c := client.New(base, os.Getenv("DISBURSE_KEY"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The reference doubles as the Idempotency-Key: running this again
	// for the same order never pays twice.
	d, err := c.CreateDisbursement(ctx, client.DisbursementRequest{
		ReferenceID: os.Args[1], BankCode: "bca", AccountNumber: "1234567890", Amount: 150000,
		Description: "payout " + os.Args[1],
	}, client.WithIdempotencyKey(os.Args[1]))
	if err != nil {
		log.Fatal(err)
	}
	for d.Status == client.StatusPending || d.Status == client.StatusProcessing {
		time.Sleep(500 * time.Millisecond)
		if d, err = c.GetDisbursement(ctx, d.ID); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("%s %s %v\n", d.ID, d.Status, d.FailureCode)
}
