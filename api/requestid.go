package api

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"

	"github.com/disburse/disburse/payout"
)

// validRequestID is what an incoming X-Request-Id must look like to be
// kept: short, and safe in logs and headers. Anything else is replaced by
// a generated id (never refused: the header is for tracing, not input).
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// requestID is the caller's X-Request-Id when valid, else a new one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); validRequestID.MatchString(id) {
		return id
	}
	return newRequestID()
}

// withRequestID puts the id where the handlers (requestIDKey) and the
// payout store and Kafka producer (payout.WithRequestID) find it.
func withRequestID(ctx context.Context, id string) context.Context {
	return payout.WithRequestID(context.WithValue(ctx, requestIDKey{}, id), id)
}

// logFor is the server's logger with the call's request id on every line,
// for the lines about a payout or batch the call touches.
func (s *Server) logFor(ctx context.Context) *slog.Logger {
	return s.Log.With("request_id", payout.RequestID(ctx))
}
