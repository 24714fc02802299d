package api

import _ "embed"

// OpenAPI is the contract in api/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
