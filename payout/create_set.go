package payout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// NewPayout is one create request of a set: whose it is, its idempotency
// key and its (normalized, validated) body.
type NewPayout struct {
	MerchantID     string
	Environment    string
	IdempotencyKey string
	Request        Request
	// RequestID is the X-Request-Id of the API call (stored on the payout).
	RequestID string
}

// Created is the answer to one NewPayout, as Create would give it: the
// payout and whether this request made it, or ErrIdempotencyKeyReused or
// ErrDuplicateReference.
type Created struct {
	Disbursement Disbursement
	Created      bool
	Err          error
}

// CreateSet creates a set of payouts in one transaction (one multi-row
// insert with their creation events) and answers each request as Create
// would have, in the order given. Requests of the set are treated as if
// they came one after another in that order: of two with the same key the
// first creates and the second replays (same body) or gets
// ErrIdempotencyKeyReused; of two with the same reference_id under
// different keys the second gets ErrDuplicateReference. A returned error
// means nothing of the set was stored.
func (s *Store) CreateSet(ctx context.Context, set []NewPayout) ([]Created, error) {
	return s.CreateSetThen(ctx, set, nil)
}

// CreateSetThen is CreateSet with then run inside the same transaction on
// its answers (a held payout of issue 14 is moved to its hold and its
// approval or schedule stored there, so no crash leaves it PENDING).
func (s *Store) CreateSetThen(ctx context.Context, set []NewPayout, then func(context.Context, pgx.Tx, []Created) error) ([]Created, error) {
	if len(set) == 0 {
		return nil, nil
	}
	var out []Created
	var err error
	// Two concurrent sets may insert rows that collide on a unique index in
	// opposite orders; Postgres then aborts one with a deadlock, which is
	// safe to run again (nothing of it was stored).
	for attempt := 0; attempt < 3; attempt++ {
		err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
			var err error
			out, err = createSet(ctx, tx, set)
			if err == nil && then != nil {
				err = then(ctx, tx, out)
			}
			return err
		})
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || (pgErr.Code != "40P01" && pgErr.Code != "40001") {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create payouts: %w", err)
	}
	return out, nil
}

func createSet(ctx context.Context, tx pgx.Tx, set []NewPayout) ([]Created, error) {
	n := len(set)
	ids := make([]string, n)
	hashes := make([][]byte, n)
	// first[id] is the index of the first request with that id (the same
	// merchant, environment and key): only it goes into the insert.
	first := make(map[string]int, n)
	order := make([]int, 0, n)
	for i, p := range set {
		ids[i] = ID(p.MerchantID, p.Environment, p.IdempotencyKey)
		hashes[i] = p.Request.Hash()
		if _, ok := first[ids[i]]; !ok {
			first[ids[i]] = i
			order = append(order, i)
		}
	}
	// Rows go in in id order so that concurrent sets lock index entries in
	// the same order (fewer deadlocks), except that two rows with the same
	// reference_id keep their request order: the earlier request wins it.
	sort.SliceStable(order, func(a, b int) bool { return ids[order[a]] < ids[order[b]] })
	refFirst := map[[3]string]int{}
	for _, i := range order {
		k := [3]string{set[i].MerchantID, set[i].Environment, set[i].Request.ReferenceID}
		if j, ok := refFirst[k]; !ok || i < j {
			refFirst[k] = i
		}
	}
	var (
		cID, cMerchant, cEnv, cKey, cRef, cBank, cAccount, cHolder, cCurrency, cDesc, cMeta, cRID []string
		cHash                                                                                     [][]byte
		cAmount                                                                                   []int64
	)
	// The winner of each reference_id goes first, so that ON CONFLICT skips
	// the later requests' rows, as it would have one request at a time.
	insertOrder := make([]int, 0, len(order))
	losers := make([]int, 0)
	for _, i := range order {
		k := [3]string{set[i].MerchantID, set[i].Environment, set[i].Request.ReferenceID}
		if refFirst[k] == i {
			insertOrder = append(insertOrder, i)
		} else {
			losers = append(losers, i)
		}
	}
	insertOrder = append(insertOrder, losers...)
	for _, i := range insertOrder {
		p := set[i]
		meta := p.Request.Metadata
		if meta == nil {
			meta = map[string]string{}
		}
		m, err := json.Marshal(meta)
		if err != nil {
			return nil, err
		}
		cID = append(cID, ids[i])
		cMerchant = append(cMerchant, p.MerchantID)
		cEnv = append(cEnv, p.Environment)
		cKey = append(cKey, p.IdempotencyKey)
		cHash = append(cHash, hashes[i])
		cRef = append(cRef, p.Request.ReferenceID)
		cBank = append(cBank, p.Request.BankCode)
		cAccount = append(cAccount, p.Request.AccountNumber)
		cHolder = append(cHolder, p.Request.AccountHolderName)
		cAmount = append(cAmount, p.Request.Amount)
		cCurrency = append(cCurrency, p.Request.Currency)
		cDesc = append(cDesc, p.Request.Description)
		cMeta = append(cMeta, string(m))
		cRID = append(cRID, p.RequestID)
	}
	rows, err := tx.Query(ctx, `
		WITH changed AS (
			INSERT INTO disbursements (id, merchant_id, environment, idempotency_key, request_hash,
				reference_id, bank_code, account_number, account_holder_name, amount, currency,
				description, metadata, status, request_id)
			SELECT t.id, t.merchant_id, t.environment, t.idempotency_key, t.request_hash, t.reference_id,
				t.bank_code, t.account_number, t.account_holder_name, t.amount, t.currency,
				t.description, t.metadata::jsonb, 'PENDING', t.request_id
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::text[],
				$8::text[], $9::text[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[])
				WITH ORDINALITY AS t(id, merchant_id, environment, idempotency_key, request_hash, reference_id,
					bank_code, account_number, account_holder_name, amount, currency, description, metadata, request_id, n)
			ORDER BY t.n
			ON CONFLICT DO NOTHING
			RETURNING *), `+recordEvents+`
		SELECT `+columns+` FROM changed`,
		cID, cMerchant, cEnv, cKey, cHash, cRef, cBank, cAccount, cHolder, cAmount, cCurrency, cDesc, cMeta, cRID)
	if err != nil {
		return nil, fmt.Errorf("insert payouts: %w", err)
	}
	inserted, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Disbursement, error) { return scan(r) })
	if err != nil {
		return nil, fmt.Errorf("insert payouts: %w", err)
	}
	out := make([]Created, n)
	done := make([]bool, n)
	for _, d := range inserted {
		i := first[d.ID]
		out[i], done[i] = Created{Disbursement: d, Created: true}, true
	}

	// The rest conflicted: an earlier use of the key (a replay or a reuse,
	// possibly by an earlier request of this set), or a reference_id used
	// under another key. Read what each key holds now, in this transaction.
	var lookM, lookE, lookK []string
	for i, p := range set {
		if !done[i] {
			lookM, lookE, lookK = append(lookM, p.MerchantID), append(lookE, p.Environment), append(lookK, p.IdempotencyKey)
		}
	}
	if len(lookK) == 0 {
		return out, nil
	}
	rows, err = tx.Query(ctx, `SELECT request_hash, `+columns+`
		FROM unnest($1::text[], $2::text[], $3::text[]) AS k(merchant_id, environment, idempotency_key)
		JOIN disbursements d USING (merchant_id, environment, idempotency_key)`, lookM, lookE, lookK)
	if err != nil {
		return nil, fmt.Errorf("read payouts for idempotency keys: %w", err)
	}
	type stored struct {
		d    Disbursement
		hash []byte
	}
	byID := map[string]stored{}
	for rows.Next() {
		var st stored
		if st.d, err = scanWithHash(rows, &st.hash); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read payouts for idempotency keys: %w", err)
		}
		byID[st.d.ID] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read payouts for idempotency keys: %w", err)
	}
	for i := range set {
		if done[i] {
			continue
		}
		st, ok := byID[ids[i]]
		switch {
		case !ok:
			out[i].Err = ErrDuplicateReference
		case !bytes.Equal(st.hash, hashes[i]):
			out[i].Err = ErrIdempotencyKeyReused
		default:
			out[i].Disbursement = st.d
		}
	}
	return out, nil
}
