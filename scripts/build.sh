#!/usr/bin/env bash
# Builds airlock into $1 (default bin/airlock): static (its agent runs inside
# sandboxes whose libc may differ), with the small in-sandbox agent
# (cmd/envd) embedded so sandboxes start it instead of the whole binary.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bin/airlock}
export CGO_ENABLED=0
go build -trimpath -o internal/agent/envd.bin ./cmd/envd
go build -trimpath -tags airlock_agent -o "$out" ./cmd/airlock
