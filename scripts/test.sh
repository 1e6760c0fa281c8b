#!/usr/bin/env bash
# Runs every check Airlock has: lint, Go unit and integration tests, and the
# compatibility suite of the official npm `e2b` SDK against a real
# `airlock serve`, once with runc and once with runsc (gVisor).
# Expects scripts/setup.sh to have run; installs the test-only packages
# itself (scripts/test-deps.sh). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/local/bin:$PATH"
bash scripts/test-deps.sh

# The test server's data dir persists between runs so the template is built once.
DATA_DIR=${AIRLOCK_TEST_DATA_DIR:-/var/lib/airlock-test}
ADDR=127.0.0.1:3999
LOG_DIR=$(mktemp -d /tmp/airlock-test-logs.XXXXXX)
SERVER_PID=

node_ok=$(node -e 'const [a,b,c]=process.versions.node.split(".").map(Number);console.log(a>20||(a==20&&(b>18||(b==18&&c>=1)))?1:0)' 2>/dev/null || echo 0)
[ "$node_ok" = 1 ] || { echo "test.sh: Node.js >= 20.18.1 is required by the e2b SDK" >&2; exit 1; }

echo "==> lint"
unformatted=$(gofmt -l $(git ls-files '*.go'))
[ -z "$unformatted" ] || { echo "gofmt would change: $unformatted" >&2; exit 1; }
go vet ./...
staticcheck ./...

echo "==> go unit tests (with the race detector; fuzz targets run their seed corpora)"
AIRLOCK_TEST_ROOT=1 AIRLOCK_TEST_RUNSC=1 go test -race -count=1 -p 2 -timeout 30m ./internal/... ./cmd/...

# The loopback OCI registry template builds pull from (test/registry), seeded
# from the base template's tree once the first server has built it.
REGISTRY=127.0.0.1:5099
REGISTRY_PID=
start_registry() {
  local tree
  tree=$(ls -d "$DATA_DIR"/templates/*/rootfs-base-* 2>/dev/null | grep -v '\.tmp' | head -1)
  [ -n "$tree" ] || { echo "test.sh: no base tree under $DATA_DIR to seed the registry from" >&2; exit 1; }
  go build -o "$LOG_DIR/registry" ./test/registry
  "$LOG_DIR/registry" --addr "$REGISTRY" --seed-from "$tree" >"$LOG_DIR/registry.log" 2>&1 &
  REGISTRY_PID=$!
  for _ in $(seq 1 600); do
    grep -q "registry: ready" "$LOG_DIR/registry.log" && { cat "$LOG_DIR/registry.log"; return 0; }
    kill -0 "$REGISTRY_PID" 2>/dev/null || { cat "$LOG_DIR/registry.log" >&2; echo "test registry exited" >&2; exit 1; }
    sleep 0.5
  done
  echo "test registry did not become ready" >&2; exit 1
}
export AIRLOCK_TEST_REGISTRY=$REGISTRY

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true
  fi
  SERVER_PID=
}
trap 'stop_server; [ -z "$REGISTRY_PID" ] || kill "$REGISTRY_PID" 2>/dev/null; echo "logs in $LOG_DIR"' EXIT

start_server() { # runtime
  echo "==> airlock serve --runtime $1"
  airlock serve --addr "$ADDR" --data-dir "$DATA_DIR" --runtime "$1" --registry-insecure "$REGISTRY" >"$LOG_DIR/serve-$1.out" 2>"$LOG_DIR/serve-$1.log" &
  SERVER_PID=$!
  for _ in $(seq 1 1800); do
    if curl -fsS "http://$ADDR/health" >/dev/null 2>&1; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG_DIR/serve-$1.log" >&2; echo "airlock serve exited" >&2; exit 1; }
    sleep 0.5
  done
  echo "airlock serve did not become ready" >&2; exit 1
}

mkdir -p "$DATA_DIR"
start_server runc
start_registry
export E2B_API_KEY=$(airlock keys create --data-dir "$DATA_DIR" --name test)
# A key of a second team, for the cross-team tests.
export E2B_API_KEY_OTHER_TEAM=$(airlock keys create --data-dir "$DATA_DIR" --team other --name test-other)
export E2B_API_URL=http://$ADDR E2B_SANDBOX_URL=http://$ADDR

echo "==> e2b compatibility suite (runc)"
test/compat/run.sh

echo "==> code-interpreter compatibility suite (runc)"
test/compat-ci/run.sh

echo "==> Python suite (official e2b and e2b-code-interpreter from PyPI, runc)"
AIRLOCK_PY_VENV=${AIRLOCK_PY_VENV:-/var/lib/airlock-test-venv} test/python/run.sh

echo "==> CLI tests (the real binary against the same server)"
AIRLOCK_TEST_DATA_DIR=$DATA_DIR go test -count=1 -timeout 10m ./test/cli/

echo "==> hostile-code suite (attacks from inside sandboxes on runsc and on runc, judged on the host)"
AIRLOCK_TEST_DATA_DIR=$DATA_DIR go test -count=1 -timeout 20m ./test/hostile/
stop_server

echo "==> e2b compatibility suite (runsc)"
start_server runsc
test/compat/run.sh
stop_server

echo "==> integration tests (restart recovery, crash, leaks)"
AIRLOCK_BIN=/usr/local/bin/airlock AIRLOCK_TEST_DATA_DIR=$DATA_DIR \
  go test -count=1 -p 1 -timeout 30m ./test/integration/...

echo "==> Go SDK suite (URL mode, then host-routed TLS mode)"
AIRLOCK_BIN=/usr/local/bin/airlock AIRLOCK_TEST_DATA_DIR=$DATA_DIR AIRLOCK_SDK_ADDR=$ADDR \
  AIRLOCK_BRIDGE=airlock0 AIRLOCK_SUBNET=10.213.0.0/16 scripts/sdk-test.sh
