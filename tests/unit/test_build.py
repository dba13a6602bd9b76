"""Dockerfile rendering (golden files), cache keys and build context.

Golden Dockerfiles live in ``tests/unit/golden/dockerfile/<case>.Dockerfile``; run with
``MLMAGIC_UPDATE_GOLDEN=1`` to rewrite them after an intended change, and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlmagic.build.context import (
    BuildContext,
    build_settings,
    cache_key,
    host_ca_bundle,
    image_tag,
    resolve_base,
)
from mlmagic.build.dockerfile import ResolvedBase, render
from mlmagic.config import MLMagic
from mlmagic.spec import EnvironmentSpec, parse

GOLDEN = Path(__file__).parent / "golden" / "dockerfile"

CASES = {
    "pip": ("scikit-learn==1.5.2\npandas>=2\n", {}),
    "pip-index": ("--index-url https://example.org/simple\nsix\n", {}),
    "conda": (
        "name: x\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - numpy=1.26\n"
        "  - pip:\n    - tomli\n",
        {},
    ),
    "conda-solver": (
        "channels: [conda-forge]\ndependencies:\n  - python=3.11\n  - cudatoolkit=11.8\n",
        {"solver": "conda"},
    ),
    "yaml": (
        "apt: [jq, curl]\npip: [six]\nenv: {FOO: 'a \"b\" $c'}\n"
        "dockerfile_steps: ['RUN echo done']\n",
        {},
    ),
    "gpu": ("pip: [torch]\ngpu: true\n", {}),
    # One golden file per rule of mlmagic.build.cuda: the base, and the reason as header.
    "gpu-default": ("pip: [six]\ngpu: true\n", {}),
    "gpu-cuda": ("pip: [tensorflow==2.15.0]\ncuda: '11.8'\n", {}),
    "gpu-tensorflow": ("pip: [tensorflow==2.15.1, numpy]\ngpu: true\n", {}),
    "gpu-tensorflow-wheels": ("pip: ['tensorflow[and-cuda]==2.16.1']\ngpu: true\n", {}),
    "gpu-torch-local": ("pip: [torch==2.3.1+cu121]\ngpu: true\n", {}),
    "gpu-torch-index": (
        "pip: [torch==2.5.1]\nextra_index_urls: [https://download.pytorch.org/whl/cu124]\n"
        "gpu: true\n",
        {},
    ),
    "gpu-torch-pypi": ("pip: [torch==2.7.1]\npython: '3.12'\ngpu: true\n", {}),
    "user-managed": ("base_image: python:3.12\nuser_managed: true\napt: [git]\n", {}),
    "python-check": ("base_image: debian:bookworm\npython: '3.11'\npip: [six]\n", {}),
    "dockerfile": ("FROM debian:bookworm\n# hello\nRUN echo hi\n", {}),
}


def _config() -> MLMagic:
    config = MLMagic()
    config.cpu_base_image = "python:{python}-slim"
    config.gpu_base_image = "nvidia/cuda:12.4.1-runtime-ubuntu22.04"
    config.default_python = "3.11"
    return config


def _spec(case: str) -> EnvironmentSpec:
    text, options = CASES[case]
    return parse(text).with_options(**options)


@pytest.mark.parametrize("case", sorted(CASES))
def test_render_matches_golden(case: str) -> None:
    spec = _spec(case)
    text = render(spec, resolve_base(spec, _config()))
    golden = GOLDEN / f"{case}.Dockerfile"
    if os.environ.get("MLMAGIC_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


def test_layer_order_keeps_the_cache_useful() -> None:
    text = render(_spec("yaml"), resolve_base(_spec("yaml"), _config()))
    order = [
        text.index(marker) for marker in ("FROM", "apt-get", "uv venv", "uv pip", "FOO", "done")
    ]
    assert order == sorted(order)


def test_install_step_gets_ca_and_settings_as_secrets_and_a_cache_mount() -> None:
    text = render(_spec("pip"), resolve_base(_spec("pip"), _config()))
    install = next(
        line for line in text.splitlines() if "uv pip install" in line or "--mount" in line
    )
    assert "type=cache" in install
    assert "id=mlmagic-ca" in install and "id=mlmagic-build-settings" in install


def test_resolve_base_uses_the_python_in_the_default_tag() -> None:
    base = resolve_base(parse("six\n").with_options(python="3.12"), _config())
    assert base == ResolvedBase("python:3.12-slim", "3.12")
    gpu = resolve_base(parse("pip: [six]\ngpu: true\n"), _config())
    assert gpu.image.startswith("nvidia/cuda") and gpu.install_python


def test_cache_key_ignores_format_comments_order_and_name() -> None:
    config = _config()
    a = parse("pandas>=2\n# comment\nscikit-learn==1.5.2\n")
    b = parse("scikit-learn==1.5.2\n\n   pandas >= 2   # trailing\n")
    c = parse("pip:\n  - scikit-learn==1.5.2\n  - pandas>=2\n")
    keys = {cache_key(s, resolve_base(s, config)) for s in (a, b, c)}
    assert len(keys) == 1


def test_cache_key_changes_with_content_base_and_python() -> None:
    config = _config()
    a = parse("six\n")
    key = cache_key(a, resolve_base(a, config))
    assert cache_key(parse("six==1.16\n"), resolve_base(a, config)) != key
    other = a.with_options(base_image="debian:bookworm")
    assert cache_key(other, resolve_base(other, config)) != key
    newer = a.with_options(python="3.12")
    assert cache_key(newer, resolve_base(newer, config)) != key
    assert image_tag(key).startswith("mlmagic-env:") and key[:20] in image_tag(key)


def test_context_holds_uv_requirements_and_secrets_outside(tmp_path: Path) -> None:
    context_dir = tmp_path / "ctx"
    context_dir.mkdir()
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    environ = {"SSL_CERT_FILE": str(ca), "PIP_INDEX_URL": "https://user:tok@example.org/simple"}
    spec = _spec("pip")
    context = BuildContext(context_dir, spec, resolve_base(spec, _config()), environ)
    assert sorted(p.name for p in context_dir.iterdir()) == ["Dockerfile", "requirements.txt", "uv"]
    assert (context_dir / "requirements.txt").read_text() == "pandas>=2\nscikit-learn==1.5.2\n"
    # Secrets never enter the context (nothing COPY could pick up) nor the Dockerfile.
    for path in context.secrets.values():
        assert context_dir not in path.parents
    assert "tok@" not in context.dockerfile
    assert (
        "export PIP_INDEX_URL=https://user:tok@example.org/simple\n"
        in context.secrets["mlmagic-build-settings"].read_text()
    )
    # ... but beside it, in the caller's folder: removing that folder removes them.
    assert all(p.parent.parent == tmp_path for p in context.secrets.values())


def test_host_ca_bundle_follows_pip_and_requests_variables(tmp_path: Path) -> None:
    ca = tmp_path / "corp.pem"
    ca.write_text("x")
    assert host_ca_bundle({"PIP_CERT": str(ca)}) == ca
    assert host_ca_bundle({"SSL_CERT_FILE": str(tmp_path / "missing")}) != tmp_path / "missing"
    assert "SSL_CERT_FILE=/run/secrets/mlmagic-ca" in build_settings(True, {})
    assert "SSL_CERT_FILE" not in build_settings(False, {})


def test_a_registered_version_shows_the_dockerfile_it_was_built_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: MLMagic, capsys
) -> None:
    from mlmagic.cli import main
    from mlmagic.environment import Environment
    from mlmagic.workspace import Workspace

    root = tmp_path / ".mlmagic"
    monkeypatch.setenv("MLMAGIC_WORKSPACE", str(root))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/mlmagic-test.sock")
    monkeypatch.setattr(Workspace, "_current", {})
    config.cpu_base_image = "mlmagic-base:bookworm"
    Environment.from_text("shown", "six\n").register(Workspace(root, config=config))
    config.cpu_base_image = "python:3.11-slim"  # the setting changes after the build

    shown = Workspace(root, config=config).environments.get("shown")
    assert shown.dockerfile.startswith("FROM mlmagic-base:bookworm\n")
    assert main(["env", "show", "shown"]) == 0
    out = capsys.readouterr().out
    assert "FROM mlmagic-base:bookworm" in out and "python:3.11-slim" not in out
    # Before registration there is nothing stored: today's settings apply.
    assert Environment.from_text("new", "six\n").dockerfile.startswith("FROM python:3.11-slim\n")


def test_adding_a_package_keeps_the_install_steps_of_the_pins() -> None:
    def steps(text: str) -> list[str]:
        spec = parse(text)
        rendered = render(spec, resolve_base(spec, _config()))
        return [step for step in rendered.split("\nRUN ") if "uv pip install" in step]

    before = steps("scikit-learn==1.5.2\npandas>=2\n")
    after = steps("scikit-learn==1.5.2\npandas>=2\njoblib\n")
    # The pin is installed first and alone: its step (a cached layer) is kept.
    assert len(before) == 2 and len(after) == 3
    assert before[0] == after[0] and "scikit-learn==1.5.2 >>" in after[0]
    assert "'pandas>=2'" in before[1] and "joblib" in after[1]
    # Many lines: at most six steps, whatever the order they were written in.
    many = [f"pkg{i}" for i in range(20)]
    assert len(steps("\n".join(many))) == 6
    assert steps("\n".join(many)) == steps("\n".join(reversed(many)))
