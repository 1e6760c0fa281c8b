#!/usr/bin/env bash
# Runs the code-interpreter compatibility suite (the unmodified npm
# @e2b/code-interpreter SDK) against a running `airlock serve`.
# The caller sets E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY (as an SDK user would).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

missing=()
for v in E2B_API_URL E2B_SANDBOX_URL E2B_API_KEY; do
  [[ -n "${!v:-}" ]] || missing+=("$v")
done
if ((${#missing[@]})); then
  echo "run.sh: set ${missing[*]} (pointing at a running airlock serve)" >&2
  exit 2
fi

# Exact versions from package-lock.json; quiet, and safe to run repeatedly.
npm ci --no-audit --no-fund --loglevel=error >/dev/null

# COMPAT_FILES narrows the run, e.g. COMPAT_FILES=./python.test.mjs.
files=${COMPAT_FILES:-./*.test.mjs}
# shellcheck disable=SC2086 # the glob/list is meant to split
exec node --test --test-concurrency=2 --test-timeout=300000 $files
