"""Environments built on the real Docker engine, from each format, from Python and magics."""

from __future__ import annotations

import re
import time

import pytest

from mlmagic import BuildError, Environment
from mlmagic.events import BuildEventKind
from tests.conftest import BASE_IMAGE

PIP_CELL = "six==1.16.0\ntomli>=2  # for toml\n"


def _events(ws, env, **kwargs):
    """All build events and the built environment."""
    events = []
    gen = ws.environments.build(env, **kwargs)
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value


def _python(ws, image: str, code: str) -> str:
    return ws.engine.run_once(image, ["python", "-c", code]).strip()


def test_pip_cell_builds_an_image_that_imports_its_packages_then_hits_the_cache(workspace):
    env = Environment.from_text("pip-env", PIP_CELL)
    events, built = _events(workspace, env)
    assert built.status == "ready" and built.version == 1
    assert _python(workspace, built.image, "import six, tomli; print(six.__version__)") == "1.16.0"
    assert "six==1.16.0" in built.packages
    # A freeze, nothing else: uv's "Using Python 3.11 environment at ..." is no package.
    assert [p for p in built.packages if not re.match(r"^[A-Za-z0-9_.-]+==\S+$", p)] == []
    assert events[-1].kind is BuildEventKind.DONE

    started = time.monotonic()
    again, hit = _events(workspace, Environment.from_text("pip-env", "tomli>=2\n\nsix==1.16.0\n"))
    elapsed = time.monotonic() - started
    assert hit.cache_hit is True and hit.image == built.image and hit.version == 1
    assert not [e for e in again if e.kind is BuildEventKind.STEP]
    print(f"cache hit took {elapsed:.3f}s")

    # One changed line makes version 2, built on top of the cached layers.
    changed_cell = Environment.from_text("pip-env", "six==1.15.0\ntomli>=2\n")
    workspace.engine.remove_image(changed_cell.register(workspace).image)  # a real build
    changed, v2 = _events(workspace, changed_cell)
    assert v2.version == 2 and v2.image != built.image and v2.status == "ready"
    assert any(e.kind is BuildEventKind.STEP_DONE and e.cached for e in changed)
    frame = workspace.environments.list()
    assert list(frame["version"]) == [2, 1]
    assert set(frame["status"]) == {"ready"}
    assert workspace.environments.get("pip-env", 1).image == built.image
    diff = workspace.environments.diff("pip-env", 1, 2).splitlines()
    # Exactly the one package that changed, both ways (tomli resolved the same).
    changes = [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changes == ["-six==1.16.0", "+six==1.15.0"]


def test_same_content_under_two_names_shares_one_image(workspace):
    _, a = _events(workspace, Environment.from_text("twin-a", PIP_CELL))
    _, b = _events(workspace, Environment.from_text("twin-b", "pip: [six==1.16.0, tomli>=2]\n"))
    assert a.image == b.image and b.cache_hit


def test_conda_yaml_builds_with_pip_equivalents(workspace):
    text = (
        "name: conda-env\nchannels: [conda-forge]\ndependencies:\n"
        "  - python=3.11\n  - six=1.16.0\n  - pip:\n    - tomli\n"
    )
    _, env = _events(workspace, Environment.from_text("conda-env", text))
    out = _python(workspace, env.image, "import sys, six, tomli; print(sys.version_info[:2])")
    assert out == "(3, 11)"


def test_mlmagic_yaml_with_apt_env_and_extra_steps(workspace):
    text = (
        "apt: [jq]\npip: [six]\nenv:\n  GREETING: hello world\n"
        "dockerfile_steps:\n  - RUN echo extra > /opt/extra.txt\n"
    )
    _, env = _events(workspace, Environment.from_text("yaml-env", text))
    out = workspace.engine.run_once(
        env.image, ["sh", "-c", 'jq --version && echo "$GREETING" && cat /opt/extra.txt']
    )
    assert "jq-" in out and "hello world" in out and "extra" in out
    assert _python(workspace, env.image, "import six; print('ok')") == "ok"


def test_dockerfile_is_built_as_written_and_can_use_the_build_secrets(workspace):
    text = (
        f"FROM {BASE_IMAGE}\n"
        "# the proxy's CA and index settings are offered to every build as secrets\n"
        "RUN --mount=type=secret,id=mlmagic-ca,target=/run/secrets/mlmagic-ca "
        "--mount=type=secret,id=mlmagic-build-settings,target=/run/secrets/mlmagic-build-settings "
        ". /run/secrets/mlmagic-build-settings "
        "&& python3 -m pip install --no-cache-dir --break-system-packages six==1.16.0\n"
    )
    _, env = _events(workspace, Environment.from_text("docker-env", text))
    assert env.spec.format == "dockerfile" and env.spec.user_managed
    out = workspace.engine.run_once(
        env.image, ["python3", "-c", "import six; print(six.__version__)"]
    )
    assert out.strip() == "1.16.0"
    # The CA reached the build, never the image.
    listing = workspace.engine.run_once(env.image, ["sh", "-c", "ls /run/secrets || true"])
    assert "mlmagic-ca" not in listing


def test_user_managed_installs_nothing(workspace):
    _, env = _events(workspace, Environment.from_text("um-env", "apt: [jq]\n", user_managed=True))
    out = workspace.engine.run_once(
        env.image, ["sh", "-c", "test -e /opt/mlmagic/env || echo none"]
    )
    assert out.strip() == "none"


def test_failing_build_says_the_cause_then_the_step_in_the_users_words(workspace):
    from mlmagic.widgets import BuildView

    env = Environment.from_text("broken-env", "scikit-lern==1.5\n")
    events = []
    with pytest.raises(BuildError) as info:
        for event in workspace.environments.build(env):
            events.append(event)
    error = info.value
    first = str(error).splitlines()[0]
    match = re.fullmatch(
        r"scikit-lern==1\.5 was not found in the package index "
        r"\(installing the Python packages, step (\d+)/(\d+)\)\.",
        first,
    )
    assert match and match.group(1) == match.group(2), first
    assert error.step == f"[{match.group(1)}/{match.group(2)}] install the Python packages"
    # The steps are named for what they do; the raw instructions stay in the full log.
    steps = [e.step for e in events if e.kind is BuildEventKind.STEP]
    assert "create the Python environment" in " ".join(steps)
    assert not [s for s in steps if "--mount" in s or " RUN " in s]
    assert events[-1].kind is BuildEventKind.ERROR and events[-1].message == first
    assert [e for e in events if e.kind is BuildEventKind.ERROR] == [events[-1]]  # one
    log = open(error.log_path).read()
    assert f"## {error.step}: RUN --mount=type=cache" in log and "uv pip install" in log
    assert f"# build failed: {first}" in log
    # The widget shows the same names and the cause.
    view = BuildView("broken-env")
    for event in events:
        view.handle(event)
    view.finish(ok=False, summary=first)
    page = view.html_summary()
    assert "install the Python packages" in page and "--mount" not in page
    assert f"failed step: {error.step}" in view.text_summary()
    stored = workspace.environments.get("broken-env")
    assert stored.status == "failed" and stored.error.splitlines()[0] == first
    assert workspace.engine.image_info(stored.image) is None


def test_a_failing_dockerfile_step_says_its_command_and_exit_code(workspace):
    text = "pip: [six]\ndockerfile_steps:\n  - RUN echo checking >&2 && exit 3\n"
    with pytest.raises(BuildError) as info:
        _events(workspace, Environment.from_text("step-env", text))
    first = str(info.value).splitlines()[0]
    assert re.fullmatch(
        r"The command `echo checking >&2 && exit 3` failed with exit code 3: checking "
        r"\(in your Dockerfile step `RUN echo checking >&2 && exit 3`, step (\d+)/\1\)\.",
        first,
    ), first


def test_a_missing_base_image_is_named_and_its_error_is_in_the_log(workspace):
    env = Environment.from_text("nobase-env", "six\n", base_image="mlmagic-nope-mlmagic:1")
    with pytest.raises(BuildError) as info:
        _events(workspace, env)
    first = str(info.value).splitlines()[0]
    # No registry answers here ("cannot be reached"); elsewhere one says "not found".
    assert first.startswith("The base image mlmagic-nope-mlmagic:1 "), first
    assert "choose another base" in first
    # The engine's own words are in the full log, not only the summary.
    assert "failed to solve" in open(info.value.log_path).read().split("# build failed")[0]


def test_python_version_mismatch_with_the_base_is_a_clear_build_error(workspace):
    env = Environment.from_text("py-env", "six\n", python="3.9")
    with pytest.raises(BuildError, match="not 3.9"):
        _events(workspace, env)


def test_rebuild_ignores_the_cache(workspace):
    _, first = _events(workspace, Environment.from_text("re-env", "six\n"))
    events, again = _events(workspace, Environment.from_text("re-env", "six\n"), rebuild=True)
    assert again.cache_hit is False and again.version == first.version
    installs = ("create the Python environment", "install the Python packages")
    runs = [e for e in events if e.kind is BuildEventKind.STEP_DONE and e.step.endswith(installs)]
    assert len(runs) == 2
    assert runs and not any(e.cached for e in runs)


def test_from_files_and_the_cli(workspace, tmp_path, capsys):
    from mlmagic.cli import main

    req = tmp_path / "requirements.txt"
    req.write_text(PIP_CELL)
    assert main(["env", "build", str(req), "--name", "cli-env"]) == 0
    out = capsys.readouterr().out
    assert "cli-env:1 ready mlmagic-env:" in out
    assert main(["env", "list"]) == 0
    assert "cli-env" in capsys.readouterr().out
    assert main(["env", "show", "cli-env"]) == 0
    shown = capsys.readouterr().out
    assert "Dockerfile (docker target):" in shown and "six==1.16.0" in shown
    assert main(["env", "show", "nope"]) == 1
    assert "No environment nope" in capsys.readouterr().err
    env = Environment.from_requirements("file-env", req).build(workspace, show_output=False)
    assert env.cache_hit and env.status == "ready"
