package reports

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/disburse/disburse/schemas/events"
)

// eventColumns are payout_events' columns the sink writes, in the order
// eventValues gives them. Both engines insert with them.
var eventColumns = []string{
	"disbursement_id", "merchant_id", "environment", "reference_id", "batch_id", "bank_code",
	"amount", "fee", "currency", "status", "failure_code", "version", "event_time", "created_at",
}

// eventValues is one status event as a payout_events row. An event
// without created_at (published before the field existed) uses its own
// time.
func eventValues(ev events.Status) []any {
	created := ev.CreatedAt
	if created.IsZero() {
		created = ev.At
	}
	return []any{
		ev.DisbursementID, ev.MerchantID, ev.Environment, ev.ReferenceID, ev.BatchID, ev.BankCode,
		ev.Amount, ev.Fee, ev.Currency, ev.Status, ev.FailureCode, uint32(ev.Version), ev.At.UTC(), created.UTC(),
	}
}

type eventKey struct {
	id      string
	version int
}

// InsertStatus stores status events in payout_events, each (disbursement
// id, version) once: duplicates within evs and events the table already
// holds (a redelivered batch) are skipped, so the materialized views
// count every status change once. It returns how many rows it inserted.
// Safe to call again with the same events after a failure. Disbursement
// ids must not contain a line break (the look-up sends them joined by one).
func (s *Store) InsertStatus(ctx context.Context, evs []events.Status) (int, error) {
	seen := make(map[eventKey]bool, len(evs))
	fresh := make([]events.Status, 0, len(evs))
	for _, ev := range evs {
		k := eventKey{ev.DisbursementID, ev.Version}
		if !seen[k] {
			seen[k] = true
			fresh = append(fresh, ev)
		}
	}
	stored, err := s.storedEvents(ctx, fresh)
	if err != nil {
		return 0, err
	}
	rows := make([][]any, 0, len(fresh))
	for _, ev := range fresh {
		if !stored[eventKey{ev.DisbursementID, ev.Version}] {
			rows = append(rows, eventValues(ev))
		}
	}
	if len(rows) == 0 {
		return 0, nil
	}
	if err := s.eng.Insert(ctx, s.table("payout_events"), eventColumns, rows); err != nil {
		return 0, fmt.Errorf("insert payout events: %w", err)
	}
	return len(rows), nil
}

// storedEvents returns which of evs payout_events already holds. The
// lookup follows the table's order (merchant, environment, id).
func (s *Store) storedEvents(ctx context.Context, evs []events.Status) (map[eventKey]bool, error) {
	out := map[eventKey]bool{}
	if len(evs) == 0 {
		return out, nil
	}
	scopes := map[string]bool{}
	ids := map[string]bool{}
	var scopeList, idList []string
	for _, ev := range evs {
		sc := "(" + Quote(ev.MerchantID) + ", " + Quote(ev.Environment) + ")"
		if !scopes[sc] {
			scopes[sc] = true
			scopeList = append(scopeList, sc)
		}
		if !ids[ev.DisbursementID] {
			ids[ev.DisbursementID] = true
			idList = append(idList, ev.DisbursementID)
		}
	}
	// The ids travel as one string literal, split by the engine: parsing
	// thousands of separate literals costs more than the look-up itself.
	q := fmt.Sprintf("SELECT disbursement_id, version FROM %s WHERE (merchant_id, environment) IN (%s) AND disbursement_id IN (SELECT arrayJoin(splitByChar('\\n', %s)))",
		s.table("payout_events"), strings.Join(scopeList, ", "), Quote(strings.Join(idList, "\n")))
	err := s.eng.QueryJSON(ctx, q, func(row []byte) error {
		var r struct {
			DisbursementID string `json:"disbursement_id"`
			Version        int    `json:"version"`
		}
		if err := json.Unmarshal(row, &r); err != nil {
			return err
		}
		out[eventKey{r.DisbursementID, r.Version}] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up stored events: %w", err)
	}
	return out, nil
}
