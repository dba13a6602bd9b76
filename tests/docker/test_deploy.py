"""Models and deployments on the real engine, called with real HTTP requests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest

from mlmagic import DeployError, Environment, MlmagicError
from mlmagic.events import Status
from mlmagic.exceptions import ConflictError, NotFoundError

TRAIN = textwrap.dedent(
    """
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    import mlmagic_run as run

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    model = LogisticRegression(max_iter=2000).fit(X_train, y_train)
    run.log("accuracy", model.score(X_test, y_test))
    joblib.dump(model, run.output_dir() / "model.pkl")
    """
)

SCORE = textwrap.dedent(
    """
    import json, os
    import joblib

    def init():
        global model
        model = joblib.load(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl"))

    def run(raw_data):
        data = json.loads(raw_data)
        return model.predict(data).tolist()
    """
)

TRIVIAL_SCORE = textwrap.dedent(
    """
    import json, os

    def init():
        global weights
        with open(os.path.join(os.environ["MLMAGIC_MODEL_DIR"], "weights.json")) as f:
            weights = json.load(f)

    def run(raw_data):
        data = json.loads(raw_data)
        if data == "boom":
            raise ValueError("asked to fail")
        return {"dot": sum(w * x for w, x in zip(weights, data))}
    """
)


@pytest.fixture
def workspace(target_workspace):
    """Every test here runs on both targets: containers and local processes."""
    return target_workspace


@pytest.fixture
def small(workspace, tmp_path):
    """An environment, a registered trivial model and a folder with its score.py."""
    Environment.from_text("serve-env", "six\n").build(workspace, show_output=False)
    weights = tmp_path / "weights.json"
    weights.write_text("[1, 2, 3]")
    model = workspace.models.register("dot", weights, tags={"kind": "toy"})
    app = tmp_path / "app"
    app.mkdir()
    (app / "score.py").write_text(TRIVIAL_SCORE)
    return model, app


def test_digits_train_register_deploy_predict_reload(workspace, tmp_path):
    Environment.from_text("digits-env", "scikit-learn\njoblib\n").build(
        workspace, show_output=False
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text(TRAIN)
    (project / "score.py").write_text(SCORE)
    run = workspace.submit("train.py", "digits-env", source_dir=project).wait()
    assert run.status is Status.COMPLETED, run.logs()
    model = run.register_model("digits", "outputs/model.pkl", description="logistic")
    assert model.ref == "digits:1" and model.run_id == run.id and model.env_name == "digits-env"

    service = workspace.deploy(
        "digits-svc",
        models=["digits:1"],
        entry_script="score.py",
        environment="digits-env",
        source_dir=project,
    )
    try:
        assert service.state == "Healthy"
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        predictions = service.run(X[:20].tolist())
        assert sum(p == t for p, t in zip(predictions, y[:20], strict=True)) >= 18
        (project / "score.py").write_text(
            SCORE.replace(
                "return model.predict(data).tolist()",
                "return {'labels': model.predict(data).tolist()}",
            )
        )
        service.reload()
        assert list(service.run(X[:3].tolist())) == ["labels"]
        with pytest.raises(MlmagicError, match="used by the service digits-svc"):
            model.delete()
    finally:
        service.delete()
    model.delete()
    assert workspace.models.list().empty


def test_scoring_contract_and_failures_over_http(workspace, small, target):
    model, app = small
    service = workspace.deploy(
        "dot-svc",
        models=[model],
        entry_script="score.py",
        environment="serve-env",
        source_dir=app,
        workers=2,
    )
    try:
        assert service.run([1, 1, 1]) == {"dot": 6}
        with urllib.request.urlopen(service.url + "/") as answer:
            assert answer.read().decode().strip('"') == "Healthy"
        with urllib.request.urlopen(service.swagger_uri) as answer:
            assert "/score" in json.load(answer)["paths"]
        with pytest.raises(DeployError, match="400"):
            service.run("not json")
        with pytest.raises(DeployError, match="500.*asked to fail"):
            service.run(json.dumps("boom"))
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(service.url + "/nope")
        assert info.value.code == 404
        assert service.url.startswith("http://127.0.0.1:")
        # Only the published address answers: a page whose DNS name points at 127.0.0.1
        # (DNS rebinding) is refused; localhost on the published port is not.
        port = int(service.url.rsplit(":", 1)[1])
        for host, status in ((f"evil.example:{port}", 421), (f"localhost:{port}", 200)):
            request = urllib.request.Request(
                service.scoring_uri,
                data=b"[1, 1, 1]",
                headers={"Host": host, "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request) as answer:
                    assert (answer.status, host) == (status, host)
            except urllib.error.HTTPError as exc:
                assert (exc.code, host) == (status, host)
        # The name is taken, the port is taken.
        with pytest.raises(ConflictError, match="exists: delete it"):
            workspace.deploy(
                "dot-svc",
                models=[model],
                entry_script="score.py",
                environment="serve-env",
                source_dir=app,
            )
        with pytest.raises(DeployError, match=f"Port {port}"):
            workspace.deploy(
                "other-svc",
                models=[model],
                entry_script="score.py",
                environment="serve-env",
                source_dir=app,
                port=port,
            )
        # A service outlives the kernel: another workspace object finds it.
        from mlmagic import Workspace

        again = Workspace(workspace.root, engine=workspace.engine).services.get("dot-svc")
        assert again.run([0, 0, 2]) == {"dot": 6}
        # The server dies later (its process ends; its container or log file stays):
        # the state says so and the logs stay readable.
        record = workspace.store.service("dot-svc")
        if target == "docker":
            workspace.engine.stop(record.handle)  # the container stays, with its log
        else:
            workspace.target(record.target).stop_service(record.handle)
        assert service.state in ("Failed", "Unhealthy")
        logs = service.get_logs()
        # What the server said while it lived: its start line and the failed request.
        assert "mlmagic-serve: " in logs and "score.py on http://" in logs, logs
        assert "asked to fail" in logs, logs
    finally:
        service.delete()
    assert workspace.services.list().empty


def test_init_failure_is_reported_within_seconds(workspace, small):
    model, app = small
    (app / "score.py").write_text(
        "def init():\n    raise RuntimeError('no model here')\ndef run(raw):\n    return raw\n"
    )
    started = time.monotonic()
    with pytest.raises(DeployError, match="no model here"):
        workspace.deploy(
            "broken-svc",
            models=[model],
            entry_script="score.py",
            environment="serve-env",
            source_dir=app,
        )
    print(f"init failure reported after {time.monotonic() - started:.1f}s")
    service = workspace.services.get("broken-svc")
    assert service.state == "Failed" and "no model here" in service.get_logs()
    service.delete()


def test_bad_input_is_one_line(workspace, small):
    model, app = small
    common = {"entry_script": "score.py", "environment": "serve-env", "source_dir": app}
    with pytest.raises(NotFoundError, match="No model nope"):
        workspace.deploy("a-svc", models=["nope"], **common)
    with pytest.raises(MlmagicError, match="No environment nope-env"):
        workspace.deploy("a-svc", models=[model], **{**common, "environment": "nope-env"})
    with pytest.raises(DeployError, match="No entry script missing.py"):
        workspace.deploy("a-svc", models=[model], **{**common, "entry_script": "missing.py"})
    with pytest.raises(DeployError, match="valid service name"):
        workspace.deploy("Bad Name", models=[model], **common)
    (app / ".amlignore").write_text("*.py\n")
    with pytest.raises(DeployError, match="score.py is left out .* by .amlignore"):
        workspace.deploy("a-svc", models=[model], **common)
    (app / ".amlignore").unlink()
    assert workspace.services.list().empty


def test_key_authentication(workspace, small):
    model, app = small
    service = workspace.deploy(
        "auth-svc",
        models=[model],
        entry_script="score.py",
        environment="serve-env",
        source_dir=app,
        auth=True,
    )
    try:
        primary, secondary = service.get_keys()
        assert service.run([1, 0, 0]) == {"dot": 1}
        assert service.run([0, 1, 0], key=secondary) == {"dot": 2}
        request = urllib.request.Request(service.scoring_uri, data=b"[1,1,1]", method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request)
        assert info.value.code == 401
        with workspace.store.transaction() as db:
            stored = json.dumps([list(row) for row in db.execute("SELECT * FROM services")])
        assert primary not in stored and secondary not in stored
        new_primary, _ = service.regen_key()
        assert new_primary != primary
        with pytest.raises(DeployError, match="401"):
            service.run([1, 1, 1], key=primary)
        assert service.run([1, 1, 1]) == {"dot": 6}
        logs = service.get_logs()
        assert "mlmagic-serve: " in logs and primary not in logs and new_primary not in logs
    finally:
        service.delete()


_REGEN_PRIMARY = """
import sys
from mlmagic import Workspace
service = Workspace(sys.argv[1]).services.get(sys.argv[2])
primary, secondary = service.regen_key("Primary")
assert secondary is None, "a new process cannot know the secondary key"
print(primary)
"""


def _score(url: str, key: str) -> int:
    request = urllib.request.Request(
        url, data=b"[1,1,1]", method="POST", headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_regenerating_one_key_from_another_process_keeps_the_other(workspace, small):
    model, app = small
    service = workspace.deploy(
        "regen-svc",
        models=[model],
        entry_script="score.py",
        environment="serve-env",
        source_dir=app,
        auth=True,
    )
    try:
        primary, secondary = service.get_keys()
        assert primary != secondary
        child = subprocess.run(
            [sys.executable, "-c", _REGEN_PRIMARY, str(workspace.root), "regen-svc"],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ},
        )
        assert child.returncode == 0, child.stderr
        new_primary = child.stdout.strip().splitlines()[-1]
        assert new_primary not in (primary, secondary, "")
        assert _score(service.scoring_uri, new_primary) == 200
        assert _score(service.scoring_uri, secondary) == 200  # the other key still works
        assert _score(service.scoring_uri, primary) == 401  # the replaced one does not
    finally:
        service.delete()


def test_register_model_refuses_paths_outside_the_outputs(workspace, tmp_path, target):
    Environment.from_text("serve-env", "six\n").build(workspace, show_output=False)
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret")
    project = tmp_path / "p"
    project.mkdir()
    (project / "t.py").write_text(
        "import os, stat, sys, mlmagic_run as r\nout = r.output_dir()\n"
        "(out / 'm.txt').write_text('m')\n"
        "os.symlink('/etc/passwd', out / 'link')\n"
        "os.makedirs(out / 'folder')\n"
        "os.symlink('/etc', out / 'folder' / 'out')\n"
        # A link that stays inside the outputs, to a folder with a link out of them: the
        # host path of the secret is what the host side would follow.
        "os.makedirs(out / 'model')\nos.makedirs(out / 'inner')\n"
        f"os.symlink({str(secret)!r}, out / 'inner' / 'secret')\n"
        "os.symlink('../inner', out / 'model' / 'more')\n"
        # Root in a container may make device nodes (CAP_MKNOD): /dev/null's numbers.
        "os.makedirs(out / 'devices')\n"
        "if sys.argv[1] == 'docker':\n"
        "    os.mknod(out / 'devices' / 'null', stat.S_IFCHR | 0o600, os.makedev(1, 3))\n"
        "else:\n    os.mkfifo(out / 'devices' / 'null')\n"
    )
    run = workspace.submit("t.py", "serve-env", args=[target], source_dir=project).wait()
    assert run.status is Status.COMPLETED, run.logs()
    assert run.register_model("m", "outputs/m.txt").version == 1
    assert run.register_model("m", "m.txt").version == 2
    for bad in ("../system/output.log", "/etc/passwd", "outputs/link", "outputs/folder"):
        with pytest.raises(MlmagicError):
            run.register_model("m", bad)
    with pytest.raises(MlmagicError, match="outputs/model/more is a symbolic link"):
        run.register_model("m", "outputs/model")
    kind = "a device file" if target == "docker" else "a named pipe"
    with pytest.raises(MlmagicError, match=f"outputs/devices/null is {kind}"):
        run.register_model("m", "outputs/devices")
    assert list(workspace.models.list()["version"]) == [2, 1]
    stored = [p for p in (workspace.root / "models").rglob("*") if p.is_file()]
    assert stored and all(p.read_text() != "host secret" for p in stored)


def test_cli_deploys_an_azure_inference_config(workspace, small, capsys, target):
    from mlmagic.cli import main

    if target == "local":
        pytest.skip("extraDockerfileSteps need a Docker engine")
    model, app = small
    (app / "env.yml").write_text("name: x\ndependencies:\n  - python=3.11\n  - pip:\n    - six\n")
    (app / "steps.txt").write_text("RUN echo extra-step > /opt/extra\n")
    (app / "inferenceconfig.json").write_text(
        json.dumps(
            {
                "entryScript": "score.py",
                "sourceDirectory": ".",
                "condaFile": "env.yml",
                "extraDockerfileSteps": "steps.txt",
                "enableGpu": False,
            }
        )
    )
    code = main(
        [
            "service",
            "deploy",
            "cfg-svc",
            "--model",
            model.ref,
            "--inference-config",
            str(app / "inferenceconfig.json"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "cfg-svc Healthy http://127.0.0.1:" in out
    service = workspace.services.get("cfg-svc")
    assert service.run([2, 0, 0]) == {"dot": 2}
    assert service.config["environment"] == "cfg-svc-env:1"
    assert main(["service", "list"]) == 0 and "cfg-svc" in capsys.readouterr().out
    assert main(["service", "delete", "cfg-svc"]) == 0
    assert main(["service", "logs", "cfg-svc"]) == 1
    assert "No service cfg-svc" in capsys.readouterr().err


def test_deploy_magic(shell, workspace, small):
    model, app = small
    os.chdir(app)
    service = shell.run_line_magic(
        "deploy", f"magic-svc --model {model.ref} --entry score.py --env serve-env --quiet"
    )
    try:
        assert service.run([0, 0, 1]) == {"dot": 3}
        frame = shell.run_line_magic("services", "")
        assert list(frame["state"]) == ["Healthy"]
        assert list(shell.run_line_magic("models", "")["name"]) == ["dot"]
    finally:
        service.delete()
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="No model nope"):
        shell.run_line_magic("deploy", "x-svc --model nope --entry score.py --env serve-env")


def _port_in_use() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]
