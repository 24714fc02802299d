package batch

import (
	"io"
	"mime"
	"strconv"

	"github.com/disburse/disburse/payout"
)

// MaxReportedErrors caps the row errors returned; InvalidRows counts them all.
const MaxReportedErrors = 1000

// Parsed is a batch read and validated.
type Parsed struct {
	Header      Header
	Items       []Item     // the valid items, in row order
	Errors      []RowError // the first MaxReportedErrors row errors
	InvalidRows int
	Rows        int
}

// Read parses and validates a batch body of the given media type
// ("application/json" or "text/csv"). For CSV, header carries the batch's
// reference_id and mode (query parameters); for JSON they come in the body.
// A *FormatError or ErrTooManyItems means the body is not a batch at all.
func Read(body io.Reader, mediaType string, header Header) (*Parsed, error) {
	p := &Parsed{Header: header}
	seen := make(map[string]int, 1024)
	invalid := map[int]bool{}
	rowErr := func(e RowError) {
		if !invalid[e.Row] {
			invalid[e.Row] = true
			p.InvalidRows++
		}
		if len(p.Errors) < MaxReportedErrors {
			p.Errors = append(p.Errors, e)
		}
	}
	emit := func(it Item) error {
		p.Rows = max(p.Rows, it.Row)
		it.Normalize()
		bad := false
		for _, fe := range it.Validate() {
			rowErr(RowError{Row: it.Row, FieldError: fe})
			bad = true
		}
		if it.ReferenceID != "" {
			if first, dup := seen[it.ReferenceID]; dup {
				rowErr(RowError{Row: it.Row, FieldError: payout.FieldError{Field: "reference_id", Code: "DUPLICATE_IN_BATCH",
					Message: "this reference_id is also used by row " + strconv.Itoa(first)}})
				bad = true
			} else {
				seen[it.ReferenceID] = it.Row
			}
		}
		if !bad {
			p.Items = append(p.Items, it)
		}
		return nil
	}
	trackErr := func(e RowError) {
		p.Rows = max(p.Rows, e.Row)
		rowErr(e)
	}
	var err error
	switch mediaType {
	case "text/csv":
		err = ParseCSV(body, emit, trackErr)
	default:
		err = ParseJSON(body, &p.Header, emit, trackErr)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// MediaType returns the batch format of a Content-Type header, or "" when
// it is neither JSON nor CSV.
func MediaType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	switch mt {
	case "application/json", "text/csv":
		return mt
	}
	return ""
}
