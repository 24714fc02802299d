package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/disburse/disburse/payout"
)

// decodeJSON reads a JSON body of at most limit bytes into v, strictly: the
// media type must be JSON, the body UTF-8 with one value, no duplicate keys,
// no unknown fields, and numbers that fit their Go types.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) *problem {
	if prob := requireJSON(r); prob != nil {
		return prob
	}
	body, prob := readBody(w, r, limit)
	if prob != nil {
		return prob
	}
	return decodeStrict(body, v)
}

// decodeEmpty guards an endpoint that takes no body: it accepts none, or
// an empty JSON object, and refuses anything else as decodeJSON would.
func decodeEmpty(w http.ResponseWriter, r *http.Request) *problem {
	body, prob := readBody(w, r, maxEmptyBody)
	if prob != nil {
		return prob
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if prob := requireJSON(r); prob != nil {
		return prob
	}
	return decodeStrict(body, &struct{}{})
}

func requireJSON(r *http.Request) *problem {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return newProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "send the body as Content-Type: application/json")
	}
	return nil
}

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *problem) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, newProblem(http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("the body must be at most %d bytes", limit))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil, newProblem(http.StatusRequestTimeout, CodeTimeout, "the request body did not arrive in time")
	}
	if err != nil {
		return nil, newProblem(http.StatusBadRequest, CodeInvalidJSON, "could not read the request body")
	}
	return body, nil
}

// decodeStrict is decodeJSON's checks on a body already read; fuzzed.
func decodeStrict(body []byte, v any) *problem {
	if !utf8.Valid(body) {
		return newProblem(http.StatusBadRequest, CodeInvalidJSON, "the body must be UTF-8")
	}
	if err := checkDuplicateKeys(body); err != nil {
		return newProblem(http.StatusBadRequest, CodeInvalidJSON, err.Error())
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonProblem(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return newProblem(http.StatusBadRequest, CodeInvalidJSON, "the body must hold exactly one JSON value")
	}
	return nil
}

func jsonProblem(err error) *problem {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return newProblem(http.StatusBadRequest, CodeInvalidJSON, "the body must be a JSON object")
		}
		return newProblem(http.StatusUnprocessableEntity, CodeValidation, "a field has the wrong type",
			payout.FieldError{Field: field, Code: "INVALID_TYPE", Message: fmt.Sprintf("%s must be %s", field, describeType(typeErr))})
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return newProblem(http.StatusBadRequest, CodeInvalidJSON, "the body is not valid JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if len(name) > 64 {
			name = name[:64]
		}
		return newProblem(http.StatusUnprocessableEntity, CodeValidation, "the body has a field this endpoint does not take",
			payout.FieldError{Field: name, Code: "UNKNOWN_FIELD", Message: "remove this field"})
	default:
		return newProblem(http.StatusBadRequest, CodeInvalidJSON, "the body is not valid JSON")
	}
}

func describeType(e *json.UnmarshalTypeError) string {
	switch e.Type.Kind().String() {
	case "int64", "int", "int32":
		return "an integer that fits in 64 bits"
	case "string":
		return "a string"
	case "map":
		return "an object of strings"
	default:
		return "a " + e.Type.Kind().String()
	}
}

// checkDuplicateKeys rejects an object that names a key twice, at any depth.
func checkDuplicateKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		object  bool
		keys    map[string]bool
		wantKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return nil // syntax errors are reported by the real decode
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			key, _ := tok.(string)
			if top.keys[key] {
				return fmt.Errorf("the key %q appears twice in one object", truncateKey(key))
			}
			top.keys[key] = true
			top.wantKey = false
			continue
		}
		if top != nil && top.object {
			top.wantKey = true
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				stack = append(stack, &frame{object: true, keys: map[string]bool{}, wantKey: true})
			case '[':
				stack = append(stack, &frame{})
			case '}', ']':
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].wantKey = true
				}
			}
		}
	}
}

func truncateKey(k string) string {
	if len(k) > 40 {
		return k[:40] + "..."
	}
	return k
}
