// Command reconcile lists yesterday's failed and reversed payouts and the
// balance statement of the same day, following every cursor page.
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
	base := os.Getenv("DISBURSE_URL")
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	c := client.New(base, os.Getenv("DISBURSE_KEY"))
	ctx := context.Background()
	jakarta, err := time.LoadLocation("Asia/Jakarta")
	if err != nil {
		log.Fatal(err)
	}
	today := time.Now().In(jakarta).Truncate(24 * time.Hour)
	from, to := today.AddDate(0, 0, -1), today
	for d, err := range c.ListDisbursements(ctx, client.DisbursementFilter{
		Statuses: []string{client.StatusFailed, client.StatusReversed}, CreatedFrom: from, CreatedTo: to, Limit: 200,
	}) {
		if err != nil {
			log.Fatal(err)
		}
		code := ""
		if d.FailureCode != nil {
			code = *d.FailureCode
		}
		fmt.Println(d.ReferenceID, d.Status, code)
	}
	for m, err := range c.BalanceTransactions(ctx, client.Period{From: from, To: to}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(m.CreatedAt.Format(time.RFC3339), m.Type, m.Amount, m.BalanceAfter)
	}
}
