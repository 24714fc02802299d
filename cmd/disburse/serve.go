package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/disburse/disburse/api"
)

// servers runs HTTP listeners and shuts them all down gracefully.
type servers struct {
	list []*http.Server
	wg   sync.WaitGroup
}

// start listens on addr at once (so a taken port fails the start) and serves h.
func (s *servers) start(name, addr string, h http.Handler) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener on %s: %w (choose another address with its flag)", name, addr, err)
	}
	// api.Listener and api.ConnContext give the errors net/http answers
	// itself (431, malformed requests, header timeouts) the JSON error shape.
	ln = api.Listener(ln)
	srv := &http.Server{
		Handler:           h,
		ConnContext:       api.ConnContext,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	s.list = append(s.list, srv)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("http server stopped", "server", name, "err", err)
		}
	}()
	return ln.Addr(), nil
}

// shutdown finishes in-flight requests (up to 15 s) and stops every server.
func (s *servers) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, srv := range s.list {
		_ = srv.Shutdown(ctx)
	}
	s.wg.Wait()
}

// healthHandler serves /metrics, /healthz (the process is up) and /readyz
// (its dependencies answer).
func healthHandler(pool *pgxpool.Pool, kafka *kgo.Client) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if pool != nil {
			if err := pool.Ping(ctx); err != nil {
				http.Error(w, "postgres: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		if kafka != nil {
			if err := kafka.Ping(ctx); err != nil {
				http.Error(w, "kafka: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}
