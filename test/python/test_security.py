"""Tokens, signed URLs and teams, through the official Python SDKs."""

import uuid

import httpx
import pytest
from e2b import NotFoundException, Sandbox
from e2b_code_interpreter import AsyncSandbox as AsyncCodeSandbox
from e2b_code_interpreter import Sandbox as CodeSandbox

from conftest import API_URL, METADATA, OTHER_KEY, SANDBOX_URL


def routing(sbx: Sandbox, port: int = 49983) -> dict[str, str]:
    return {"E2b-Sandbox-Id": sbx.sandbox_id, "E2b-Sandbox-Port": str(port)}


def error_code(resp: httpx.Response) -> int:
    body = resp.json()
    assert isinstance(body.get("message"), str) and body["message"]
    return int(body["code"])


@pytest.fixture(scope="module")
def sbx():
    s = Sandbox.create(timeout=300, metadata=METADATA)
    yield s
    s.kill()


def test_signed_urls_as_root_with_expiry(sbx: Sandbox) -> None:
    path = f"/root/py-{uuid.uuid4().hex}.txt"
    sbx.files.write(path, "root only", user="root")
    url = sbx.download_url(path, user="root", use_signature_expiration=120)
    resp = httpx.get(url, headers=routing(sbx))
    assert resp.status_code == 200, resp.text
    assert resp.text == "root only"

    expired = sbx.download_url(path, user="root", use_signature_expiration=-10)
    resp = httpx.get(expired, headers=routing(sbx))
    assert resp.status_code == 401 and error_code(resp) == 401

    for name, change in {
        "signature": lambda q: q.__setitem__("signature", q["signature"][:-1] + ("A" if q["signature"][-1] != "A" else "B")),
        "path": lambda q: q.__setitem__("path", "/etc/shadow"),
        "username": lambda q: q.__setitem__("username", "user"),
        "expiration": lambda q: q.__setitem__("signature_expiration", str(int(q["signature_expiration"]) + 999)),
    }.items():
        u = httpx.URL(url)
        q = dict(u.params)
        change(q)
        resp = httpx.get(u.copy_with(params=q), headers=routing(sbx))
        assert resp.status_code == 401, f"tampered {name}: {resp.status_code}"
        assert error_code(resp) == 401

    up = sbx.upload_url(f"/root/py-up-{uuid.uuid4().hex}.txt", user="root", use_signature_expiration=60)
    resp = httpx.post(up, files={"file": ("x.txt", b"uploaded")}, headers=routing(sbx))
    assert resp.status_code == 200, resp.text
    (entry,) = resp.json()
    assert sbx.files.read(entry["path"], user="root") == "uploaded"
    late = sbx.upload_url("/root/late.txt", user="root", use_signature_expiration=-1)
    resp = httpx.post(late, files={"file": ("x.txt", b"late")}, headers=routing(sbx))
    assert resp.status_code == 401
    assert not sbx.files.exists("/root/late.txt", user="root")


def test_other_team_cannot_touch_my_sandbox(sbx: Sandbox) -> None:
    with pytest.raises(NotFoundException):
        Sandbox.get_info(sbx.sandbox_id, api_key=OTHER_KEY)
    with pytest.raises(NotFoundException):
        Sandbox.connect(sbx.sandbox_id, api_key=OTHER_KEY)
    with pytest.raises(NotFoundException):
        Sandbox.set_timeout(sbx.sandbox_id, 60, api_key=OTHER_KEY)
    assert Sandbox.kill(sbx.sandbox_id, api_key=OTHER_KEY) is False
    listed = Sandbox.list(api_key=OTHER_KEY).next_items()
    assert sbx.sandbox_id not in [s.sandbox_id for s in listed]
    assert sbx.is_running()
    assert sbx.commands.run("echo alive").stdout == "alive\n"


def test_raw_api_create_is_secure_by_default() -> None:
    import os

    resp = httpx.post(
        f"{API_URL}/sandboxes",
        json={"templateID": "base", "timeout": 60},
        headers={"X-API-KEY": os.environ["E2B_API_KEY"]},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    try:
        assert body["envdAccessToken"], "a create without `secure` must still get a token"
        headers = {"E2b-Sandbox-Id": body["sandboxID"], "E2b-Sandbox-Port": "49983", "Content-Type": "application/json"}
        resp = httpx.post(f"{SANDBOX_URL}/process.Process/List", json={}, headers=headers)
        assert resp.status_code == 401
    finally:
        httpx.delete(f"{API_URL}/sandboxes/{body['sandboxID']}", headers={"X-API-KEY": os.environ["E2B_API_KEY"]})


def test_code_interpreter_needs_the_token() -> None:
    with CodeSandbox.create(timeout=300, metadata=METADATA) as ci:
        marker = f"/tmp/pwned-{uuid.uuid4().hex}"
        code = f"open({marker!r}, 'w').write('x')"
        for token in (None, "wrong"):
            headers = {**routing(ci, 49999), "Content-Type": "application/json"}
            if token:
                headers["X-Access-Token"] = token
            resp = httpx.post(f"{SANDBOX_URL}/execute", json={"code": code}, headers=headers)
            assert resp.status_code == 401, resp.text
        assert not ci.files.exists(marker)
        assert ci.run_code("6*7").text == "42"
        ctx = ci.create_code_context(language="python")
        assert ctx.id in [c.id for c in ci.list_code_contexts()]
        ci.remove_code_context(ctx.id)


async def _async_run() -> str:
    ci = await AsyncCodeSandbox.create(timeout=120, metadata=METADATA)
    try:
        execution = await ci.run_code("x = 20\nx * 2 + 2")
        return execution.text or ""
    finally:
        await ci.kill()


def test_async_code_interpreter() -> None:
    import asyncio

    assert asyncio.run(_async_run()) == "42"
