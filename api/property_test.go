package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp/syntax"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/disburse/disburse/api"
)

// gen makes values for a schema: mostly valid ones (enum members, lengths
// and ranges inside the limits, formats honoured), and now and then a
// value from outside them, so both paths of every check are exercised.
type gen struct{ r *rand.Rand }

var genText = []string{"a", "Z", "0", "-", "_", ".", " ", "é", "日", "=", "'", "\"", "%", "/", "\\", "\u200b", "\U0001F600"}

func (g gen) str(s *openapi3.Schema) string {
	if len(s.Enum) > 0 && g.r.IntN(8) > 0 {
		return fmt.Sprint(s.Enum[g.r.IntN(len(s.Enum))])
	}
	if s.Pattern != "" && g.r.IntN(8) > 0 {
		if re, err := syntax.Parse(s.Pattern, syntax.Perl); err == nil {
			var b strings.Builder
			g.match(&b, re.Simplify())
			return b.String()
		}
	}
	switch s.Format {
	case "date-time":
		if g.r.IntN(6) > 0 {
			return time.Date(2026, time.Month(1+g.r.IntN(12)), 1+g.r.IntN(28), g.r.IntN(24), g.r.IntN(60), 0, 0, time.UTC).Format(time.RFC3339)
		}
	case "date":
		if g.r.IntN(6) > 0 {
			return time.Date(2025+g.r.IntN(2), time.Month(1+g.r.IntN(12)), 1+g.r.IntN(28), 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
		}
	}
	n := g.r.IntN(12)
	if s.MaxLength != nil && g.r.IntN(10) > 0 {
		n = g.r.IntN(int(min(*s.MaxLength, 80)) + 1)
	}
	var b strings.Builder
	for range n {
		b.WriteString(genText[g.r.IntN(len(genText))])
	}
	return b.String()
}

// match writes a string the regular expression re matches: a random
// member of each class, a random branch of each alternation, a few
// repetitions of each star or plus.
func (g gen) match(b *strings.Builder, re *syntax.Regexp) {
	switch re.Op {
	case syntax.OpLiteral:
		b.WriteString(string(re.Rune))
	case syntax.OpCharClass:
		i := 2 * g.r.IntN(len(re.Rune)/2)
		lo, hi := re.Rune[i], min(re.Rune[i+1], re.Rune[i]+0x3ff)
		b.WriteRune(lo + rune(g.r.IntN(int(hi-lo)+1)))
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		b.WriteString(genText[g.r.IntN(len(genText))])
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			g.match(b, sub)
		}
	case syntax.OpAlternate:
		g.match(b, re.Sub[g.r.IntN(len(re.Sub))])
	case syntax.OpCapture:
		g.match(b, re.Sub[0])
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		n := g.r.IntN(6)
		switch re.Op {
		case syntax.OpPlus:
			n++
		case syntax.OpQuest:
			n %= 2
		}
		for range n {
			g.match(b, re.Sub[0])
		}
	case syntax.OpRepeat:
		n := re.Min
		if re.Max > re.Min {
			n += g.r.IntN(min(re.Max-re.Min, 8) + 1)
		} else if re.Max < 0 {
			n += g.r.IntN(6)
		}
		for range n {
			g.match(b, re.Sub[0])
		}
	}
}

func (g gen) value(ref *openapi3.SchemaRef, depth int) any {
	if ref == nil || ref.Value == nil {
		return nil
	}
	s := ref.Value
	if len(s.OneOf) > 0 && g.r.IntN(8) > 0 {
		return g.value(s.OneOf[g.r.IntN(len(s.OneOf))], depth)
	}
	switch {
	case s.Type == nil && len(s.Enum) > 0: // a branch narrowing a property
		return s.Enum[g.r.IntN(len(s.Enum))]
	case s.Type == nil && s.Pattern != "":
		return g.str(s)
	case s.Type == nil && (s.Min != nil || s.Max != nil):
		return g.value(&openapi3.SchemaRef{Value: &openapi3.Schema{Type: &openapi3.Types{"integer"}, Min: s.Min, Max: s.Max}}, depth)
	case s.Type.Is("string"):
		return g.str(s)
	case s.Type.Is("integer"):
		lo, hi := int64(-5), int64(1_000_000)
		if s.Min != nil {
			lo = int64(*s.Min)
		}
		if s.Max != nil {
			hi = int64(*s.Max)
		}
		if g.r.IntN(10) == 0 {
			return lo - 1 - g.r.Int64N(10)
		}
		if hi <= lo {
			return lo
		}
		return lo + g.r.Int64N(min(hi-lo, 1<<40)+1)
	case s.Type.Is("number"):
		return g.r.Float64() * 1000
	case s.Type.Is("boolean"):
		return g.r.IntN(2) == 0
	case s.Type.Is("array"):
		if depth > 3 {
			return []any{}
		}
		n := g.r.IntN(4)
		out := make([]any, n)
		for i := range out {
			out[i] = g.value(s.Items, depth+1)
		}
		return out
	case s.Type.Is("object") || len(s.Properties) > 0:
		out := map[string]any{}
		if depth > 3 {
			return out
		}
		names := make([]string, 0, len(s.Properties))
		for k := range s.Properties {
			names = append(names, k)
		}
		sort.Strings(names)
		required := map[string]bool{}
		for _, k := range s.Required {
			required[k] = true
		}
		for _, k := range names {
			if required[k] || g.r.IntN(2) == 0 {
				out[k] = g.value(s.Properties[k], depth+1)
			}
		}
		if s.AdditionalProperties.Schema != nil && g.r.IntN(3) == 0 {
			out[g.str(&openapi3.Schema{})] = g.value(s.AdditionalProperties.Schema, depth+1)
		}
		// allOf parts (a oneOf of per-bank rules) narrow some properties:
		// their values replace the ones drawn from the wide schema.
		for _, part := range s.AllOf {
			if m, ok := g.value(part, depth).(map[string]any); ok {
				for k, v := range m {
					out[k] = v
				}
			}
		}
		return out
	}
	return nil
}

// TestPropertyEveryOperation generates requests for every operation of
// api/openapi.yaml from its parameters and body schema and sends them:
// none may answer 500; every answer must be one the spec documents for
// the operation, with its schema (checked by do, as for every test); a
// request valid by the spec (openapi3filter) must not be refused as
// invalid (400/422 VALIDATION_ERROR) but for the rules the spec lists as
// beyond a schema; and a request the spec calls invalid must not succeed
// (the spec may state no rule the server does not check).
func TestPropertyEveryOperation(t *testing.T) {
	if testing.Short() {
		t.Skip("sends a thousand requests")
	}
	e := newEnv(t)
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	// A payout, a batch and a callback to find by id.
	created := e.callWith(t, e.key, "POST", e.srv.URL+"/v1/disbursements",
		`{"reference_id":"prop-1","bank_code":"bca","account_number":"1234567890","amount":150000}`,
		func(r *http.Request) { r.Header.Set("Idempotency-Key", "prop-1") })
	ids := []string{created.body["id"].(string), "dsb_none", "m1", "1", "key_0", "sandbox", "production", "x%00y", "%ff"}
	g := gen{rand.New(rand.NewPCG(17, uint64(time.Now().UnixNano())))}
	const perOperation = 20
	paths := doc.Paths.InMatchingOrder()
	sort.Strings(paths)
	statuses := map[int]int{}
	validSent := 0
	for _, p := range paths {
		item := doc.Paths.Value(p)
		for method, op := range item.Operations() {
			if strings.Contains(p, "rotate") || strings.HasSuffix(p, "/revoke") || strings.HasSuffix(p, "/suspend") || method == "PATCH" {
				// These change the caller's own access (a new key, a
				// whitelist, a suspension) and would end the run early;
				// their bad inputs are in the hostile-request table.
				continue
			}
			for i := range perOperation {
				path := p
				q := url.Values{}
				headers := http.Header{}
				for _, pr := range append(item.Parameters, op.Parameters...) {
					par := pr.Value
					switch par.In {
					case "path":
						v := ids[g.r.IntN(len(ids))]
						if par.Name == "env" && g.r.IntN(4) > 0 {
							v = []string{"sandbox", "production"}[g.r.IntN(2)]
						}
						path = strings.ReplaceAll(path, "{"+par.Name+"}", v)
					case "query":
						if !par.Required && g.r.IntN(2) == 0 {
							continue
						}
						switch v := g.value(par.Schema, 0).(type) {
						case []any:
							for _, x := range v {
								q.Add(par.Name, fmt.Sprint(x))
							}
						default:
							q.Set(par.Name, fmt.Sprint(v))
						}
					case "header":
						headers.Set(par.Name, fmt.Sprintf("prop-%s-%d-%d", strings.ToLower(method), i, g.r.IntN(1000)))
					}
				}
				body := ""
				if op.RequestBody != nil && op.RequestBody.Value != nil {
					if mt := op.RequestBody.Value.Content.Get("application/json"); mt != nil {
						b, _ := json.Marshal(g.value(mt.Schema, 0))
						body = string(b)
					}
				}
				u := e.srv.URL + path
				if strings.HasPrefix(path, "/operator/") {
					u = e.op.URL + path
				}
				if len(q) > 0 {
					u += "?" + q.Encode()
				}
				build := func() *http.Request {
					var rd io.Reader
					if body != "" {
						rd = strings.NewReader(body)
					}
					r, err := http.NewRequest(method, u, rd)
					if err != nil {
						t.Fatal(err)
					}
					for k, v := range headers {
						r.Header[k] = v
					}
					if body != "" {
						r.Header.Set("Content-Type", "application/json")
					}
					if strings.HasPrefix(path, "/operator/") {
						r.Header.Set("Authorization", "Bearer "+operatorToken)
					} else {
						r.SetBasicAuth(e.key, "")
					}
					return r
				}
				valid := specValid(t, build())
				a := do(t, build())
				statuses[a.status]++
				if valid {
					validSent++
				}
				if a.status >= 500 && a.status != 503 {
					t.Errorf("%s %s %s: %d %s", method, u, body, a.status, a.raw)
				}
				if valid && (a.status == 400 || a.status == 422) && !beyondSchema(a) {
					t.Errorf("schema-valid request refused: %s %s %s: %d %s", method, u, body, a.status, a.raw)
				}
				// A partial batch refuses invalid items row by row in a 202.
				rowsRefused, _ := a.body["rejected_count"].(float64)
				if !valid && a.status < 300 && rowsRefused == 0 {
					t.Errorf("schema-invalid request accepted (the spec states a rule the server does not check): %s %s %s: %d %.300s", method, u, body, a.status, a.raw)
				}
			}
		}
	}
	t.Logf("answers by status: %v; %d of the requests were valid by the spec", statuses, validSent)
}

// specValid reports whether req is valid by api/openapi.yaml: its route,
// parameters, headers and body (authentication aside).
func specValid(t *testing.T, req *http.Request) bool {
	t.Helper()
	router, err := specRouter()
	if err != nil {
		t.Fatal(err)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		return false
	}
	return openapi3filter.ValidateRequest(req.Context(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}) == nil
}

// beyondRules are the 400/422 field codes of rules a JSON Schema cannot
// state, each documented in words in api/openapi.yaml: a cursor the list
// did not hand out (an opaque token, like an id that does not exist), a
// range whose end is not after its start or is too long (two parameters),
// a time zone the zone database lacks, a calendar date that does not
// exist (2026-02-30 matches the date pattern), reference_id or mode in
// the query of a JSON batch (depends on the Content-Type), a metadata key
// (OpenAPI 3.0 has no propertyNames), and a reference_id repeated inside
// one batch (uniqueness of a property across items).
var beyondRules = map[string]bool{
	"INVALID_CURSOR": true, "INVALID_RANGE": true, "BEFORE_FROM": true, "RANGE_TOO_LONG": true,
	"INVALID_TIME_ZONE": true, "INVALID_DATE": true, "CSV_ONLY": true, "INVALID_KEY": true, "DUPLICATE_IN_BATCH": true,
	// Issue 14: a scheduled_at outside now to 30 days ahead (depends on the
	// clock), a quote_id the environment does not have (like a cursor), a
	// velocity limit above the operator's ceiling (stored state).
	"SCHEDULE_WINDOW": true, "UNKNOWN_QUOTE": true, "OVER_CEILING": true,
}

// beyondSchema reports whether a 400 or 422 to a schema-valid request is
// one the spec allows: not a validation error at all (NAME_MISMATCH and
// the other business answers), or validation errors that each name a
// beyondRules code.
func beyondSchema(a answer) bool {
	e, _ := a.body["error"].(map[string]any)
	if code, _ := e["code"].(string); code != api.CodeValidation && code != api.CodeInvalidJSON && code != api.CodeInvalidBatch {
		return true
	}
	var reasons []map[string]any
	for _, key := range []string{"fields", "rows"} {
		list, _ := e[key].([]any)
		for _, x := range list {
			if m, ok := x.(map[string]any); ok {
				reasons = append(reasons, m)
			}
		}
	}
	if len(reasons) == 0 {
		return false
	}
	for _, r := range reasons {
		if code, _ := r["code"].(string); !beyondRules[code] {
			return false
		}
	}
	return true
}
