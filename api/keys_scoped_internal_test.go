package api

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestEveryMerchantRouteHasAScope keeps routeScopes and the routes in
// step: a route missing from the table would silently need the full key,
// an entry without a route is a typo. Every authenticated route documents
// the 403 a restricted key gets.
func TestEveryMerchantRouteHasAScope(t *testing.T) {
	var spec struct {
		Paths map[string]map[string]struct {
			Responses map[string]any `yaml:"responses"`
		} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(OpenAPI, &spec); err != nil {
		t.Fatal(err)
	}
	s := &Server{}
	served := map[string]bool{}
	for _, r := range s.MerchantRoutes() {
		k := r.Method + " " + r.Pattern
		served[k] = true
		if r.Pattern == "/v1/openapi.yaml" {
			continue
		}
		if _, ok := routeScopes[k]; !ok {
			t.Errorf("%s has no entry in routeScopes", k)
		}
		if _, ok := spec.Paths[r.Pattern][strings.ToLower(r.Method)].Responses["403"]; !ok {
			t.Errorf("%s does not document 403 (INSUFFICIENT_SCOPE)", k)
		}
	}
	for k := range routeScopes {
		if !served[k] {
			t.Errorf("routeScopes names %s, which is not served", k)
		}
	}
}
