#!/usr/bin/env bash
# Installs everything Airlock needs on a fresh Debian 12 machine and builds the
# binary into /usr/local/bin. Idempotent: re-running only redoes what is missing
# or out of date. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned versions of the tools we install with `go install`.
RUNSC_VERSION=v0.0.0-20260527191743-a81fd9dd382e
STATICCHECK_VERSION=v0.8.2
export PATH="/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo /root/go)/bin:$PATH"

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root" >&2
  exit 1
fi

need_apt=()
# The Jupyter kernels are needed on the host only by the interpreter's tests
# (sandboxes get them from the code-interpreter-v1 template).
for pkg in runc debootstrap nftables iptables iproute2 busybox-static postgresql ca-certificates curl openssl make git procps psmisc python3 python3-venv gcc libc6-dev \
  python3-ipykernel python3-numpy python3-pandas python3-matplotlib r-cran-irkernel; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> apt-get install ${need_apt[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}"
fi

command -v go >/dev/null || { echo "setup.sh: Go (>= 1.26) must be installed at /usr/local/go" >&2; exit 1; }

# gVisor's runsc, built from the Go module proxy (first build takes minutes).
if ! [ -x /usr/local/bin/runsc ] || ! grep -qs "$RUNSC_VERSION" /usr/local/lib/airlock-runsc.version; then
  echo "==> building runsc (gVisor) $RUNSC_VERSION"
  (cd /tmp && GOFLAGS=-mod=mod CGO_ENABLED=0 GOBIN=/usr/local/bin go install "gvisor.dev/gvisor/runsc@$RUNSC_VERSION")
  mkdir -p /usr/local/lib && echo "$RUNSC_VERSION" > /usr/local/lib/airlock-runsc.version
fi

if ! command -v staticcheck >/dev/null || ! staticcheck -version 2>/dev/null | grep -q "${STATICCHECK_VERSION#v}"; then
  echo "==> installing staticcheck $STATICCHECK_VERSION"
  GOBIN=/usr/local/bin go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi

echo "==> building airlock"
scripts/build.sh /usr/local/bin/airlock
echo "==> airlock installed at /usr/local/bin/airlock"
