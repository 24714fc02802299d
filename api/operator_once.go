package api

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/jackc/pgx/v5"
)

// operatorOnce runs an operator call that moves money at most once per
// Idempotency-Key (table operator_requests). The key is required. Its row
// is inserted first, in the transaction do runs in: a concurrent retry
// waits on the row, then replays the answer stored with it; a call that
// fails rolls the row back, so a retry runs it afresh. The same key with a
// different request (method, path or body) answers 409
// IDEMPOTENCY_KEY_REUSED and changes nothing.
//
// do gets the transaction; a movement written through it commits with the
// row. A movement made in its own transaction (the invoice calls) commits
// while the row is held, so a concurrent retry still waits for the answer;
// those calls are also once-only by their state (an invoice is closed or
// paid once), which covers a crash between the two commits.
func (s *Server) operatorOnce(w http.ResponseWriter, r *http.Request, request any,
	do func(ctx context.Context, tx pgx.Tx) (int, any, *problem, error)) {
	key, prob := idempotencyKey(r)
	if prob != nil {
		writeError(w, prob)
		return
	}
	body, err := json.Marshal(request)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\x00", r.Method, r.URL.Path)
	h.Write(body)
	hash := h.Sum(nil)

	ctx := r.Context()
	tx, err := s.Ledger.DB().Begin(ctx)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	tag, err := tx.Exec(ctx, `INSERT INTO operator_requests (idempotency_key, request_hash) VALUES ($1, $2)
		ON CONFLICT DO NOTHING`, key, hash)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if tag.RowsAffected() == 0 {
		_ = tx.Rollback(ctx)
		s.replayOperator(w, r, key, hash)
		return
	}
	status, resp, prob, err := do(ctx, tx)
	if prob != nil {
		writeError(w, prob)
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	stored, err := json.Marshal(resp)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if _, err := tx.Exec(ctx, `UPDATE operator_requests SET status = $2, response = $3 WHERE idempotency_key = $1`,
		key, status, stored); err != nil {
		s.internalError(w, r, err)
		return
	}
	if err := tx.Commit(ctx); err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, status, json.RawMessage(stored))
}

func (s *Server) replayOperator(w http.ResponseWriter, r *http.Request, key string, hash []byte) {
	var prev []byte
	var status int
	var resp []byte
	err := s.Ledger.DB().QueryRow(r.Context(), `SELECT request_hash, status, response FROM operator_requests
		WHERE idempotency_key = $1`, key).Scan(&prev, &status, &resp)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// The first call rolled back between our insert and this read: retry.
		w.Header().Set("Retry-After", "1")
		writeError(w, newProblem(http.StatusConflict, CodeConflict, "a call with this Idempotency-Key did not finish; retry it"))
	case err != nil:
		s.internalError(w, r, err)
	case string(prev) != string(hash):
		writeError(w, newProblem(http.StatusConflict, CodeIdempotencyReused, "this Idempotency-Key was used with a different request; use a new key for a new call"))
	default:
		w.Header().Set("Idempotent-Replayed", "true")
		writeJSON(w, status, json.RawMessage(resp))
	}
}

// auditTx writes an operator_audit row inside tx, so the record and the
// change it records commit together.
func (s *Server) auditTx(ctx context.Context, tx pgx.Tx, action, merchantID string, details any) error {
	_, err := tx.Exec(ctx, `INSERT INTO operator_audit (action, merchant_id, details) VALUES ($1, $2, $3)`, action, merchantID, details)
	return err
}
