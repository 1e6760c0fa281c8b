"""The last mile of the core, through the official Python SDKs (sync and async)."""

import asyncio
import datetime
import os
import threading
import time
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
from e2b import InvalidArgumentException, Sandbox, SandboxException, TimeoutException
from e2b_code_interpreter import AsyncSandbox as AsyncCodeSandbox
from e2b_code_interpreter import Sandbox as CodeSandbox

from conftest import API_URL, METADATA, SANDBOX_URL

HOME = "/home/user"
PORT = urlsplit(API_URL).port
PNG = "iVBORw0KGgo"  # base64 of the PNG signature


@pytest.fixture(scope="module")
def sbx():
    s = Sandbox.create(timeout=300, metadata=METADATA)
    yield s
    s.kill()


@pytest.fixture(scope="module")
def code():
    s = CodeSandbox.create(timeout=300, metadata=METADATA)
    yield s
    s.kill()


def test_base_answers_python_pip_and_a_toolchain(sbx: Sandbox) -> None:
    for cmd in ["python --version", "pip --version", "python3 --version", "curl --version",
                "git --version", "sudo -n true", "gcc --version", "make --version", "jq --version"]:
        r = sbx.commands.run(cmd)
        assert r.exit_code == 0, f"{cmd}: {r.stderr}"


def test_python_http_server_at_get_host(sbx: Sandbox) -> None:
    page = uuid.uuid4().hex
    sbx.files.write(f"{HOME}/www/index.html", page)
    server = sbx.commands.run("cd ~/www && python -m http.server 8000", background=True)
    try:
        host = sbx.get_host(8000)
        assert host == f"8000-{sbx.sandbox_id}.localhost:{PORT}"
        deadline = time.monotonic() + 20
        while True:
            # The Host header a browser on this machine sends for that URL.
            resp = httpx.get(SANDBOX_URL + "/", headers={"Host": host})
            if resp.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert resp.status_code == 200 and resp.text == page
    finally:
        server.kill()


def test_sandbox_domain_is_the_servers(sbx: Sandbox) -> None:
    assert sbx.sandbox_domain == f"localhost:{PORT}"
    assert "e2b." not in sbx.get_host(3000)


def test_write_files_with_relative_paths_in_one_request(sbx: Sandbox) -> None:
    d = f"rel-{uuid.uuid4().hex[:8]}"
    absolute = f"{HOME}/abs-{uuid.uuid4().hex[:8]}.txt"
    infos = sbx.files.write_files([
        {"path": f"{d}/a.txt", "data": "A"},
        {"path": f"{d}/sub/b.txt", "data": b"B"},
        {"path": absolute, "data": "C"},
    ])
    assert sorted(i.path for i in infos) == sorted([f"{HOME}/{d}/a.txt", f"{HOME}/{d}/sub/b.txt", absolute])
    assert sbx.files.read(f"{HOME}/{d}/sub/b.txt") == "B"
    assert sbx.files.read(f"{d}/a.txt") == "A"
    assert sbx.files.write_files([]) == []
    p = f"dup-{uuid.uuid4().hex[:8]}.txt"
    with pytest.raises(InvalidArgumentException, match="more than once"):
        sbx.files.write_files([{"path": p, "data": "1"}, {"path": f"{HOME}/{p}", "data": "2"}])


def test_metrics_history_and_ranges() -> None:
    s = Sandbox.create(timeout=120, metadata=METADATA)
    try:
        s.commands.run("sleep 11")
        all_points = s.get_metrics()
        assert len(all_points) >= 2
        stamps = [m.timestamp for m in all_points]
        assert stamps == sorted(stamps) and all(int(t.timestamp()) % 5 == 0 for t in stamps)
        first = stamps[0]
        one = s.get_metrics(start=first + datetime.timedelta(seconds=1), end=first + datetime.timedelta(seconds=3))
        assert [m.timestamp for m in one] == [first]
        assert s.get_metrics(start=first - datetime.timedelta(hours=1), end=first - datetime.timedelta(minutes=1)) == []
    finally:
        s.kill()


def test_file_metadata(sbx: Sandbox) -> None:
    p = f"{HOME}/meta-{uuid.uuid4().hex[:8]}.txt"
    sbx.files.write(p, "x", metadata={"Owner": "a"})
    assert sbx.files.get_info(p).metadata == {"owner": "a"}
    sbx.files.write(p, "y")
    assert not sbx.files.get_info(p).metadata
    r = sbx.commands.run(f"python -c \"import os; os.setxattr('{p}', 'user.e2b.color', b'blue')\"")
    assert r.exit_code == 0
    assert sbx.files.get_info(p).metadata == {"color": "blue"}
    (listed,) = [e for e in sbx.files.list(HOME) if e.path == p]
    assert listed.metadata == {"color": "blue"}


def test_unsupported_create_fields_and_routes() -> None:
    with pytest.raises(SandboxException, match="mcp"):
        Sandbox.create(mcp={"exa": {"apiKey": "x"}}, timeout=60, metadata=METADATA)
    for method, path in [("GET", "/snapshots"), ("GET", "/volumes"), ("PATCH", "/v2/templates/base")]:
        resp = httpx.request(method, API_URL + path, headers={"X-API-KEY": os.environ["E2B_API_KEY"]},
                             json={"public": True} if method == "PATCH" else None)
        assert resp.status_code == 501, (path, resp.status_code, resp.text)
        body = resp.json()
        assert body["code"] == 501 and body["message"]


@pytest.mark.parametrize("tail", ["image.show()\nprint('done')", "image", "image.save('test.png')"])
def test_pil_images_come_back_as_png(code: CodeSandbox, tail: str) -> None:
    ex = code.run_code(
        "import numpy\nfrom PIL import Image\n"
        "image = Image.fromarray((numpy.random.rand(16, 16, 3) * 255).astype('uint8')).convert('RGBA')\n" + tail
    )
    assert ex.error is None, ex.error
    assert len(ex.results) == 1 and ex.results[0].png.startswith(PNG)


def test_pie_angles_are_exact(code: CodeSandbox) -> None:
    ex = code.run_code(
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
        "ax.pie([90, 10], labels=['No', 'No, in blue'], startangle=90)\nplt.show()"
    )
    chart = ex.results[0].chart
    assert [(e.label, e.angle, e.radius) for e in chart.elements] == [("No", 324, 1), ("No, in blue", 36, 1)]
    assert ex.results[0].png.startswith(PNG)


def test_java_values_env_and_contexts(code: CodeSandbox) -> None:
    ex = code.run_code('int base = 40;\nSystem.out.println("from java");\nbase + 2', language="java")
    assert ex.error is None, ex.error
    assert ex.text == "42" and ex.logs.stdout == ["from java\n"]
    env = code.run_code('System.getProperty("PY_J") + System.getenv("PY_J")', language="java", envs={"PY_J": "v"})
    assert env.text == "vv"
    assert code.run_code('System.getProperty("PY_J")', language="java").text == "null"
    ctx = code.create_code_context(language="java", cwd="/tmp")
    assert code.run_code('System.getProperty("user.dir")', context=ctx).text == "/tmp"
    err = code.run_code('Integer.parseInt("x")', language="java")
    assert err.error is not None and err.error.name == "NumberFormatException"


def test_r_output_and_stdin(code: CodeSandbox) -> None:
    ex = code.run_code('print("hi R")\ncat("cat out\\n")\n1+1', language="r")
    assert ex.logs.stdout == ['[1] "hi R"\n', "cat out\n"]
    assert ex.results[0].text == "[1] 2"
    for language, src in [("r", 'x <- readline("name? ")'), ("python", 'input("name? ")')]:
        t0 = time.monotonic()
        ex = code.run_code(src, language=language, timeout=30)
        assert time.monotonic() - t0 < 10
        assert ex.error is not None and "StdinNotImplementedError" in f"{ex.error.name} {ex.error.value}"


def test_run_code_when_killed_mid_execution() -> None:
    s = CodeSandbox.create(timeout=120, metadata=METADATA)
    timer = threading.Timer(2.0, s.kill)
    timer.start()
    try:
        with pytest.raises(TimeoutException, match="sandbox was killed while the request was in progress"):
            s.run_code("import time; time.sleep(60)")
    finally:
        timer.cancel()
        s.kill()


def test_async_run_code_when_killed_mid_execution() -> None:
    async def scenario() -> None:
        s = await AsyncCodeSandbox.create(timeout=120, metadata=METADATA)
        try:
            execution = asyncio.create_task(s.run_code("import time; time.sleep(60)"))
            await asyncio.sleep(2)
            await s.kill()
            with pytest.raises(TimeoutException, match="sandbox was killed while the request was in progress"):
                await execution
        finally:
            await s.kill()

    asyncio.run(scenario())
