package main

import (
	"bytes"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/disburse/disburse/callbacks/signature"
)

func TestSustainedRate(t *testing.T) {
	// 100 s at 10/s with a slow start and a tail: the best 60 s window.
	var long []float64
	for i := 0; i < 1000; i++ {
		long = append(long, 1000+float64(i)/10)
	}
	long = append(long, 1200) // a straggler
	if r, m := sustainedRate(long, 990); m != rateBest60s || math.Abs(r-10) > 0.1 {
		t.Errorf("long run: %v (%s), want 10/s over the best window", r, m)
	}
	// 10 s at 100/s, then one late event at 30 s: the middle 80%.
	var short []float64
	for i := 0; i < 1000; i++ {
		short = append(short, float64(i)/100)
	}
	short = append(short, 30)
	if r, m := sustainedRate(short, 0); m != rateMiddle || math.Abs(r-100) > 2 {
		t.Errorf("short run: %v (%s), want about 100/s", r, m)
	}
	// 1,000 events in two bursts a second apart, 9 s after the start: not
	// 1,000/s sustained.
	var bursts []float64
	for i := 0; i < 1000; i++ {
		bursts = append(bursts, 9+float64(i%2))
	}
	if r, m := sustainedRate(bursts, 0); m != rateTotal || r != 100 {
		t.Errorf("bursts: %v (%s), want 100/s total over elapsed", r, m)
	}
	if r, m := sustainedRate([]float64{1, 2, 3}, 0); m != rateTotal || r != 1 {
		t.Errorf("three events: %v (%s), want 1/s total over elapsed", r, m)
	}
	if r, _ := sustainedRate(nil, 0); r != 0 {
		t.Errorf("no events: %v", r)
	}
}

func TestQuantiles(t *testing.T) {
	var s []float64
	for i := 1; i <= 100; i++ {
		s = append(s, float64(i)/1000) // 1..100 ms
	}
	q := quantiles(s)
	if q.Count != 100 || q.P50 != 50 || q.P95 != 95 || q.P99 != 99 {
		t.Errorf("quantiles = %+v", q)
	}
	if q := quantiles([]float64{-0.0001}); q.P50 != 0 {
		t.Errorf("clock skew below zero counts as 0, got %+v", q)
	}
	if q := quantiles(nil); q.Count != 0 {
		t.Errorf("empty: %+v", q)
	}
}

func TestCallbackReceiverVerifiesSignatures(t *testing.T) {
	recv := newCallbackReceiver()
	recv.setSecret("m1", "whsec_test")
	srv := httptest.NewServer(recv)
	defer srv.Close()
	body := []byte(`{"id":"cb1","type":"disbursement.completed","data":{"id":"dsb_1"}}`)
	post := func(path, sig string) int {
		req, _ := http.NewRequest("POST", srv.URL+path, bytes.NewReader(body))
		req.Header.Set("X-Callback-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good := signature.Sign(time.Now(), body, "whsec_test")
	if code := post("/hooks/m1", signature.Sign(time.Now(), body, "other")); code != 401 {
		t.Errorf("wrong secret: %d", code)
	}
	if code := post("/hooks/m2", good); code != 401 {
		t.Errorf("unknown merchant: %d", code)
	}
	if code := post("/hooks/m1", good); code != 204 {
		t.Errorf("good signature: %d", code)
	}
	if code := post("/hooks/m1", good); code != 204 || recv.duplicate.Load() != 1 {
		t.Errorf("redelivery: %d, duplicates %d", code, recv.duplicate.Load())
	}
	if recv.payouts.Load() != 1 || recv.badSig.Load() != 2 || recv.payoutAt["dsb_1"].IsZero() {
		t.Errorf("payouts %d, bad signatures %d", recv.payouts.Load(), recv.badSig.Load())
	}
}
