"""Drive the ``mlmagic`` command as a subprocess and check it against the API.

Shared by ``tests/unit/test_cli.py`` (local target) and ``tests/docker/test_cli.py``
(docker target): the same scenario, with every ``--json`` answer compared with what the
Python API says about the same workspace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

from mlmagic import Workspace

ROOT = Path(__file__).resolve().parents[1]

TRAIN = textwrap.dedent(
    """
    import sys
    import mlmagic_run as run

    print("training with", sys.argv[1:])
    run.log_params({"C": 0.5})
    for step, loss in enumerate([0.9, 0.5, 0.25]):
        run.log("loss", loss, step=step)
    (run.output_dir() / "model.txt").write_text("weights")
    """
)
EXIT_3 = "import sys\nprint('giving up')\nsys.exit(3)\n"
SCORE = textwrap.dedent(
    """
    import json, os

    def init():
        global weights
        with open(os.path.join(os.environ["MLMAGIC_MODEL_DIR"], "model.txt")) as f:
            weights = f.read()

    def run(raw_data):
        return {"weights": weights, "echo": json.loads(raw_data)}
    """
)


class Cli:
    """``mlmagic`` run in ``cwd`` on the workspace ``root``, as a user's shell would."""

    def __init__(self, cwd: Path, root: Path, env: dict[str, str] | None = None) -> None:
        self.cwd, self.root = cwd, root
        self.env = {**os.environ, **(env or {}), "MLMAGIC_WORKSPACE": str(root)}
        self.env.pop("NO_COLOR", None)
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )

    def __call__(self, *args: str, code: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``mlmagic ARGS``; check its exit code is ``code``."""
        done = subprocess.run(
            [sys.executable, "-m", "mlmagic.cli", *args],
            cwd=self.cwd,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
        return done

    def json(self, *args: str) -> Any:
        """The parsed ``--json`` answer of ``mlmagic ARGS --json``."""
        return json.loads(self(*args, "--json").stdout)

    def complete(self, line: str, out: Path) -> list[str]:
        """What the shell gets as completions of ``line`` (argcomplete's protocol)."""
        self(
            _ARGCOMPLETE="1",
            _ARGCOMPLETE_IFS="\n",
            COMP_LINE=line,
            COMP_POINT=str(len(line)),
            _ARGCOMPLETE_STDOUT_FILENAME=str(out),
        )
        return [word.strip() for word in out.read_text().split("\n") if word.strip()]


def make_project(folder: Path) -> Path:
    """A source folder with a training script, a failing one and a scoring script."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.txt").write_text("six\n")
    (folder / "train.py").write_text(TRAIN)
    (folder / "exit3.py").write_text(EXIT_3)
    (folder / "crash.py").write_text("raise ValueError('bad input')\n")
    (folder / "score.py").write_text(SCORE)
    return folder


def check_environments(cli: Cli, ws: Workspace) -> None:
    """``env build/list/show/diff/delete`` against ``ws.environments``."""
    built = cli("env", "build", "requirements.txt", "--name", "cli-env")
    assert "cli-env:1 ready" in built.stdout
    (cli.cwd / "more.txt").write_text("six\npackaging\n")
    cli("env", "build", "more.txt", "--name", "cli-env", "--quiet")
    frame = ws.environments.list()
    listed = cli.json("env", "list")
    assert [(e["name"], e["version"]) for e in listed] == list(
        zip(frame["name"], frame["version"], strict=True)
    )
    assert [e["status"] for e in listed] == list(frame["status"]) == ["ready", "ready"]
    assert [e["image"] for e in listed] == list(frame["image"])
    assert cli("env", "list", "-q").stdout.split() == ["cli-env:2", "cli-env:1"]
    shown = cli.json("env", "show", "cli-env:1")
    env = ws.environments.get("cli-env", 1)
    assert (shown["ref"], shown["image"], shown["packages"]) == (env.ref, env.image, env.packages)
    assert any(p.startswith("six==") for p in shown["packages"])
    plain = cli("env", "list").stdout
    header = ["NAME", "VERSION", "STATUS", "IMAGE", "OR", "VENV", "SIZE", "CREATED"]
    assert plain.split("\n")[0].split() == header
    assert "cli-env  2" in plain and "\x1b" not in plain
    diff = cli("env", "diff", "cli-env", "1", "2").stdout
    assert "+packaging==" in diff and "\x1b" not in diff
    cli("env", "build", "more.txt", "--name", "gone-env", "--quiet")
    assert cli("env", "delete", "gone-env").stdout.strip() == "gone-env:1 deleted"
    missing = cli("env", "show", "gone-env", code=1)
    assert missing.stdout == ""
    assert missing.stderr.startswith("mlmagic: No environment gone-env in ")
    assert "`mlmagic env build FILE --name NAME`" in missing.stderr
    assert "%" not in missing.stderr


def check_runs(cli: Cli, ws: Workspace) -> str:
    """``run submit/list/show/logs/download/metrics`` against ``ws.runs``; the run's id."""
    done = cli("run", "submit", "train.py", "--env", "cli-env:1", "--wait", "--", "--C", "0.5")
    run_id = done.stdout.splitlines()[0]
    assert "==> Running" in done.stdout and "training with ['--C', '0.5']" in done.stdout
    assert "==> Completed" in done.stdout and "\x1b" not in done.stdout
    failed = cli("run", "submit", "exit3.py", "--env", "cli-env", "--wait", code=3)
    assert "==> Failed, exit code 3" in failed.stdout
    crashed = cli(
        "run", "submit", "crash.py", "--env", "cli-env", "--wait", "--experiment", "x", code=1
    )
    crashed_id = crashed.stdout.splitlines()[0]

    frame = ws.runs.list()
    listed = cli.json("run", "list")
    assert [r["id"] for r in listed] == list(frame["id"]) and len(listed) == 3
    assert [r["status"] for r in listed] == list(frame["status"])
    assert listed[-1]["id"] == run_id and listed[-1]["loss"] == 0.25
    assert cli("run", "list", "-q", "--status", "failed").stdout.split() == [
        r["id"] for r in listed if r["status"] == "Failed"
    ]
    assert cli("run", "list", "-q", "--experiment", "x").stdout.split() == [crashed_id]
    assert cli("run", "list", "-q", "--limit", "1").stdout.split() == [listed[0]["id"]]
    plain = cli("run", "list").stdout
    assert plain.split("\n")[0].split()[:4] == ["ID", "EXPERIMENT", "STATUS", "ENVIRONMENT"]
    assert run_id in plain and "Completed" in plain and "\x1b" not in plain

    run = ws.runs.get(run_id)
    shown = cli.json("run", "show", run_id)
    details = run.details
    for key in ("id", "status", "script", "args", "environment", "exit_code", "target"):
        assert shown[key] == details[key], key
    assert shown["params"] == run.params == {"C": 0.5}
    assert shown["metrics"] == {"loss": 0.25} and shown["files"] == run.files()
    assert cli("run", "show", run_id, "-q").stdout.strip() == run_id
    assert "training with" in cli("run", "logs", run_id).stdout
    metrics = cli.json("run", "metrics", run_id)
    assert [(m["name"], m["step"], m["value"]) for m in metrics] == list(
        zip(run.metrics["name"], run.metrics["step"], run.metrics["value"], strict=True)
    )
    dest = cli.cwd / "downloaded"
    cli("run", "download", run_id, "outputs/model.txt", "--dest", str(dest.parent))
    assert (dest.parent / "model.txt").read_text() == "weights"
    outside = cli("run", "download", run_id, "../../mlmagic.db", code=1)
    assert f"`mlmagic run show {run_id}`" in outside.stderr
    unknown = cli("run", "show", "nope_20240101-000000_abcdef", code=1)
    assert unknown.stderr.strip().endswith("`mlmagic run list` lists the runs.")
    assert "%runs" not in unknown.stderr
    return run_id


def check_models(cli: Cli, ws: Workspace, run_id: str) -> None:
    """``model register/list/show/download/delete`` against ``ws.models``."""
    out = cli(
        "model", "register", "cli-model", "outputs/model.txt", "--run", run_id, "--tag", "a=b"
    )
    assert out.stdout.strip() == "cli-model:1"
    cli("model", "register", "cli-model", str(cli.cwd / "score.py"))
    frame = ws.models.list()
    listed = cli.json("model", "list")
    assert [(m["name"], m["version"], m["run_id"]) for m in listed] == [
        (n, v, r if isinstance(r, str) else None)  # pandas shows a missing run as NaN
        for n, v, r in zip(frame["name"], frame["version"], frame["run_id"], strict=True)
    ]
    assert [m["run_id"] for m in listed] == [None, run_id]
    shown = cli.json("model", "show", "cli-model:1")
    model = ws.models.get("cli-model", 1)
    assert (shown["ref"], shown["run_id"], shown["tags"]) == (model.ref, run_id, {"a": "b"})
    assert shown["path"] == str(model.path)
    assert cli("model", "list", "-q").stdout.split() == ["cli-model:2", "cli-model:1"]
    target = cli.cwd / "fetched"
    cli("model", "download", "cli-model:1", "--dest", str(target))
    assert (target / "model.txt").read_text() == "weights"
    assert "cli-model:2 deleted" in cli("model", "delete", "cli-model:2").stdout
    unversioned = cli("model", "delete", "cli-model", code=1)
    assert "mlmagic model delete cli-model:VERSION" in unversioned.stderr
    assert ws.models.get("cli-model").version == 1


def check_services(cli: Cli, ws: Workspace) -> None:
    """``service deploy/list/show/logs/keys/reload/delete`` against ``ws.services``."""
    deployed = cli(
        "service", "deploy", "cli-svc", "--model", "cli-model:1", "--entry", "score.py",
        "--env", "cli-env:1", "--auth",
    )  # fmt: skip
    assert "cli-svc Healthy http://127.0.0.1:" in deployed.stdout
    service = ws.services.get("cli-svc")
    listed = cli.json("service", "list")
    assert [(s["name"], s["state"], s["scoring_uri"]) for s in listed] == [
        ("cli-svc", "Healthy", service.scoring_uri)
    ]
    shown = cli.json("service", "show", "cli-svc")
    assert shown["config"] == service.config and shown["state"] == service.state
    assert cli("service", "list", "-q").stdout.split() == ["cli-svc"]
    refused = cli("service", "keys", "cli-svc", code=1)
    assert "`mlmagic service keys cli-svc --regenerate primary`" in refused.stderr
    keys = cli.json("service", "keys", "cli-svc", "--regenerate", "primary")
    request = urllib.request.Request(
        service.scoring_uri,
        data=b"[1]",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {keys['primary']}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert json.loads(answer.read()) == {"weights": "weights", "echo": [1]}
    assert "init()" in cli("service", "logs", "cli-svc", "--lines", "50").stdout
    again = cli(
        "service", "deploy", "cli-svc", "--model", "cli-model:1", "--entry", "x.py",
        "--env", "cli-env:1", code=1,
    )  # fmt: skip
    assert again.stderr.strip() == (
        "mlmagic: A service named cli-svc exists: delete it (`mlmagic service delete cli-svc`), "
        "or rebuild it from its files (`mlmagic service reload cli-svc`)."
    )
    refused = cli("env", "delete", "cli-env:1", code=1)
    assert "in use by cli-svc" in refused.stderr
    assert cli("service", "delete", "cli-svc").stdout.strip() == "cli-svc deleted"
    gone = cli("service", "show", "cli-svc", code=1)
    assert gone.stderr.strip() == "mlmagic: No service cli-svc. `mlmagic service list` lists them."
    assert ws.services.list().empty


def check_completion(cli: Cli, ws: Workspace, run_id: str, scratch: Path) -> None:
    """Names from the workspace complete from a partial word."""
    versions = ws.environments.list()["version"]
    expected = sorted({"cli-env"} | {f"cli-env:{v}" for v in versions})
    assert len(expected) >= 3
    assert cli.complete("mlmagic env show cli-e", scratch / "c1") == expected
    assert cli.complete(f"mlmagic run show {run_id[:-3]}", scratch / "c2") == [run_id]
    assert cli.complete("mlmagic model show cli-m", scratch / "c3")[0] == "cli-model"
    assert cli.complete("mlmagic run li", scratch / "c4") == ["list"]
