package banksim

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// ShutdownTimeout bounds how long a graceful shutdown waits for requests in
// flight before closing their connections.
const ShutdownTimeout = 10 * time.Second

// ListenAndServe serves s on addr until ctx ends, then shuts down gracefully.
// It returns nil after a clean shutdown.
func ListenAndServe(ctx context.Context, addr string, s *Server) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return Serve(ctx, ln, s)
}

// Serve is ListenAndServe on a listener the caller opened (":0" in tests,
// to learn the port first). It closes ln.
//
// Requests take their context from ctx, so when ctx ends the hanging
// (...2222) and sleeping responses are answered at once and shutdown does not
// wait out the hang.
func Serve(ctx context.Context, ln net.Listener, s *Server) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close()
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
