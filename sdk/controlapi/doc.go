// Package controlapi holds the control API's request and response bodies,
// generated from spec/control-api.yaml; the server and the Go SDK both use
// them, so the wire shapes are written once.
package controlapi

//go:generate go tool oapi-codegen -config oapi.yaml ../../spec/control-api.yaml
