// Package envdapi holds the JSON bodies of envd's plain HTTP routes
// (/files, /envs, /metrics, /init), generated from spec/envd-http.yaml;
// envd, the server and the Go SDK all use them.
package envdapi

//go:generate go tool oapi-codegen -config oapi.yaml ../../spec/envd-http.yaml
