"""Shared set-up: the suite is configured like a user configures the SDK.

A missing variable fails the run instead of skipping it.
"""

import os

import pytest

REQUIRED = ("E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY", "E2B_API_KEY_OTHER_TEAM", "AIRLOCK_TEST_REGISTRY")

missing = [n for n in REQUIRED if not os.environ.get(n)]
if missing:
    raise pytest.UsageError(
        "the Python suite needs " + ", ".join(missing) + " (see test/python/run.sh and scripts/test.sh)"
    )

SANDBOX_URL = os.environ["E2B_SANDBOX_URL"].rstrip("/")
API_URL = os.environ["E2B_API_URL"].rstrip("/")
OTHER_KEY = os.environ["E2B_API_KEY_OTHER_TEAM"]
METADATA = {"suite": "airlock-python"}
