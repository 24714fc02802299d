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

// start listens on addr at once (so a taken port fails the start) and
// serves h, one of the api package's handlers (merchant or operator API).
func (s *servers) start(name, addr string, h http.Handler) (net.Addr, error) {
	return s.listen(name, addr, h, true)
}

// startPlain is start for handlers that are not the api package's: the
// sandbox banks, the metrics and health endpoints, the bench's callback
// receiver.
//
// They must not be behind api.Listener: its connections answer a read
// timeout with a JSON 408 unless an api handler is known to be running,
// and around any other handler they never know it, so an idle keep-alive
// connection got a 408 written to it when its read deadline passed. A
// client that reused the connection at that moment read the 408 as the
// answer to the request it had just sent: for a transfer, an outcome
// unknown (issue 16's bench logged hundreds per run, each one a status
// query and more commits).
func (s *servers) startPlain(name, addr string, h http.Handler) (net.Addr, error) {
	return s.listen(name, addr, h, false)
}

func (s *servers) listen(name, addr string, h http.Handler, apiErrors bool) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener on %s: %w (choose another address with its flag)", name, addr, err)
	}
	var connContext func(context.Context, net.Conn) context.Context
	if apiErrors {
		// api.Listener and api.ConnContext give the errors net/http answers
		// itself (431, malformed requests, header timeouts) the JSON error shape.
		ln = api.Listener(ln)
		connContext = api.ConnContext
	}
	srv := &http.Server{
		Handler:           h,
		ConnContext:       connContext,
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
