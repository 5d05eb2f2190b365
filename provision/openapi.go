package provision

import _ "embed"

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI is the API's OpenAPI document, served at OpenAPIPath.
func OpenAPI() []byte { return openAPI }

// OpenAPIPath is where the daemon serves OpenAPI, without a token: it
// describes the API, it holds nothing of the registry.
const OpenAPIPath = "/api/v1/openapi.yaml"
