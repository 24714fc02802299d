package api

import (
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/disburse/disburse/payout"
)

// Bad query parameters answer 400 VALIDATION_ERROR on every route, with a
// field naming the parameter; 422 is kept for bodies that parse but hold
// invalid values (docs/decisions.md, "One status for bad query parameters").

// badQuery is the one answer to a query parameter the server refuses.
func badQuery(param, code, message string) *problem {
	return newProblem(http.StatusBadRequest, CodeValidation, message,
		payout.FieldError{Field: param, Code: code, Message: message})
}

// queryLimit reads ?limit=: def when absent, else an integer 1 to max.
func queryLimit(q url.Values, def, max int) (int, *problem) {
	raw := q.Get("limit")
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > max {
		return 0, badQuery("limit", "OUT_OF_RANGE", "limit must be an integer from 1 to "+strconv.Itoa(max))
	}
	return n, nil
}

// queryText reads a free-text parameter of at most max characters of
// UTF-8 without control characters.
func queryText(q url.Values, param string, max int) (string, *problem) {
	v := q.Get(param)
	// Characters, as the spec's maxLength counts them.
	if !utf8.ValidString(v) || utf8.RuneCountInString(v) > max {
		return "", badQuery(param, "INVALID_VALUE", param+" must be UTF-8 text of at most "+strconv.Itoa(max)+" characters")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "", badQuery(param, "INVALID_VALUE", param+" must not contain control characters")
		}
	}
	return v, nil
}

// queryTime reads an RFC 3339 time parameter (zero when absent).
func queryTime(q url.Values, param string) (time.Time, *problem) {
	raw := q.Get(param)
	if raw == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, badQuery(param, "INVALID_TIME", param+" must be an RFC 3339 time such as 2026-11-30T17:00:00Z")
	}
	return t.UTC(), nil
}

// cursorProblem answers a cursor this list did not hand out.
func cursorProblem(param string) *problem {
	return badQuery(param, "INVALID_CURSOR", param+" must be the next_cursor of a previous page of this list")
}

// checkRequestText refuses, before any handler reads them, a path or query
// that no store could be asked about: a path that is not UTF-8 or holds
// control characters is no resource (404); a query string that does not
// parse, or a parameter that is not UTF-8 or holds a NUL or another
// control character, is a bad parameter (400). Postgres refuses such text
// with an error, which must not become a 500.
func checkRequestText(r *http.Request) *problem {
	if !cleanParam(r.URL.Path) {
		return newProblem(http.StatusNotFound, CodeNotFound, "no such resource")
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return badQuery("query", "INVALID_ENCODING", "the query string is not valid percent-encoding")
	}
	for name, vs := range q {
		if !cleanParam(name) {
			return badQuery("query", "INVALID_ENCODING", "query parameter names must be UTF-8 without control characters")
		}
		for _, v := range vs {
			if !cleanParam(v) {
				return badQuery(name, "INVALID_ENCODING", name+" must be UTF-8 without control characters")
			}
		}
	}
	return nil
}

func cleanParam(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// writeIDPage answers one page of a list keyed by id: the items (an empty
// list, never null) and, when the page is full, the last item's id as
// next_cursor (null otherwise).
func writeIDPage[T any](w http.ResponseWriter, list []T, limit int, id func(T) string) {
	var next *string
	if len(list) == limit && limit > 0 {
		last := id(list[len(list)-1])
		next = &last
	}
	if list == nil {
		list = []T{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": list, "next_cursor": next})
}
