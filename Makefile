# Pinned code generators; `make tools` installs them into $(GOBIN).
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_CONNECT_VERSION := v1.21.1
STATICCHECK_VERSION        := v0.8.2
MODULE := github.com/airlock-sandbox/airlock
GOBIN  ?= $(shell go env GOPATH)/bin

.PHONY: all build tools generate lint test bench

all: build

# Static airlock with the small in-sandbox agent (cmd/envd) embedded.
build:
	scripts/build.sh bin/airlock

tools:
	go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	go install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_VERSION)
	go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# Reproduces the checked-in generated code from proto/ and spec/ (the
# OpenAPI types come from oapi-codegen, pinned as a tool in go.mod).
generate:
	go generate ./sdk/controlapi ./sdk/envdapi
	PATH="$(GOBIN):$$PATH" protoc -I proto \
		--go_out=. --go_opt=module=$(MODULE) \
		--connect-go_out=. --connect-go_opt=module=$(MODULE) \
		proto/process/process.proto proto/filesystem/filesystem.proto

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	go vet ./...
	$(GOBIN)/staticcheck ./...

# End-to-end benchmark (needs root, runc/runsc, and builds the base template
# on first use). BENCH_FLAGS=--quick for a CI-sized run; add --json for JSON.
BENCH_FLAGS ?=
bench:
	scripts/build.sh bin/airlock
	go test -run '^$$' -bench . -benchtime 200x ./internal/bench/
	bin/airlock bench $(BENCH_FLAGS)
