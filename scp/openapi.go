package scp

import _ "embed"

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI is the HTTP SCP protocol's OpenAPI document (scp/openapi.yaml),
// served at OpenAPIPath by scpsim and by b2bua serve --scp sim.
func OpenAPI() []byte { return openAPI }

// OpenAPIPath is where OpenAPI is served.
const OpenAPIPath = "/scp/v1/openapi.yaml"
