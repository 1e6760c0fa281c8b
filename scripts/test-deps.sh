#!/usr/bin/env bash
# Installs what only the tests need (scripts/setup.sh installs what
# `airlock serve` needs). Idempotent. Run as root; scripts/test.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

STATICCHECK_VERSION=v0.8.2
export PATH="/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo /root/go)/bin:$PATH"

need_apt=()
# postgresql: the PostgreSQL store's tests start a throwaway server; gcc and
# libc6-dev: the race detector; python3-venv: the Python SDK suite; the
# Jupyter kernels: the interpreter's tests run them on the host (sandboxes get
# them from the code-interpreter-v1 template).
for pkg in postgresql make procps psmisc python3 python3-venv gcc libc6-dev \
  python3-ipykernel python3-numpy python3-pandas python3-matplotlib r-cran-irkernel; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
# A JDK: the Java kernel's tests compile and run it on the host.
command -v javac >/dev/null || need_apt+=(openjdk-17-jdk-headless)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> apt-get install ${need_apt[*]} (test-only)"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}"
fi

if ! command -v staticcheck >/dev/null || ! staticcheck -version 2>/dev/null | grep -q "${STATICCHECK_VERSION#v}"; then
  echo "==> installing staticcheck $STATICCHECK_VERSION"
  GOBIN=/usr/local/bin go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi
