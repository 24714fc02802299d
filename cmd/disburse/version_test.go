package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestProbe: the container health check exits 0 only on a 2xx answer.
func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			_, _ = w.Write([]byte("ready\n"))
			return
		}
		http.Error(w, "postgres: down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ctx := context.Background()
	if err := runProbe(ctx, []string{srv.URL + "/readyz"}); err != nil {
		t.Errorf("probe of a ready server: %v", err)
	}
	if err := runProbe(ctx, []string{srv.URL + "/down"}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("probe of a 503: %v, want an error naming the status", err)
	}
	if err := runProbe(ctx, []string{"--timeout", "200ms", "http://127.0.0.1:1/readyz"}); err == nil {
		t.Error("probe of a closed port succeeded")
	}
	if err := runProbe(ctx, nil); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("probe without a URL: %v, want the usage", err)
	}
}
