"""A Jupyter that runs as an ordinary user in the ``docker`` group, as on most desktops.

The test makes such a user, then runs the main flows (``nonroot_flow.py``: build, a run
with outputs, a cancel, an image with its own non-root ``USER``, register, deploy, score,
delete) as that user in a separate process. Every file the user's folder gets must be the
user's own, and the user must be able to delete all of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlmagic
from tests.conftest import BASE_IMAGE, _unavailable

REPO = Path(mlmagic.__file__).resolve().parents[1]
FLOW = Path(__file__).with_name("nonroot_flow.py")
#: Where a Python the user can run is kept when the test's own is out of its reach.
SHARED_VENVS = Path("/var/tmp/mlmagic-test")


def _problem() -> str | None:
    if os.geteuid() != 0:
        return "making a non-root test user needs root"
    for tool in ("useradd", "userdel", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} is missing"
    socket = Path("/var/run/docker.sock")
    try:
        group = socket.stat().st_gid
        import grp

        if grp.getgrgid(group).gr_name != "docker":
            return f"{socket} belongs to group {grp.getgrgid(group).gr_name}, not docker"
    except (OSError, KeyError) as exc:
        return f"{socket} has no docker group: {exc}"
    return None


def as_user(user: pwd.struct_passwd, command: list[str], env: dict[str, str], **kwargs):  # type: ignore[no-untyped-def]
    """Run ``command`` as ``user`` with its groups (docker among them) and ``env``."""
    return subprocess.run(
        ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
         "--", *command],
        env=env, **kwargs,
    )  # fmt: skip


@pytest.fixture(scope="module")
def jupyter_user(docker_engine) -> Iterator[pwd.struct_passwd]:  # type: ignore[no-untyped-def]
    """A fresh user in the docker group; removed (with its home) afterwards."""
    problem = _problem()
    if problem:
        _unavailable(problem)
    name = f"mlmnr{secrets.token_hex(4)}"
    subprocess.run(
        ["useradd", "--create-home", "--groups", "docker", "--shell", "/bin/sh", name],
        check=True,
        capture_output=True,
    )
    user = pwd.getpwnam(name)
    try:
        yield user
    finally:
        # What the flows left running as the user (nothing, when delete works): only
        # processes of this user, which exists for this test alone.
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if proc.stat().st_uid == user.pw_uid:
                        os.kill(int(proc.name), signal.SIGKILL)
                except (OSError, ProcessLookupError):
                    pass
        subprocess.run(["userdel", "--remove", name], capture_output=True)


def _user_python(user: pwd.struct_passwd, env: dict[str, str]) -> str:
    """This test's own interpreter when the user can run it and import mlmagic with it,
    else a venv of the same Python version that the user can reach (made once)."""
    check = [sys.executable, "-c", "import mlmagic, docker"]
    if as_user(user, check, env, capture_output=True).returncode == 0:
        return sys.executable
    version = "{}.{}".format(*sys.version_info[:2])
    # Named by the declared dependencies too: a changed pyproject.toml gets a fresh venv.
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    venv = SHARED_VENVS / f"nonroot-py{version}-{digest}"
    python = venv / "bin" / "python"
    if as_user(user, [str(python), *check[1:]], env, capture_output=True).returncode == 0:
        return str(python)
    base = next(
        (p for p in (f"/usr/bin/python{version}", f"/usr/local/bin/python{version}")
         if os.access(p, os.X_OK)),
        None,
    )  # fmt: skip
    if base is None:
        _unavailable(f"no Python {version} outside /root for the non-root user to run")
    uv = [sys.executable, "-m", "uv"]
    for old in SHARED_VENVS.glob(f"nonroot-py{version}*"):
        shutil.rmtree(old, ignore_errors=True)
    subprocess.run([*uv, "venv", "-q", "--python", base, str(venv)], check=True)
    subprocess.run(
        [*uv, "pip", "install", "-q", "--python", str(python), "-e", str(REPO)],
        check=True,
        env={**os.environ, "SKIP_JUPYTER_BUILDER": "1"},
    )
    subprocess.run(["chmod", "-R", "a+rX", str(SHARED_VENVS)], check=True)
    return str(python)


def test_the_main_flows_as_a_non_root_user_in_the_docker_group(jupyter_user, docker_engine):
    home = Path(jupyter_user.pw_dir)
    env = {
        "HOME": str(home),
        "USER": jupyter_user.pw_name,
        "LOGNAME": jupyter_user.pw_name,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "MLMAGIC_CPU_BASE_IMAGE": BASE_IMAGE,
        "DOCKER_BUILDKIT": "1",
    }
    # The host's CA bundle and package index settings: builds carry them (a proxy here).
    for name, value in os.environ.items():
        if name.startswith(("PIP_", "UV_", "SSL_", "REQUESTS_CA", "CURL_CA")):
            env[name] = value
    python = _user_python(jupyter_user, env)
    folder = home / "notebooks"
    as_user(jupyter_user, ["mkdir", str(folder)], env, check=True)

    done = as_user(
        jupyter_user,
        [python, str(FLOW), str(folder), BASE_IMAGE],
        env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    summary = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    try:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
        assert summary["uid"] == jupyter_user.pw_uid != 0
        # Every file and folder the user's workspace got is the user's own.
        strangers = []
        count = 0
        for parent, dirs, files in os.walk(folder):
            for entry in [parent, *(os.path.join(parent, n) for n in dirs + files)]:
                count += 1
                owner = os.lstat(entry).st_uid
                if owner != jupyter_user.pw_uid:
                    strangers.append(f"{entry} (uid {owner})")
        assert count > 20 and not strangers, strangers
        outputs = list(folder.glob(".mlmagic/**/outputs/nested/note.txt"))
        assert len(outputs) == 2, outputs
        assert {p.read_text() for p in outputs} == {f"made by {jupyter_user.pw_uid}"}
        # ... and the user can delete all of it.
        gone = as_user(jupyter_user, ["rm", "-rf", str(folder)], env, capture_output=True)
        assert gone.returncode == 0 and not folder.exists(), gone.stderr
    finally:
        for image in summary.get("images", []):
            docker_engine.remove_image(image)
