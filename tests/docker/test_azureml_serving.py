"""Azure ML v1 deployment code on the real engine (and on the local target), called over
real HTTP: ``Model.deploy`` of an inference-schema ``score.py``, and the
``inferenceconfig.json`` of Azure's custom-base-image document deployed by the CLI."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import BASE_IMAGE

NUMPY_SCORE = """
import json, os
import numpy as np
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import (
    StandardPythonParameterType,
)

GREETING = "first"


def init():
    global weights
    weights = np.array(json.load(open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "w.json"))))
    print("weights loaded:", weights.tolist())


@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0, 3.0]])))
@output_schema(StandardPythonParameterType({"dots": [14.0], "greeting": "first"}))
def run(data):
    # inference-schema hands over an ndarray, as on Azure.
    return {"dots": (data @ weights).tolist(), "greeting": GREETING, "kind": type(data).__name__}
"""


@pytest.fixture
def workspace(target_workspace):  # type: ignore[no-untyped-def]
    """Every test here runs on both targets unless it says otherwise."""
    return target_workspace


@pytest.fixture
def azure_ws(workspace):  # type: ignore[no-untyped-def]
    from mlmagic.azureml.core import Workspace

    return Workspace(_workspace=workspace)


def model_file(folder: Path, values: list[float]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "w.json").write_text(json.dumps(values))
    return str(folder / "w.json")


def test_model_deploy_serves_a_numpy_schema_script(azure_ws, tmp_path, capsys):
    from mlmagic import Environment
    from mlmagic.azureml.core.model import InferenceConfig, Model
    from mlmagic.azureml.core.webservice import LocalWebservice, Webservice, WebserviceException

    model = Model.register(azure_ws, model_file(tmp_path / "m1", [1, 2, 3]), "weights")
    app = tmp_path / "app"
    app.mkdir()
    (app / "score.py").write_text(NUMPY_SCORE)
    env = Environment.from_text("np-serve", "numpy\n")
    config = InferenceConfig(entry_script="score.py", source_directory=str(app), environment=env)
    service = Model.deploy(
        azure_ws, "np-svc", [model], config, LocalWebservice.deploy_configuration()
    )
    service.wait_for_deployment(show_output=True)
    shown = capsys.readouterr().out
    assert "np-svc: Healthy" in shown and "starting the server" in shown, shown

    assert service.run(json.dumps({"data": [[1, 1, 1], [0, 0, 2]]})) == {
        "dots": [6.0, 6.0],
        "greeting": "first",
        "kind": "ndarray",
    }
    with pytest.raises(WebserviceException, match="leaves out data"):
        service.run(json.dumps({}))

    with urllib.request.urlopen(service.swagger_uri, timeout=30) as answer:
        swagger = json.loads(answer.read())
    score = swagger["paths"]["/score"]["post"]
    request = score["requestBody"]["content"]["application/json"]["schema"]
    assert request["properties"]["data"]["type"] == "array"
    reply = score["responses"]["200"]["content"]["application/json"]["schema"]
    assert reply["example"] == {"dots": [14.0], "greeting": "first"}

    (app / "score.py").write_text(NUMPY_SCORE.replace('"first"', '"reloaded"', 1))
    service.reload()
    assert service.run(json.dumps({"data": [[1, 0, 0]]}))["greeting"] == "reloaded"
    newer = Model.register(azure_ws, model_file(tmp_path / "m2", [0, 0, 5]), "weights")
    service.update(models=[newer])
    assert service.run(json.dumps({"data": [[1, 1, 1]]}))["dots"] == [5.0]
    assert "weights loaded: [0, 0, 5]" in service.get_logs()
    assert Webservice(azure_ws, "np-svc").state == "Healthy"

    service.delete()
    with pytest.raises(WebserviceException, match="no service np-svc"):
        Webservice(azure_ws, "np-svc")


def test_a_failed_deployment_raises_in_wait_for_deployment(azure_ws, tmp_path):
    from mlmagic import Environment
    from mlmagic.azureml.core.model import InferenceConfig, Model
    from mlmagic.azureml.core.webservice import WebserviceException

    model = Model.register(azure_ws, model_file(tmp_path / "m", [1]), "weights")
    (tmp_path / "score.py").write_text(
        "def init():\n    raise RuntimeError('no model here')\n\ndef run(raw):\n    return raw\n"
    )
    config = InferenceConfig("score.py", environment=Environment.from_text("e-fail", "six\n"))
    service = Model.deploy(azure_ws, "fail-svc", [model], config)
    with pytest.raises(WebserviceException, match="no model here"):
        service.wait_for_deployment()
    assert service.state == "Failed"
    service.delete()


#: infenv.yml of the document: the scoring script's packages.
INFENV = "name: project_environment\ndependencies:\n  - python=3.11\n  - pip:\n    - six\n"

PLAIN_SCORE = """
import json, os

def init():
    global weights
    weights = json.load(open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "w.json")))

def run(raw_data):
    return {"dot": sum(w * x for w, x in zip(weights, json.loads(raw_data)["data"]))}
"""


def document_folder(folder: Path, **changes: object) -> Path:
    """The document's inferenceconfig.json, score.py and infenv.yml, with ``changes``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "score.py").write_text(PLAIN_SCORE)
    (folder / "infenv.yml").write_text(INFENV)
    config = {
        "entryScript": "score.py",
        "runtime": "python",
        "condaFile": "infenv.yml",
        "extraDockerfileSteps": None,
        "sourceDirectory": None,
        "enableGpu": False,
        # The document's image is on mcr.microsoft.com, which this machine cannot reach:
        # the one key changed, to the test base image.
        "baseImage": BASE_IMAGE,
        "baseImageRegistry": "mcr.microsoft.com",
        **changes,
    }
    (folder / "inferenceconfig.json").write_text(json.dumps(config, indent=3))
    return folder / "inferenceconfig.json"


def test_the_documents_inference_config_deploys_with_the_cli(workspace, tmp_path, capsys, target):
    from mlmagic.cli import main

    weights = model_file(tmp_path / "m", [1, 2])
    assert main(["model", "register", "mymodel", weights]) == 0
    path = document_folder(tmp_path / "project")
    argv = [
        "service",
        "deploy",
        "myservice",
        "--model",
        "mymodel:1",
        "--inference-config",
        str(path),
    ]
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "myservice Healthy http://127.0.0.1:" in out
    service = workspace.services.get("myservice")
    assert service.run({"data": [3, 4]}) == {"dot": 11}
    assert service.config["environment"] == "myservice-env:1"
    assert main(["service", "delete", "myservice"]) == 0


class FakeRegistry(BaseHTTPRequestHandler):
    """A registry that asks for a login, notes the credentials sent, and has no images."""

    logins: list[str] = []

    def do_GET(self) -> None:
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            self.logins.append(base64.b64decode(header[6:]).decode())
            body = b'{"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}'
            self.send_response(404)
        else:
            body = b'{"errors": [{"code": "UNAUTHORIZED", "message": "log in"}]}'
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="test"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def registry() -> Iterator[str]:
    """``127.0.0.1:PORT``, which Docker treats as an insecure registry (plain HTTP)."""
    FakeRegistry.logins = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_registry_password_reaches_the_registry_and_is_stored_nowhere(
    workspace, tmp_path, capsys, target, registry
):
    from mlmagic.cli import main

    if target == "local":
        pytest.skip("a base image registry is the Docker target's")
    assert main(["model", "register", "mymodel", model_file(tmp_path / "m", [1])]) == 0
    login = {"address": registry, "username": "reader", "password": "pw-never-stored-42"}
    path = document_folder(
        tmp_path / "project", baseImage=f"{registry}/private/base:1", baseImageRegistry=login
    )
    argv = ["service", "deploy", "privsvc", "--model", "mymodel:1", "--inference-config", str(path)]
    assert main(argv) == 1
    assert "manifest unknown" in capsys.readouterr().err
    assert "reader:pw-never-stored-42" in FakeRegistry.logins
    assert not any(v == "pw-never-stored-42" for v in os.environ.values())
    for file in workspace.root.rglob("*"):
        if file.is_file():
            assert b"pw-never-stored-42" not in file.read_bytes(), file
    with sqlite3.connect(workspace.root / "mlmagic.db") as db:
        dump = "\n".join(db.iterdump())
    assert "pw-never-stored-42" not in dump and "reader" in dump
