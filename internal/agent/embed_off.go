//go:build !airlock_agent

package agent

var embedded []byte
