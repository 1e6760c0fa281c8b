// Package wire holds the constants of the E2B wire protocol that the server,
// the in-sandbox agents and the Go SDK must agree on: ports, header names and
// the envd version.
package wire

// Ports inside every sandbox.
const (
	// EnvdPort is envd's port: process and filesystem services, /files.
	EnvdPort = 49983
	// InterpreterPort is the code interpreter's port (code-interpreter templates).
	InterpreterPort = 49999
)

// EnvdVersion is the E2B envd version Airlock's envd is compatible with; the
// SDKs gate features on it.
const EnvdVersion = "0.6.13"

// Header names, in the spelling the official SDKs send.
const (
	HeaderAPIKey        = "X-API-Key"
	HeaderAccessToken   = "X-Access-Token"
	HeaderTrafficToken  = "E2B-Traffic-Access-Token"
	HeaderSandboxID     = "E2b-Sandbox-Id"
	HeaderSandboxPort   = "E2b-Sandbox-Port"
	HeaderNextToken     = "X-Next-Token"
	HeaderAirlockTiming = "X-Airlock-Timing"
)

// UnauthorizedMessage is envd's answer to a missing or wrong access token;
// every Airlock-owned in-sandbox port uses it.
const UnauthorizedMessage = "unauthorized access, please provide a valid access token or method signing if supported"
