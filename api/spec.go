package api

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the contract in api/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// getOpenAPI serves GET /v1/openapi.yaml, without authentication.
func (s *Server) getOpenAPI(w http.ResponseWriter, r *http.Request) {
	if prob := checkRequestText(r); prob != nil {
		writeError(w, prob)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(OpenAPI)
}
