package callbacks

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/disburse/disburse/payout"
	"github.com/disburse/disburse/schemas/events"
)

// Callback types, as API.md names them.
const (
	TypeCompleted      = "disbursement.completed"
	TypeFailed         = "disbursement.failed"
	TypeReversed       = "disbursement.reversed"
	TypeCancelled      = "disbursement.cancelled"
	TypeBatchCompleted = "batch.completed"
)

// typeOf maps a payout status to its callback type; "" for statuses that
// are not announced (PENDING, PROCESSING). CANCELLED is announced: a batch
// cancel ends many payouts the merchant's systems must hear about.
func typeOf(status string) string {
	switch payout.Status(status) {
	case payout.Completed:
		return TypeCompleted
	case payout.Failed:
		return TypeFailed
	case payout.Reversed:
		return TypeReversed
	case payout.Cancelled:
		return TypeCancelled
	}
	return ""
}

// New is a callback to record.
type New struct {
	ID          string
	MerchantID  string
	Environment string
	Type        string
	SubjectID   string
	Body        []byte
	EventAt     time.Time
}

// envelope is the body of every callback.
type envelope struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	CreatedAt time.Time `json:"created_at"`
	Data      any       `json:"data"`
}

// ID derives a callback id from what it announces, so a duplicate event
// maps to the same callback (and the merchant dedups on X-Callback-Id).
func ID(kind, subject string, version int) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + subject + "\x00" + strconv.Itoa(version)))
	return "cb_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20]))
}

// ForStatus builds the callback of a status event, or ok=false when the
// status is not announced. d is the stored payout (nil if unknown): it
// supplies the fields a status event does not carry; the status fields are
// the event's, so the body describes the payout as of that version.
func ForStatus(ev events.Status, d *payout.Disbursement) (New, bool) {
	typ := typeOf(ev.Status)
	if typ == "" {
		return New{}, false
	}
	var data payout.Disbursement
	if d != nil {
		data = *d
	} else {
		data = payout.Disbursement{ID: ev.DisbursementID, ReferenceID: ev.ReferenceID, BankCode: ev.BankCode,
			Amount: ev.Amount, Fee: ev.Fee, Currency: ev.Currency}
		if ev.BatchID != "" {
			b := ev.BatchID
			data.BatchID = &b
		}
	}
	data.Status = payout.Status(ev.Status)
	data.Version = ev.Version
	data.FailureCode = nil
	if ev.FailureCode != "" {
		f := ev.FailureCode
		data.FailureCode = &f
	}
	at := ev.At.UTC()
	data.UpdatedAt = at
	id := ID("disbursement", ev.DisbursementID, ev.Version)
	return New{ID: id, MerchantID: ev.MerchantID, Environment: ev.Environment, Type: typ, SubjectID: ev.DisbursementID,
		Body: encode(envelope{ID: id, Type: typ, CreatedAt: at, Data: data}), EventAt: at}, true
}

// batchData is the data of a batch.completed callback.
type batchData struct {
	ID          string                       `json:"id"`
	ReferenceID string                       `json:"reference_id"`
	Status      string                       `json:"status"`
	TotalCount  int                          `json:"total_count"`
	TotalAmount int64                        `json:"total_amount"`
	Currency    string                       `json:"currency"`
	Counts      map[string]events.BatchTotal `json:"counts"`
	CompletedAt time.Time                    `json:"completed_at"`
}

// ForBatch builds the batch.completed callback of a batch.
func ForBatch(ev events.BatchCompleted) New {
	at := ev.CompletedAt.UTC()
	id := ID("batch", ev.BatchID, 0)
	data := batchData{ID: ev.BatchID, ReferenceID: ev.ReferenceID, Status: ev.Status, TotalCount: ev.TotalCount,
		TotalAmount: ev.TotalAmount, Currency: ev.Currency, Counts: ev.Counts, CompletedAt: at}
	return New{ID: id, MerchantID: ev.MerchantID, Environment: ev.Environment, Type: TypeBatchCompleted, SubjectID: ev.BatchID,
		Body: encode(envelope{ID: id, Type: TypeBatchCompleted, CreatedAt: at, Data: data}), EventAt: at}
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("callbacks: encode body: " + err.Error()) // the types above always encode
	}
	return b
}

// BatchType is the type of a POST that carries several callbacks.
const BatchType = "callbacks.batch"

// batchEnvelope is the body of a batched POST: each event is a callback's
// usual body, byte for byte.
type batchEnvelope struct {
	ID     string            `json:"id"`
	Type   string            `json:"type"`
	Events []json.RawMessage `json:"events"`
}

// BatchBody builds the POST that carries group, and its delivery id. The
// id is derived from the callback ids in it, so a retry of the same group
// has the same id; a merchant still dedups on each event's own id, since a
// callback retried in another group arrives under another delivery id.
func BatchBody(group []Claimed) (string, []byte) {
	h := sha256.New()
	events := make([]json.RawMessage, len(group))
	for i, c := range group {
		h.Write([]byte(c.ID))
		h.Write([]byte{0})
		events[i] = json.RawMessage(c.Body)
	}
	id := "cbb_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(h.Sum(nil)[:20]))
	return id, encode(batchEnvelope{ID: id, Type: BatchType, Events: events})
}
