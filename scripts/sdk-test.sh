#!/usr/bin/env bash
# Runs the Go SDK suite (sdk/...) twice against an `airlock serve` this
# script starts itself:
#   1. URL mode:  plain HTTP, E2B_API_URL + E2B_SANDBOX_URL (header routing).
#   2. host mode: TLS with a throwaway CA, --domain airlock.test, E2B_DOMAIN
#      only, so the SDK builds E2B-cloud-style https://{port}-{id}.{domain}
#      URLs; the tests dial every *.airlock.test:443 to the server.
# Extra arguments are passed to `go test` (e.g. -run TestFiles -v).
# Needs root (sandboxes), openssl and curl. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/local/bin:$PATH"

DATA_DIR=${AIRLOCK_TEST_DATA_DIR:-/var/lib/airlock-sdk}
ADDR=${AIRLOCK_SDK_ADDR:-127.0.0.1:3101}
BRIDGE=${AIRLOCK_BRIDGE:-airsdk0}
SUBNET=${AIRLOCK_SUBNET:-10.220.0.0/16}
DOMAIN=airlock.test
WORK=$(mktemp -d /tmp/airlock-sdk-test.XXXXXX)
SERVER_PID=
KEY=
API=   # base URL of the running server's control API
API_CURL=()
GO_TEST_ARGS=()
CURL=(curl -fsS --max-time 10)

for tool in openssl curl go; do
  command -v "$tool" >/dev/null || { echo "sdk-test.sh: $tool is required (apt-get install -y ${tool/go/golang})" >&2; exit 1; }
done

BIN=${AIRLOCK_BIN:-}
if [ -z "$BIN" ]; then
  echo "==> building airlock"
  CGO_ENABLED=0 go build -o "$WORK/airlock" ./cmd/airlock
  BIN=$WORK/airlock
fi

# kill_sandboxes deletes every sandbox the key can see (all are ours: the
# data dir belongs to this script).
kill_sandboxes() {
  [ -n "$KEY" ] && [ -n "$API" ] || return 0
  local ids id
  ids=$("${CURL[@]}" "${API_CURL[@]}" -H "X-API-KEY: $KEY" "$API/v2/sandboxes?limit=100" 2>/dev/null |
    grep -o '"sandboxID":"[a-z0-9]*"' | cut -d'"' -f4) || true
  for id in $ids; do
    echo "    killing leftover sandbox $id"
    "${CURL[@]}" "${API_CURL[@]}" -X DELETE -H "X-API-KEY: $KEY" "$API/sandboxes/$id" >/dev/null || true
  done
}

stop_server() {
  kill_sandboxes
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
  fi
  SERVER_PID=
}
trap 'stop_server; echo "sdk-test.sh: logs in $WORK"' EXIT

start_server() { # name, extra flags...
  local name=$1; shift
  echo "==> airlock serve ($name) on $ADDR"
  "$BIN" serve --addr "$ADDR" --data-dir "$DATA_DIR" --bridge "$BRIDGE" --subnet "$SUBNET" "$@" \
    >"$WORK/serve-$name.out" 2>"$WORK/serve-$name.log" &
  SERVER_PID=$!
  # The first start builds the base template (minutes).
  for _ in $(seq 1 1800); do
    if "${CURL[@]}" "${API_CURL[@]}" -o /dev/null "$API/health" 2>/dev/null; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -50 "$WORK/serve-$name.log" >&2; echo "airlock serve exited" >&2; exit 1; }
    sleep 0.5
  done
  tail -50 "$WORK/serve-$name.log" >&2
  echo "airlock serve did not become ready" >&2
  exit 1
}

run_suite() { # name
  echo "==> Go SDK suite ($1 mode)"
  if ! go test -count=1 -p 1 -timeout 20m "${GO_TEST_ARGS[@]}" ./sdk/...; then
    echo "--- server log (last 40 lines)" >&2
    tail -40 "$WORK/serve-$1.log" >&2
    exit 1
  fi
}

GO_TEST_ARGS=("$@")
mkdir -p "$DATA_DIR"
unset E2B_API_URL E2B_SANDBOX_URL E2B_DOMAIN E2B_DEBUG AIRLOCK_TEST_CA AIRLOCK_TEST_DIAL

# 1. URL mode.
API=http://$ADDR
API_CURL=()
start_server url
KEY=$("$BIN" keys create --data-dir "$DATA_DIR" --name sdk-test)
E2B_API_KEY=$KEY E2B_API_URL=$API E2B_SANDBOX_URL=$API run_suite url
stop_server

# 2. host mode: throwaway CA + leaf for *.airlock.test, api.airlock.test, 127.0.0.1.
echo "==> generating test CA and certificate"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=airlock sdk test CA" \
  -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=*.$DOMAIN" \
  -keyout "$WORK/leaf.key" -out "$WORK/leaf.csr" 2>/dev/null
printf 'subjectAltName=DNS:*.%s,DNS:api.%s,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' "$DOMAIN" "$DOMAIN" >"$WORK/leaf.ext"
openssl x509 -req -in "$WORK/leaf.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
  -days 1 -extfile "$WORK/leaf.ext" -out "$WORK/leaf.pem" 2>/dev/null

API=https://api.$DOMAIN
API_CURL=(--cacert "$WORK/ca.pem" --connect-to "::$ADDR")
start_server host --tls-cert "$WORK/leaf.pem" --tls-key "$WORK/leaf.key" --domain "$DOMAIN"
E2B_API_KEY=$KEY E2B_DOMAIN=$DOMAIN AIRLOCK_TEST_CA=$WORK/ca.pem AIRLOCK_TEST_DIAL=$ADDR run_suite host
stop_server
echo "==> Go SDK suite passed in URL and host mode"
