"""Template builds through the official Python SDK's Template API."""

import os
import uuid
from pathlib import Path

import httpx
import pytest
from e2b import Sandbox, Template, wait_for_file
from e2b.exceptions import BuildException

from conftest import API_URL, METADATA, OTHER_KEY


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def cleanup():
    names: list[str] = []
    yield names
    key = os.environ["E2B_API_KEY"]
    for n in names:
        httpx.delete(f"{API_URL}/templates/{n}", headers={"X-API-KEY": key}, timeout=30)


def test_build_copy_env_user_workdir_start(tmp_path: Path, cleanup: list[str]) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("print('hello from main')\n")
    (tmp_path / "app" / "data.json").write_text('{"k": 1}\n')
    name = _name("pytpl")
    cleanup.append(name)
    template = (
        Template(file_context_path=str(tmp_path))
        .from_template("base")
        .copy("app", "/srv/app")
        .set_envs({"APP_MODE": "test"})
        .run_cmd("python3 /srv/app/main.py > /tmp/out.txt")
        .run_cmd("useradd -m worker", user="root")
        .set_user("worker")
        .set_workdir("/home/worker/w")
        .run_cmd("whoami > me.txt")
        .set_start_cmd("touch /tmp/py-ready && sleep infinity", wait_for_file("/tmp/py-ready"))
    )
    logs: list[str] = []
    info = Template.build(template, name, cpu_count=1, memory_mb=512, on_build_logs=lambda e: logs.append(e.message))
    assert info.template_id and info.build_id
    assert Template.exists(name)
    sbx = Sandbox.create(name, metadata=METADATA, timeout=120)
    try:
        r = sbx.commands.run("cat /tmp/out.txt me.txt; echo $APP_MODE; pwd; whoami; ls /tmp/py-ready")
        assert r.stdout.split() == ["hello", "from", "main", "worker", "test", "/home/worker/w", "worker", "/tmp/py-ready"]
        assert sbx.files.read("/srv/app/data.json") == '{"k": 1}\n'
    finally:
        sbx.kill()


def test_failed_build_and_tags(cleanup: list[str]) -> None:
    bad = _name("pybad")
    with pytest.raises(BuildException, match=r"failed to run command 'false': exit status 1"):
        Template.build(Template().from_template("base").run_cmd("false"), bad, cpu_count=1, memory_mb=512)
    assert not Template.exists(bad)

    name = _name("pytags")
    cleanup.append(name)
    info = Template.build(Template().from_template("base").run_cmd("echo one > v"), f"{name}:one", cpu_count=1, memory_mb=512)
    tagged = Template.assign_tags(f"{name}:one", ["blue"])
    assert tagged.build_id == info.build_id and "blue" in tagged.tags
    tags = {t.tag: t.build_id for t in Template.get_tags(info.template_id)}
    assert tags["blue"] == info.build_id and tags["one"] == info.build_id
    sbx = Sandbox.create(f"{name}:blue", metadata=METADATA)
    try:
        assert sbx.commands.run("cat v").stdout.strip() == "one"
    finally:
        sbx.kill()
    Template.remove_tags(name, ["blue"])
    assert "blue" not in {t.tag for t in Template.get_tags(info.template_id)}
    # Another team learns the name is taken (403, as on E2B) and cannot build under it.
    assert Template.exists(name, api_key=OTHER_KEY)
    with pytest.raises(Exception, match="taken by another team"):
        Template.build(Template().from_template("base"), name, api_key=OTHER_KEY)


def test_build_from_registry_image(cleanup: list[str]) -> None:
    registry = os.environ["AIRLOCK_TEST_REGISTRY"]
    with pytest.raises(BuildException, match="refused access"):
        Template.build(Template().from_image(f"{registry}/private/test:1"), _name("pyimg"), cpu_count=1, memory_mb=512)
    name = _name("pyimg")
    cleanup.append(name)
    template = (
        Template()
        .from_image(f"{registry}/private/test:1", username="airlock", password="registry-test")
        .run_cmd("echo $IMAGE_VAR > v.txt")
    )
    Template.build(template, name, cpu_count=1, memory_mb=512)
    sbx = Sandbox.create(name, metadata=METADATA)
    try:
        assert sbx.commands.run("cat v.txt /etc/airlock-image; whoami").stdout.split("\n")[:3] == [
            "from-image",
            "from the test registry",
            "user",
        ]
    finally:
        sbx.kill()
