package api

import (
	"encoding/json"
	"net/http"

	"github.com/disburse/disburse/batch"
	"github.com/disburse/disburse/payout"
)

// Error codes of the merchant and operator APIs (documented in openapi.yaml).
const (
	CodeValidation          = "VALIDATION_ERROR"
	CodeInvalidJSON         = "INVALID_JSON"
	CodeUnauthorized        = "UNAUTHORIZED"
	CodeForbidden           = "FORBIDDEN"
	CodeNotFound            = "NOT_FOUND"
	CodeMethodNotAllowed    = "METHOD_NOT_ALLOWED"
	CodeIdempotencyRequired = "IDEMPOTENCY_KEY_REQUIRED"
	CodeIdempotencyReused   = "IDEMPOTENCY_KEY_REUSED"
	CodeDuplicateReference  = "DUPLICATE_REFERENCE_ID"
	CodeConflict            = "CONFLICT"
	CodeTooLarge            = "PAYLOAD_TOO_LARGE"
	CodeUnsupportedMedia    = "UNSUPPORTED_MEDIA_TYPE"
	CodeRateLimited         = "RATE_LIMITED"
	CodeUnavailable         = "SERVICE_UNAVAILABLE"
	CodeInternal            = "INTERNAL_ERROR"
	CodeInvalidBatch        = "INVALID_BATCH"
	CodeTooManyItems        = "TOO_MANY_ITEMS"
)

// Error is the body of every error answer.
type Error struct {
	Code    string              `json:"code"`
	Message string              `json:"message"`
	Fields  []payout.FieldError `json:"fields,omitempty"`
	// Rows and InvalidRows describe a rejected batch (the first 1,000 row errors).
	Rows        []batch.RowError `json:"rows,omitempty"`
	InvalidRows int              `json:"invalid_rows,omitempty"`
	// RequiredScope names the scope a restricted key lacked (403 INSUFFICIENT_SCOPE).
	RequiredScope string `json:"required_scope,omitempty"`
}

// problem is an error on its way to the client.
type problem struct {
	status int
	Error
}

func newProblem(status int, code, message string, fields ...payout.FieldError) *problem {
	return &problem{status: status, Error: Error{Code: code, Message: message, Fields: fields}}
}

// writeError is the one HTTP error writer.
func writeError(w http.ResponseWriter, p *problem) {
	writeJSON(w, p.status, struct {
		Error Error `json:"error"`
	}{p.Error})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
