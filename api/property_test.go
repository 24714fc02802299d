package api_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

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

func (g gen) value(ref *openapi3.SchemaRef, depth int) any {
	if ref == nil || ref.Value == nil {
		return nil
	}
	s := ref.Value
	switch {
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
		return out
	}
	return nil
}

// TestPropertyEveryOperation generates requests for every operation of
// api/openapi.yaml from its parameters and body schema and sends them:
// none may answer 500, and every answer must be one the spec documents
// for the operation, with its schema (checked by do, as for every test).
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
				a := e.callWith(t, "", method, u, body, func(r *http.Request) {
					for k, v := range headers {
						r.Header[k] = v
					}
					if strings.HasPrefix(path, "/operator/") {
						r.Header.Set("Authorization", "Bearer "+operatorToken)
					} else {
						r.SetBasicAuth(e.key, "")
					}
				})
				statuses[a.status]++
				if a.status >= 500 && a.status != 503 {
					t.Errorf("%s %s %s: %d %s", method, u, body, a.status, a.raw)
				}
			}
		}
	}
	t.Logf("answers by status: %v", statuses)
}
