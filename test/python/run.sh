#!/usr/bin/env bash
# Runs the Python suite: the official, pinned `e2b` and `e2b-code-interpreter`
# SDKs (sync and async) against a running `airlock serve`. The caller sets
# E2B_API_URL, E2B_SANDBOX_URL, E2B_API_KEY and E2B_API_KEY_OTHER_TEAM.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

VENV=${AIRLOCK_PY_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  /usr/bin/python3 -m venv "$VENV"
fi
# Idempotent and quick once installed: exact versions from the lock file.
"$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.lock
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
