// Command webhook receives disburse callbacks, verifies their signature
// with the environment's callback secret (DISBURSE_CALLBACK_SECRET, shown
// by GET /v1/settings) and logs each payout's newest status.
package main

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/disburse/disburse/client"
)

func main() {
	secret := os.Getenv("DISBURSE_CALLBACK_SECRET")
	var mu sync.Mutex
	seen := map[string]bool{}  // X-Callback-Id: deliveries are retried
	newest := map[string]int{} // disbursement id -> highest version
	http.HandleFunc("/disburse", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err := client.VerifyCallback(secret, r.Header.Get("X-Callback-Signature"), body, 5*time.Minute, time.Now()); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var cb struct {
			Type string `json:"type"`
			Data struct {
				ID      string `json:"id"`
				Status  string `json:"status"`
				Version int    `json:"version"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &cb); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if id := r.Header.Get("X-Callback-Id"); !seen[id] {
			seen[id] = true
			if cb.Data.Version > newest[cb.Data.ID] {
				newest[cb.Data.ID] = cb.Data.Version
				log.Printf("%s %s: %s (version %d)", cb.Type, cb.Data.ID, cb.Data.Status, cb.Data.Version)
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:9999", nil))
}
