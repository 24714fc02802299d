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
	seen := map[string]bool{}  // callback ids: deliveries are retried
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
		// A batched POST (callback_batch_size above 1) carries the usual
		// bodies in events; a single one is the body itself.
		var msg struct {
			Type   string            `json:"type"`
			Events []json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(body, &msg); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		events := []json.RawMessage{body}
		if msg.Type == "callbacks.batch" {
			events = msg.Events
		}
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range events {
			var cb struct {
				ID   string `json:"id"` // the callback id: dedup on it
				Type string `json:"type"`
				Data struct {
					ID      string `json:"id"`
					Status  string `json:"status"`
					Version int    `json:"version"`
				} `json:"data"`
			}
			if err := json.Unmarshal(ev, &cb); err != nil || seen[cb.ID] {
				continue
			}
			seen[cb.ID] = true
			if cb.Data.Version > newest[cb.Data.ID] {
				newest[cb.Data.ID] = cb.Data.Version
				log.Printf("%s %s: %s (version %d)", cb.Type, cb.Data.ID, cb.Data.Status, cb.Data.Version)
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:9999", nil))
}
