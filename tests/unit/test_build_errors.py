"""A failed build said in the user's words: step names, causes, the one-line message.

The outputs below are what uv, pip, apt, micromamba and BuildKit print (copied from real
runs); the local-target tests build real virtual environments with uv.
"""

from __future__ import annotations

import re

import pytest

from mlmagic import BuildError, Environment, Workspace
from mlmagic.build.diagnose import explain
from mlmagic.build.dockerfile import ResolvedBase, render
from mlmagic.build.freeze import parse_freeze
from mlmagic.build.steps import failure_message, name_instruction, split_label
from mlmagic.config import MLMagic
from mlmagic.events import BuildEventKind
from mlmagic.spec import parse

BUILDKIT_EXIT = (
    'process "/bin/sh -c . /run/secrets/mlmagic-build-settings     && uv pip install '
    '-r /opt/mlmagic/requirements.txt" did not complete successfully: exit code: 1'
)

CAUSES = {
    "uv, unknown package (plain)": (
        [
            "Using Python 3.11.2 environment at: /opt/mlmagic/env",
            "error: No solution found when resolving dependencies",
            "  cause: Because scikit-lern was not found in the package registry and you "
            "require scikit-lern==1.5, we can conclude that your requirements are "
            "unsatisfiable.",
            BUILDKIT_EXIT,
        ],
        "scikit-lern==1.5 was not found in the package index",
    ),
    "uv, unknown package (fancy, wrapped)": (
        [
            "  × No solution found when resolving dependencies:",  # noqa: RUF001 (uv prints it)
            "  ╰─▶ Because scikit-lern was not found in the package registry and you require",
            "      scikit-lern==1.5, we can conclude that your requirements are unsatisfiable.",
        ],
        "scikit-lern==1.5 was not found in the package index",
    ),
    "uv, no such version": (
        [
            "error: No solution found when resolving dependencies",
            "  cause: Because there is no version of six==9.9 and you require six==9.9, we "
            "can conclude that your requirements are unsatisfiable.",
        ],
        "six==9.9 matches no version in the package index",
    ),
    "uv, conflict": (
        [
            "error: No solution found when resolving dependencies",
            "  cause: Because you require six==1.16 and six==1.15, we can conclude that "
            "your requirements are unsatisfiable.",
        ],
        "the requirements cannot all be met: because you require six==1.16 and six==1.15",
    ),
    "uv, connection refused": (
        [
            "error: Request failed after 3 retries in 6.8s",
            "  cause: Failed to fetch: http://127.0.0.1:9/simple/foo/",
            "  cause: error sending request for url (http://127.0.0.1:9/simple/foo/)",
            "  cause: client error (Connect)",
            "  cause: tcp connect error",
            "  cause: Connection refused (os error 111)",
        ],
        "the network could not reach http://127.0.0.1:9/simple/foo/ (Connection refused)",
    ),
    "uv, untrusted certificate": (
        [
            "error: Failed to fetch: `https://pypi.org/simple/six/`",
            "  Caused by: invalid peer certificate: UnknownIssuer",
        ],
        "the package index's TLS certificate is not trusted: if a proxy intercepts HTTPS, "
        "set SSL_CERT_FILE to its CA bundle",
    ),
    "pip, unknown package": (
        [
            "ERROR: Could not find a version that satisfies the requirement scikit-lern==1.5 "
            "(from versions: none)",
            "ERROR: No matching distribution found for scikit-lern==1.5",
        ],
        "scikit-lern==1.5 was not found in the package index",
    ),
    "pip, conflict": (
        [
            "ERROR: Cannot install six==1.15 and six==1.16 because these package versions "
            "have conflicting dependencies.",
            "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/",
        ],
        "the requirements cannot all be met: Cannot install six==1.15 and six==1.16 because "
        "these package versions have conflicting dependencies",
    ),
    "apt, unknown package": (
        [
            "Reading package lists...",
            "Building dependency tree...",
            "E: Unable to locate package jqq",
            'process "/bin/sh -c apt-get update     && apt-get install -y jqq" did not '
            "complete successfully: exit code: 100",
        ],
        "the apt package jqq was not found: check its name",
    ),
    "apt, no network": (
        [
            "Err:1 http://deb.debian.org/debian bookworm InRelease",
            "  Temporary failure resolving 'deb.debian.org'",
            "E: Unable to locate package jq",
        ],
        # The package is "missing" only because the index could not be read: apt says so
        # last, but the cause a user can act on is the name that failed; either is shown.
        "the apt package jq was not found: check its name",
    ),
    "micromamba, unknown package": (
        ["critical libmamba nothing provides requested numpyy"],
        "the conda package numpyy was not found in the channels",
    ),
    "a Dockerfile step's command": (
        [
            "Traceback (most recent call last):",
            '  File "<string>", line 1, in <module>',
            "ModuleNotFoundError: No module named 'foo'",
            "process \"/bin/sh -c python3 -c 'import foo'\" did not complete successfully: "
            "exit code: 1",
        ],
        "the command `python3 -c 'import foo'` failed with exit code 1: ModuleNotFoundError: "
        "No module named 'foo'",
    ),
    "older BuildKit's exit line": (
        ["about to fail", "executor failed running [/bin/sh -c false]: exit code: 1"],
        "the command `false` failed with exit code 1: about to fail",
    ),
    "the renderer's own check": (
        [
            "mlmagic: the base image has Python 3.11, not 3.9: choose a base image with "
            "Python 3.9 (--base) or drop --python"
        ],
        "the base image has Python 3.11, not 3.9: choose a base image with Python 3.9 "
        "(--base) or drop --python",
    ),
    "a base image the engine lacks, no registry": (
        [
            "The build of mlmagic-env:3734d4cff0b0612f3b82 failed: ERROR: failed to solve with "
            "frontend dockerfile.v0: failed to create LLB definition: failed to do request: "
            'Head "https://registry-1.docker.io/v2/library/mlmagic-nope/manifests/1": dial '
            "tcp: lookup registry-1.docker.io: no such host"
        ],
        "the base image mlmagic-nope:1 is not in the engine and registry-1.docker.io cannot "
        "be reached: pull or build it first, or choose another base",
    ),
    "a base image the registry lacks": (
        [
            "ERROR: failed to solve: failed to resolve source metadata for "
            "docker.io/library/pyhton:3.11: docker.io/library/pyhton:3.11: not found"
        ],
        "the base image pyhton:3.11 was not found: check its name, or choose another base",
    ),
    "nothing known: the last error-looking line": (
        ["compiling foo.c", "gcc: fatal error: no input files", "compilation terminated."],
        "gcc: fatal error: no input files",
    ),
}


@pytest.mark.parametrize("case", sorted(CAUSES))
def test_explain_says_the_cause_in_the_users_words(case: str) -> None:
    lines, cause = CAUSES[case]
    assert explain(lines) == cause


def test_explain_without_output_says_the_step_failed() -> None:
    assert explain([]) == "the step failed"


def test_every_rendered_step_is_named_for_what_it_does() -> None:
    spec = parse("apt: [jq]\npip: [six]\ndockerfile_steps: ['RUN echo extra']\n", "yaml")
    dockerfile = render(spec, ResolvedBase("mlmagic-base:bookworm", "3.11"))
    # BuildKit shows each RUN/COPY/FROM instruction on one line.
    instructions = [
        " ".join(block.split())
        for block in re.split(r"\n(?=[A-Z]+ )", dockerfile.replace("\\\n", " "))
        if block.split(" ", 1)[0] in ("FROM", "RUN", "COPY")
    ]
    names = [name_instruction(i).label for i in instructions]
    assert names == [
        "get the base image",
        "install apt packages",
        "add uv",
        "check the Python version",
        "create the Python environment",
        "add the requirements",
        "install the Python packages",
        "your Dockerfile steps: RUN echo extra",
    ]
    assert name_instruction("RUN echo extra", yours=False).label == "RUN echo extra"


def test_failure_message_leads_with_the_cause_then_the_step() -> None:
    raw = "[5/5] RUN --mount=type=cache,id=mlmagic-uv,target=/root/.cache/uv uv pip install"
    index, count, instruction = split_label(raw)
    assert (index, count) == (5, 5)
    message = failure_message(
        CAUSES["uv, unknown package (plain)"][0], name_instruction(instruction), "5/5"
    )
    assert message == (
        "scikit-lern==1.5 was not found in the package index "
        "(installing the Python packages, step 5/5)."
    )
    apt = failure_message(["E: Unable to locate package jqq"], None, None)
    assert apt == "The apt package jqq was not found: check its name."


def test_parse_freeze_keeps_only_requirements() -> None:
    output = (
        "Using Python 3.11.2 environment at: /opt/mlmagic/env\n"
        "six==1.16.0\nWARNING: a warning\nfoo @ file:///tmp/foo\n-e git+https://x/y#egg=y\n"
        "Tomli===2.0.1\n\n"
    )
    assert parse_freeze(output) == [
        "-e git+https://x/y#egg=y",
        "Tomli===2.0.1",
        "foo @ file:///tmp/foo",
        "six==1.16.0",
    ]


@pytest.fixture
def local_ws(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/mlmagic-test.sock")
    monkeypatch.setenv("MLMAGIC_VENV_DIR", str(tmp_path / "venvs"))
    config = MLMagic()
    config.target = "local"
    return Workspace(tmp_path / ".mlmagic", config=config)


def test_a_local_build_with_a_typo_says_the_package_and_the_step(local_ws):
    env = Environment.from_text("typo", "scikit-lern==1.5\n")
    events = []
    with pytest.raises(BuildError) as info:
        gen = local_ws.environments.build(env)
        for event in gen:
            events.append(event)
    error = info.value
    first = str(error).splitlines()[0]
    assert first == (
        "scikit-lern==1.5 was not found in the package index "
        "(installing the Python packages, step 2/2)."
    )
    steps = [e.step for e in events if e.kind is BuildEventKind.STEP]
    assert steps == ["[1/2] create the Python environment", "[2/2] install the Python packages"]
    assert events[-1].kind is BuildEventKind.ERROR and events[-1].message == first
    assert [e for e in events if e.kind is BuildEventKind.ERROR] == [events[-1]]  # one
    log = open(error.log_path).read()
    assert "## [2/2] install the Python packages: " in log and " pip install " in log
    assert local_ws.environments.get("typo").status == "failed"


def test_local_packages_are_requirements_only(local_ws):
    env = Environment.from_text("loc", "six==1.16.0\n").build(local_ws, show_output=False)
    assert env.packages == ["six==1.16.0"]
