package batch

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/disburse/disburse/payout"
)

// MaxItems is the most items one batch may hold.
const MaxItems = 100_000

// Modes of validation.
const (
	AllOrNothing = "all_or_nothing" // any invalid item rejects the whole batch
	Partial      = "partial"        // valid items are accepted, invalid ones reported
)

// ErrTooManyItems: the batch holds more than MaxItems items.
var ErrTooManyItems = fmt.Errorf("a batch holds at most %d items", MaxItems)

// FormatError is a body that cannot be read as a batch at all (bad JSON or
// CSV syntax, a wrong header, binary data); Row is 0 when it is not about one row.
type FormatError struct {
	Row     int
	Message string
	// Field names an unknown field of a JSON batch object.
	Field string
}

func (e *FormatError) Error() string {
	if e.Row > 0 {
		return fmt.Sprintf("row %d: %s", e.Row, e.Message)
	}
	return e.Message
}

// Item is one payout of a batch with its position (1-based, the CSV header
// is not counted).
type Item struct {
	Row int
	payout.Request
}

// RowError is one invalid field of one item.
type RowError struct {
	Row int `json:"row"`
	payout.FieldError
}

// Header is the batch's own fields.
type Header struct {
	ReferenceID string `json:"reference_id"`
	Mode        string `json:"mode"`
	// QuoteID names the quote (POST /v1/batches/quote) the batch must
	// match; empty for a batch created without one.
	QuoteID string `json:"quote_id"`
	// ScheduledAt (RFC 3339) is when the batch is to be debited and sent;
	// empty for at once. The API checks it.
	ScheduledAt string `json:"scheduled_at"`
}

// Validate checks the header fields.
func (h *Header) Validate() []payout.FieldError {
	var errs []payout.FieldError
	if h.Mode == "" {
		h.Mode = AllOrNothing
	}
	if h.Mode != AllOrNothing && h.Mode != Partial {
		errs = append(errs, payout.FieldError{Field: "mode", Code: "INVALID_VALUE", Message: "mode must be all_or_nothing or partial"})
	}
	if h.ReferenceID == "" {
		errs = append(errs, payout.FieldError{Field: "reference_id", Code: "REQUIRED", Message: "the batch needs a reference_id"})
	} else if len(h.ReferenceID) > payout.MaxReferenceID || !validReference(h.ReferenceID) {
		errs = append(errs, payout.FieldError{Field: "reference_id", Code: "INVALID_FORMAT",
			Message: fmt.Sprintf("reference_id must be 1 to %d of letters, digits and - _ . : /", payout.MaxReferenceID)})
	}
	if h.QuoteID != "" && (len(h.QuoteID) > 64 || !strings.HasPrefix(h.QuoteID, "quo_") || !validReference(h.QuoteID)) {
		errs = append(errs, payout.FieldError{Field: "quote_id", Code: "INVALID_FORMAT", Message: "quote_id must be an id POST /v1/batches/quote answered (quo_...)"})
	}
	return errs
}

func validReference(s string) bool {
	probe := payout.Request{ReferenceID: s}
	for _, e := range probe.Validate() {
		if e.Field == "reference_id" {
			return false
		}
	}
	return true
}

// Columns are the CSV columns a batch may have: the item's JSON field names.
// Besides them, a column metadata.<key> fills the item's metadata[key]
// (an empty cell sets nothing).
var Columns = []string{"reference_id", "bank_code", "account_number", "amount", "currency", "description", "account_holder_name"}

// MetadataPrefix starts the name of a CSV column that fills metadata.
const MetadataPrefix = "metadata."

var requiredColumns = []string{"reference_id", "bank_code", "account_number", "amount"}

// ParseCSV streams a CSV batch: a header row naming columns (any order,
// known names only, the required ones present), then one item per row.
// UTF-8 with or without a byte-order mark; quoted fields per RFC 4180.
// emit is called for each item in order; a row of the wrong shape or a
// value of the wrong type is reported to rowErr and parsing goes on.
func ParseCSV(r io.Reader, emit func(Item) error, rowErr func(RowError)) error {
	br := bufio.NewReaderSize(&utf8Reader{r: r}, 64<<10)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte{0xEF, 0xBB, 0xBF}) {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return &FormatError{Message: "the CSV is empty: send a header row naming the columns, then one row per payout"}
	}
	if err != nil {
		return csvError(err)
	}
	index := map[string]int{}
	metaCols := map[string]int{} // metadata key -> column
	for i, raw := range header {
		name := strings.TrimSpace(strings.ToLower(raw))
		if strings.HasPrefix(name, MetadataPrefix) && utf8.ValidString(raw) {
			// The key keeps its case: metadata keys are the merchant's.
			key := strings.TrimSpace(raw)[len(MetadataPrefix):]
			if key == "" {
				return &FormatError{Message: "a metadata column names its key: metadata.<key>"}
			}
			if _, dup := metaCols[key]; dup {
				return &FormatError{Message: fmt.Sprintf("column %q appears twice in the header", truncate(MetadataPrefix+key, 60))}
			}
			metaCols[key] = i
			continue
		}
		if !utf8.ValidString(name) || !known(name) {
			return &FormatError{Message: fmt.Sprintf("unknown column %q in the header; the columns are %s and metadata.<key>", truncate(name, 40), strings.Join(Columns, ", "))}
		}
		if _, dup := index[name]; dup {
			return &FormatError{Message: fmt.Sprintf("column %q appears twice in the header", name)}
		}
		index[name] = i
	}
	for _, c := range requiredColumns {
		if _, ok := index[c]; !ok {
			return &FormatError{Message: fmt.Sprintf("the header lacks the required column %q (required: %s)", c, strings.Join(requiredColumns, ", "))}
		}
	}
	for row := 1; ; row++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return csvError(err)
		}
		if row > MaxItems {
			return ErrTooManyItems
		}
		if len(rec) != len(header) {
			rowErr(RowError{Row: row, FieldError: payout.FieldError{Field: "row", Code: "WRONG_FIELD_COUNT",
				Message: fmt.Sprintf("the row has %d fields, the header %d", len(rec), len(header))}})
			continue
		}
		it := Item{Row: row}
		field := func(name string) string {
			if i, ok := index[name]; ok {
				return rec[i]
			}
			return ""
		}
		it.ReferenceID = field("reference_id")
		it.BankCode = strings.TrimSpace(field("bank_code"))
		it.AccountNumber = strings.TrimSpace(field("account_number"))
		it.Currency = strings.TrimSpace(field("currency"))
		it.Description = field("description")
		it.AccountHolderName = field("account_holder_name")
		for key, i := range metaCols {
			if rec[i] != "" {
				if it.Metadata == nil {
					it.Metadata = map[string]string{}
				}
				it.Metadata[key] = rec[i]
			}
		}
		if a := strings.TrimSpace(field("amount")); a != "" {
			n, err := strconv.ParseInt(a, 10, 64)
			if err != nil {
				rowErr(RowError{Row: row, FieldError: payout.FieldError{Field: "amount", Code: "INVALID_TYPE",
					Message: "amount must be an integer in minor units that fits in 64 bits"}})
				continue
			}
			it.Amount = n
		}
		if err := emit(it); err != nil {
			return err
		}
	}
}

func csvError(err error) error {
	var fe *FormatError
	if errors.As(err, &fe) {
		return err
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &FormatError{Row: max(pe.StartLine-1, 0), Message: "CSV syntax: " + pe.Err.Error()}
	}
	return err // a read error from the body (size limit, client gone): not the batch's fault
}

func known(name string) bool {
	for _, c := range Columns {
		if c == name {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// ParseJSON streams a JSON batch {"reference_id", "mode", "items": [...]}:
// the items are decoded one at a time. Unknown fields, duplicate keys and
// trailing data are errors. The header fields may come before or after the
// items; h is complete only when ParseJSON returns.
func ParseJSON(r io.Reader, h *Header, emit func(Item) error, rowErr func(RowError)) error {
	dec := json.NewDecoder(&utf8Reader{r: r})
	dec.DisallowUnknownFields()
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return jsonError(err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return &FormatError{Message: fmt.Sprintf("the key %q appears twice in the batch object", truncate(key, 40))}
		}
		seen[key] = true
		switch key {
		case "reference_id", "mode", "quote_id", "scheduled_at":
			var v string
			if err := dec.Decode(&v); err != nil {
				return &FormatError{Message: key + " must be a string"}
			}
			switch key {
			case "mode":
				h.Mode = v
			case "quote_id":
				h.QuoteID = v
			case "scheduled_at":
				h.ScheduledAt = v
			default:
				h.ReferenceID = v
			}
		case "items":
			if err := parseItems(dec, emit, rowErr); err != nil {
				return err
			}
		default:
			return &FormatError{Field: truncate(key, 40), Message: fmt.Sprintf("unknown field %q in the batch object (fields: reference_id, mode, quote_id, scheduled_at, items)", truncate(key, 40))}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return &FormatError{Message: "the body must hold exactly one JSON object"}
	}
	if !seen["items"] {
		return &FormatError{Message: "the batch has no items array"}
	}
	return nil
}

func parseItems(dec *json.Decoder, emit func(Item) error, rowErr func(RowError)) error {
	if err := expectDelim(dec, '['); err != nil {
		return err
	}
	for row := 1; dec.More(); row++ {
		if row > MaxItems {
			return ErrTooManyItems
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return jsonError(err)
		}
		var it Item
		it.Row = row
		if err := decodeItem(raw, &it.Request); err != nil {
			rowErr(RowError{Row: row, FieldError: *err})
			continue
		}
		if err := emit(it); err != nil {
			return err
		}
	}
	return expectDelim(dec, ']')
}

// decodeItem decodes one item strictly, naming the field at fault.
func decodeItem(raw []byte, req *payout.Request) *payout.FieldError {
	if len(raw) == 0 || raw[0] != '{' {
		return &payout.FieldError{Field: "item", Code: "INVALID_TYPE", Message: "each item must be a JSON object"}
	}
	if !utf8.Valid(raw) {
		return &payout.FieldError{Field: "item", Code: "INVALID_CHARACTERS", Message: "the item is not valid UTF-8"}
	}
	if dup := duplicateKey(raw); dup != "" {
		return &payout.FieldError{Field: truncate(dup, 40), Code: "DUPLICATE_KEY", Message: "the item names this key twice"}
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(req); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return &payout.FieldError{Field: te.Field, Code: "INVALID_TYPE", Message: te.Field + " has the wrong type"}
		}
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return &payout.FieldError{Field: truncate(strings.Trim(name, `"`), 40), Code: "UNKNOWN_FIELD", Message: "items do not take this field"}
		}
		return &payout.FieldError{Field: "item", Code: "INVALID_TYPE", Message: "the item is not a valid payout object"}
	}
	return nil
}

// duplicateKey returns a key named twice at the top level of an object.
func duplicateKey(raw []byte) string {
	d := json.NewDecoder(bytes.NewReader(raw))
	if _, err := d.Token(); err != nil {
		return ""
	}
	seen := map[string]bool{}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		k, _ := tok.(string)
		if seen[k] {
			return k
		}
		seen[k] = true
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return &FormatError{Message: fmt.Sprintf("expected %q in the JSON batch", string(want))}
	}
	return nil
}

func jsonError(err error) error {
	var fe *FormatError
	if errors.As(err, &fe) {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &FormatError{Message: "the JSON batch ends early"}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &FormatError{Message: fmt.Sprintf("JSON syntax error at byte %d", se.Offset)}
	}
	return err // a read error from the body (size limit, client gone): not the batch's fault
}

// ErrNotUTF8: the body is not valid UTF-8.
var ErrNotUTF8 = &FormatError{Message: "the body is not valid UTF-8"}

// utf8Reader passes a stream through and fails with ErrNotUTF8 at the first
// invalid sequence. It validates in chunks, holding back at most 3 bytes of
// a sequence split between reads of the underlying reader.
type utf8Reader struct {
	r     io.Reader
	buf   []byte
	ready []byte // validated, not yet handed out (a window of buf)
	tail  []byte // an incomplete sequence at the end of the last chunk
	err   error
}

func (u *utf8Reader) Read(p []byte) (int, error) {
	for len(u.ready) == 0 {
		if u.err != nil {
			return 0, u.err
		}
		if u.buf == nil {
			u.buf = make([]byte, 32<<10)
		}
		n := copy(u.buf, u.tail)
		m, err := u.r.Read(u.buf[n:])
		n += m
		u.err = err
		valid := n
		if err == nil {
			for back := 1; back <= 3 && back <= n; back++ {
				if b := u.buf[n-back]; b < 0x80 {
					break
				} else if utf8.RuneStart(b) {
					if !utf8.FullRune(u.buf[n-back : n]) {
						valid = n - back
					}
					break
				}
			}
		}
		if !utf8.Valid(u.buf[:valid]) {
			u.err, u.ready, u.tail = ErrNotUTF8, nil, nil
			return 0, ErrNotUTF8
		}
		u.tail = append(u.tail[:0:0], u.buf[valid:n]...)
		u.ready = u.buf[:valid]
	}
	k := copy(p, u.ready)
	u.ready = u.ready[k:]
	return k, nil
}
