package api

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"go.yaml.in/yaml/v3"

	"github.com/disburse/disburse/connectors"
)

// TestOpenAPIMatchesRoutes keeps api/openapi.yaml and the routes served in step.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var spec struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(OpenAPI, &spec); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	documented := map[string]bool{}
	for path, ops := range spec.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	s := &Server{}
	served := map[string]bool{}
	for _, r := range append(s.MerchantRoutes(), s.OperatorRoutes()...) {
		served[r.Method+" "+r.Pattern] = true
	}
	for _, k := range sortedKeys(served) {
		if !documented[k] {
			t.Errorf("served but not in openapi.yaml: %s", k)
		}
	}
	for _, k := range sortedKeys(documented) {
		if !served[k] {
			t.Errorf("in openapi.yaml but not served: %s", k)
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIBankRules keeps the spec's per-bank rules equal to the bank
// directory the server validates with: BankCode lists every code, and
// each bank's branch of BankAccountRules and BankPayoutRules accepts
// exactly the account numbers connectors.Bank.ValidateAccount accepts (over
// digit strings and phone forms of every length around the limits) and
// the bank's amount limits.
func TestOpenAPIBankRules(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	schemas := doc.Components.Schemas
	var codes []string
	for _, v := range schemas["BankCode"].Value.Enum {
		codes = append(codes, fmt.Sprint(v))
	}
	var want []string
	for _, b := range connectors.All() {
		want = append(want, b.Code)
	}
	sort.Strings(codes)
	if !slices.Equal(codes, want) {
		t.Errorf("BankCode enum %v, the directory has %v", codes, want)
	}
	var samples []string
	for n := 1; n <= 20; n++ {
		digits := strings.Repeat("8", n)
		samples = append(samples, digits, "0"+digits, "62"+digits, "+62"+digits, "+62 "+digits, "0-"+digits, "1"+digits, "+1"+digits)
	}
	for _, name := range []string{"BankAccountRules", "BankPayoutRules"} {
		branches := map[string]*openapi3.Schema{}
		for _, br := range schemas[name].Value.OneOf {
			props := br.Value.Properties
			if len(props["bank_code"].Value.Enum) != 1 {
				t.Fatalf("%s: a branch without exactly one bank_code", name)
			}
			branches[fmt.Sprint(props["bank_code"].Value.Enum[0])] = br.Value
		}
		if len(branches) != len(want) {
			t.Errorf("%s has %d branches, the directory %d banks", name, len(branches), len(want))
		}
		for _, b := range connectors.All() {
			br := branches[b.Code]
			if br == nil {
				t.Errorf("%s: no branch for %s", name, b.Code)
				continue
			}
			re := regexp.MustCompile(br.Properties["account_number"].Value.Pattern)
			for _, s := range samples {
				if re.MatchString(s) != (b.ValidateAccount(s) == nil) {
					t.Errorf("%s %s: account_number %q: spec pattern says %v, the server %v", name, b.Code, s, re.MatchString(s), b.ValidateAccount(s))
				}
			}
			if name != "BankPayoutRules" {
				continue
			}
			amount := br.Properties["amount"].Value
			if amount.Min == nil || amount.Max == nil || int64(*amount.Min) != b.MinAmount || int64(*amount.Max) != b.MaxAmount {
				t.Errorf("%s %s: amount %v..%v, the directory %d..%d", name, b.Code, amount.Min, amount.Max, b.MinAmount, b.MaxAmount)
			}
		}
	}
}
