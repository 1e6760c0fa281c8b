#!/usr/bin/env bash
# Installs everything Airlock needs on a fresh Debian 12 machine and builds the
# binary into /usr/local/bin. Idempotent: re-running only redoes what is missing
# or out of date. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned version of gVisor's runsc, installed with `go install`.
RUNSC_VERSION=v0.0.0-20260527191743-a81fd9dd382e
export PATH="/usr/local/go/bin:$(go env GOPATH 2>/dev/null || echo /root/go)/bin:$PATH"

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root" >&2
  exit 1
fi

need_apt=()
# What `airlock serve` needs; test-only packages are installed by
# scripts/test-deps.sh, which scripts/test.sh runs first.
for pkg in runc debootstrap nftables iptables iproute2 busybox-static e2fsprogs lxcfs ca-certificates curl openssl git; do
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

echo "==> building airlock"
scripts/build.sh /usr/local/bin/airlock
echo "==> airlock installed at /usr/local/bin/airlock"
