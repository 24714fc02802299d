package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/disburse/disburse/callbacks/signature"
)

// callbackReceiver is the merchants' callback endpoint in a bench run: it
// verifies each POST's signature with its merchant's callback secret
// (path /hooks/<merchant>), answers 204, and keeps the time each payout's
// terminal callback first arrived. A bad signature is answered 401 and
// counted: a run with any is a failed run.
type callbackReceiver struct {
	mu        sync.Mutex
	secrets   map[string]string    // merchant -> callback secret
	seen      map[string]bool      // callback ids received
	payoutAt  map[string]time.Time // disbursement id -> first terminal callback
	batches   int
	payouts   atomic.Int64
	badSig    atomic.Int64
	duplicate atomic.Int64
}

func newCallbackReceiver() *callbackReceiver {
	return &callbackReceiver{secrets: map[string]string{}, seen: map[string]bool{}, payoutAt: map[string]time.Time{}}
}

func (c *callbackReceiver) setSecret(merchantID, secret string) {
	c.mu.Lock()
	c.secrets[merchantID] = secret
	c.mu.Unlock()
}

func (c *callbackReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	merchantID, ok := strings.CutPrefix(r.URL.Path, "/hooks/")
	if r.Method != http.MethodPost || !ok {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	secret := c.secrets[merchantID]
	c.mu.Unlock()
	if secret == "" || signature.Verify(secret, r.Header.Get("X-Callback-Signature"), body, 5*time.Minute, now) != nil {
		c.badSig.Add(1)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	type event struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	var env struct {
		event
		Events []event `json:"events"` // a batched delivery (type callbacks.batch)
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&env); err != nil {
		http.Error(w, "body", http.StatusBadRequest)
		return
	}
	evs := []event{env.event}
	if env.Type == "callbacks.batch" {
		evs = env.Events
	}
	c.mu.Lock()
	for _, ev := range evs {
		if c.seen[ev.ID] {
			c.duplicate.Add(1)
			continue
		}
		c.seen[ev.ID] = true
		switch {
		case ev.Type == "batch.completed":
			c.batches++
		case strings.HasPrefix(ev.Type, "disbursement.") && ev.Type != "disbursement.reversed":
			if _, dup := c.payoutAt[ev.Data.ID]; !dup {
				c.payoutAt[ev.Data.ID] = now
				c.payouts.Add(1)
			}
		}
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// bankClock wraps the sandbox banks and keeps, for each transfer
// reference, when the bank first answered it: the end of the bank leg.
type bankClock struct {
	next http.Handler
	mu   sync.Mutex
	at   map[string]time.Time
}

func newBankClock(next http.Handler) *bankClock {
	return &bankClock{next: next, at: map[string]time.Time{}}
}

func (b *bankClock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/transfers") {
		b.next.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req struct {
		Reference string `json:"reference"`
	}
	_ = json.Unmarshal(body, &req)
	b.next.ServeHTTP(w, r)
	now := time.Now()
	b.mu.Lock()
	if _, ok := b.at[req.Reference]; !ok && req.Reference != "" {
		b.at[req.Reference] = now
	}
	b.mu.Unlock()
}

func (b *bankClock) times() map[string]time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]time.Time, len(b.at))
	for k, v := range b.at {
		out[k] = v
	}
	return out
}
