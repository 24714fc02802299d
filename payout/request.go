package payout

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sort"
	"unicode"
	"unicode/utf8"

	"github.com/disburse/disburse/connectors"
)

// Request is what a merchant sends to create one payout.
type Request struct {
	ReferenceID       string            `json:"reference_id"`
	BankCode          string            `json:"bank_code"`
	AccountNumber     string            `json:"account_number"`
	Amount            int64             `json:"amount"`
	Currency          string            `json:"currency"`
	Description       string            `json:"description"`
	AccountHolderName string            `json:"account_holder_name"`
	Metadata          map[string]string `json:"metadata"`
}

// Field limits, documented in api/openapi.yaml.
const (
	MaxReferenceID    = 64
	MaxDescription    = 255
	MaxHolderName     = 100
	MaxMetadataKeys   = 10
	MaxMetadataKey    = 40
	MaxMetadataValue  = 255
	MaxIdempotencyKey = 128
)

// FieldError is one reason a field was rejected.
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Normalize fills defaults (currency IDR) before validation and hashing.
func (r *Request) Normalize() {
	if r.Currency == "" {
		r.Currency = "IDR"
	}
}

// Validate checks every field and returns all problems, not only the first.
func (r *Request) Validate() []FieldError {
	var errs []FieldError
	add := func(field, code, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Code: code, Message: fmt.Sprintf(format, args...)})
	}

	switch {
	case r.ReferenceID == "":
		add("reference_id", "REQUIRED", "reference_id is required")
	case len(r.ReferenceID) > MaxReferenceID:
		add("reference_id", "TOO_LONG", "reference_id must be at most %d characters", MaxReferenceID)
	case !isReference(r.ReferenceID):
		add("reference_id", "INVALID_FORMAT", "reference_id may hold only letters, digits and - _ . : /")
	}

	bank, known := connectors.Lookup(r.BankCode)
	switch {
	case r.BankCode == "":
		add("bank_code", "REQUIRED", "bank_code is required")
	case !known:
		add("bank_code", "UNKNOWN_BANK", "bank_code %q is not supported; GET /v1/banks lists the codes", truncate(r.BankCode, 20))
	}

	switch {
	case r.AccountNumber == "":
		add("account_number", "REQUIRED", "account_number is required")
	case known:
		if err := bank.ValidateAccount(r.AccountNumber); err != nil {
			add("account_number", "INVALID_FORMAT", "%v", err)
		}
	}

	switch {
	case r.Amount <= 0:
		add("amount", "TOO_SMALL", "amount must be a positive integer in minor units")
	case known && r.Amount < bank.MinAmount:
		add("amount", "TOO_SMALL", "amount must be at least %d for %s", bank.MinAmount, bank.Code)
	case known && r.Amount > bank.MaxAmount:
		add("amount", "TOO_LARGE", "amount must be at most %d for %s", bank.MaxAmount, bank.Code)
	}

	if r.Currency != "IDR" {
		add("currency", "UNSUPPORTED", "currency must be IDR")
	}
	checkText := func(field, value string, max int) {
		switch {
		case utf8.RuneCountInString(value) > max:
			add(field, "TOO_LONG", "%s must be at most %d characters", field, max)
		case !CleanText(value):
			add(field, "INVALID_CHARACTERS", "%s must be UTF-8 text without control characters", field)
		}
	}
	checkText("description", r.Description, MaxDescription)
	checkText("account_holder_name", r.AccountHolderName, MaxHolderName)

	if len(r.Metadata) > MaxMetadataKeys {
		add("metadata", "TOO_MANY_KEYS", "metadata may hold at most %d keys", MaxMetadataKeys)
	}
	for _, k := range sortedKeys(r.Metadata) {
		if k == "" || utf8.RuneCountInString(k) > MaxMetadataKey || !CleanText(k) {
			add("metadata", "INVALID_KEY", "metadata keys must be 1 to %d characters of text", MaxMetadataKey)
			break
		}
		if v := r.Metadata[k]; utf8.RuneCountInString(v) > MaxMetadataValue || !CleanText(v) {
			add("metadata."+k, "INVALID_VALUE", "metadata values must be at most %d characters of text", MaxMetadataValue)
		}
	}
	return errs
}

// Hash fingerprints the normalized request, to tell a replay (same key, same
// body) from a reused key (same key, different body).
func (r *Request) Hash() []byte {
	b, _ := json.Marshal(r) // field order is fixed; map keys are sorted by encoding/json
	sum := sha256.Sum256(b)
	return sum[:]
}

func isReference(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':' || c == '/') {
			return false
		}
	}
	return true
}

// CleanText reports whether s is valid UTF-8 without control characters:
// the rule for every free-text field of the APIs.
func CleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
