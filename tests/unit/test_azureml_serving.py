"""The serving side of mlmagic.azureml without an engine: Azure's inferenceconfig.json,
the SDK's deployment configurations and their one-line errors, and Model / LocalWebservice
on the local target (venvs and processes, real HTTP)."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from mlmagic.deploy.inference_config import read_inference_config
from mlmagic.exceptions import DeployError, MlmagicError, NotFoundError

#: The inference configuration of Azure's "custom base image" deployment document.
DOCUMENT_CONFIG = {
    "entryScript": "score.py",
    "runtime": "python",
    "condaFile": "infenv.yml",
    "extraDockerfileSteps": None,
    "sourceDirectory": None,
    "enableGpu": False,
    "baseImage": "mcr.microsoft.com/azureml/o16n-sample-user-base/ubuntu-miniconda",
    "baseImageRegistry": "mcr.microsoft.com",
}


def write_config(folder: Path, data: dict[str, object]) -> Path:
    (folder / "score.py").write_text("def init():\n    pass\n\ndef run(raw):\n    return raw\n")
    (folder / "infenv.yml").write_text("name: inf\ndependencies:\n  - pip:\n    - six\n")
    path = folder / "inferenceconfig.json"
    path.write_text(json.dumps(data))
    return path


def test_the_deployment_documents_file_reads_as_written(tmp_path: Path) -> None:
    config = read_inference_config(write_config(tmp_path, DOCUMENT_CONFIG), "myservice")
    assert config.entry_script == "score.py"
    # "sourceDirectory": null means none: the entry script is found beside the file.
    assert config.source_dir == tmp_path.resolve()
    assert config.environment is not None
    assert config.environment.name == "myservice-env"
    assert config.environment.spec.base_image == DOCUMENT_CONFIG["baseImage"]
    assert "six" in config.environment.spec.pip
    # A registry given by address alone is a public one: nothing to log in with.
    assert config.environment.spec.registry is None
    assert config.registry_password is None


def test_nulls_mean_the_default_for_every_key(tmp_path: Path) -> None:
    data = {key: None for key in DOCUMENT_CONFIG} | {"entryScript": "score.py"}
    config = read_inference_config(write_config(tmp_path, data), "svc")
    assert (config.entry_script, config.source_dir) == ("score.py", tmp_path.resolve())
    assert config.environment is None


def test_a_registry_login_keeps_its_password_out_of_the_environment(tmp_path: Path) -> None:
    data = DOCUMENT_CONFIG | {
        "baseImageRegistry": {
            "address": "myregistry.azurecr.io",
            "username": "reader",
            "password": "s3cret-pass",
        }
    }
    config = read_inference_config(write_config(tmp_path, data), "svc")
    assert config.environment is not None
    login = config.environment.spec.registry
    assert login is not None
    assert (login.address, login.username) == ("myregistry.azurecr.io", "reader")
    assert config.registry_password == "s3cret-pass"
    assert "s3cret-pass" not in json.dumps(config.environment.spec.to_dict())
    assert "s3cret-pass" not in repr(config)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"entryScript": "score.py", "sourceDirectory": "nowhere"}, "sourceDirectory nowhere"),
        ({"entryScript": "score.py", "baseImageRegistry": 5}, "baseImageRegistry"),
        (
            {"entryScript": "score.py", "baseImageRegistry": {"address": "r.io", "pwd": "x"}},
            "pwd",
        ),
        ({"entryScript": "score.py", "runtime": "spark-py"}, "python runtime"),
        ({"entryScript": "missing.py"}, "No entry script missing.py"),
        ({"entryScript": None}, "entryScript"),
    ],
)
def test_bad_files_say_what_to_fix_in_one_line(
    tmp_path: Path, data: dict[str, object], message: str
) -> None:
    with pytest.raises(DeployError, match=message) as caught:
        read_inference_config(write_config(tmp_path, data), "svc")
    assert "\n" not in str(caught.value)


def test_a_password_is_set_only_while_the_build_runs(tmp_path: Path) -> None:
    from mlmagic.deploy.registry import registry_password

    data = DOCUMENT_CONFIG | {
        "baseImageRegistry": {"address": "r.example", "username": "u", "password": "pw-1"}
    }
    config = read_inference_config(write_config(tmp_path, data), "svc")
    assert config.environment is not None
    login = config.environment.spec.registry
    assert login is not None and login.password_env
    assert login.password_env not in os.environ
    with registry_password(login, config.registry_password):
        assert os.environ[login.password_env] == "pw-1"
    assert login.password_env not in os.environ


# -- the SDK's Model and LocalWebservice, on the local target (venvs and processes) ------

SCHEMA_SCORE = """
import json, os
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.standard_py_parameter_type import (
    StandardPythonParameterType,
)

VERSION = "first"


def init():
    global weights
    # Azure's way to find the model, with nothing of the SDK in the environment.
    from azureml.core.model import Model

    with open(Model.get_model_path("dot")) as f:
        weights = json.load(f)
    print("loaded weights", weights)


@input_schema("data", StandardPythonParameterType([[1.0, 2.0, 3.0]]))
@input_schema("scale", StandardPythonParameterType(1.0), optional=True)
@output_schema(StandardPythonParameterType({"dots": [1.0], "version": "first"}))
def run(data, scale=1.0):
    dots = [scale * sum(w * x for w, x in zip(weights, row)) for row in data]
    return {"dots": dots, "version": VERSION, "kind": type(data).__name__}
"""


@pytest.fixture
def azure_ws(local_ws):  # type: ignore[no-untyped-def]
    from mlmagic.azureml.core import Workspace

    return Workspace(_workspace=local_ws)


def weights(folder: Path, values: list[float]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "weights.json"
    path.write_text(json.dumps(values))
    return path


def test_models_register_list_find_and_download_as_azure(azure_ws, tmp_path, monkeypatch):
    from mlmagic.azureml.core.model import Model

    first = Model.register(
        azure_ws, model_path=str(weights(tmp_path / "a", [1, 0])), model_name="dot", tags={"k": 1}
    )
    second = Model.register(azure_ws, str(weights(tmp_path / "b", [0, 1])), "dot", description="b")
    assert (first.id, second.id, second.version) == ("dot:1", "dot:2", 2)
    assert first.tags == {"k": "1"} and second.description == "b"
    assert [m.id for m in Model.list(azure_ws, name="dot")] == ["dot:2", "dot:1"]
    assert [m.id for m in Model.list(azure_ws, tags=[["k", "1"]])] == ["dot:1"]
    assert Model(azure_ws, "dot").version == 2
    assert Model(azure_ws, name="dot", version=1).id == Model(azure_ws, id="dot:1").id == "dot:1"
    assert Model(azure_ws, "dot").url.startswith("file://")
    # Outside a service: the registered copy.
    path = Model.get_model_path("dot", version=1, _workspace=azure_ws)
    assert json.loads(Path(path).read_text()) == [1, 0]
    copy = Path(first.download(str(tmp_path / "out")))
    assert json.loads(copy.read_text()) == [1, 0]
    with pytest.raises(MlmagicError, match="exist_ok=True"):
        first.download(str(tmp_path / "out"))
    assert Path(first.download(str(tmp_path / "out"), exist_ok=True)) == copy
    # Inside a service with one model, AZUREML_MODEL_DIR is the version's own folder.
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(Path(path).parent))
    assert Model.get_model_path("dot") == path
    with pytest.raises(NotFoundError, match="not deployed with the model other"):
        Model.get_model_path("other")
    with pytest.raises(NotFoundError, match="No model dot:7"):
        Model(azure_ws, "dot", version=7)


def test_get_model_path_in_a_service_of_several_models(tmp_path, monkeypatch):
    from mlmagic.azureml.core.model import Model

    for name, version in (("dot", 1), ("dot", 2), ("scaler", 3)):
        weights(tmp_path / "models" / name / str(version), [version])
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path / "models"))
    assert Model.get_model_path("dot") == str(tmp_path / "models/dot/2/weights.json")
    assert Model.get_model_path("dot", 1) == str(tmp_path / "models/dot/1/weights.json")
    assert Model.get_model_path("scaler") == str(tmp_path / "models/scaler/3/weights.json")
    with pytest.raises(NotFoundError, match="not deployed with the model dot:5"):
        Model.get_model_path("dot", version=5)


def test_a_local_webservice_serves_an_inference_schema_script(azure_ws, tmp_path, capsys):
    from mlmagic import Environment
    from mlmagic.azureml.core.model import InferenceConfig, Model
    from mlmagic.azureml.core.webservice import LocalWebservice, Webservice, WebserviceException

    model = Model.register(azure_ws, str(weights(tmp_path / "m1", [1, 2, 3])), "dot")
    app = tmp_path / "app"
    app.mkdir()
    (app / "score.py").write_text(SCHEMA_SCORE)
    config = InferenceConfig(
        entry_script="score.py",
        source_directory=str(app),
        environment=Environment.from_text("serve-env", "six\n"),
    )
    service = Model.deploy(
        azure_ws, "dot-svc", [model], config, LocalWebservice.deploy_configuration()
    )
    service.wait_for_deployment(show_output=True)
    assert "dot-svc: Healthy, scoring URI http://127.0.0.1:" in capsys.readouterr().out
    assert service.state == "Healthy"

    # The decorated run() gets the members of the object, converted by inference-schema.
    answer = service.run(json.dumps({"data": [[1, 0, 0], [0, 0, 1]], "scale": 2}))
    assert answer == {"dots": [2.0, 6.0], "version": "first", "kind": "list"}
    with pytest.raises(WebserviceException, match="Send a JSON object whose members"):
        service.run(json.dumps([[1, 0, 0]]))
    with pytest.raises(WebserviceException, match="run.. takes no colour"):
        service.run(json.dumps({"data": [[1, 0, 0]], "colour": "red"}))

    # /swagger.json describes what the decorators say.
    with urllib.request.urlopen(service.swagger_uri, timeout=30) as response:
        swagger = json.loads(response.read())
    body = swagger["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]
    assert sorted(body["schema"]["properties"]) == ["data", "scale"]
    assert body["schema"]["example"]["data"] == [[1.0, 2.0, 3.0]]

    # reload() picks up the edited script; update() serves another model version.
    (app / "score.py").write_text(SCHEMA_SCORE.replace('"first"', '"second"', 1))
    service.reload()
    assert service.run(json.dumps({"data": [[1, 1, 1]]}))["version"] == "second"
    newer = Model.register(azure_ws, str(weights(tmp_path / "m2", [10, 0, 0])), "dot")
    service.update(models=[newer])
    assert service.run(json.dumps({"data": [[1, 1, 1]]}))["dots"] == [10.0]
    assert [m.id for m in Webservice(azure_ws, "dot-svc").models] == ["dot:2"]
    assert "loaded weights [10, 0, 0]" in service.get_logs()

    # update(inference_config=...) serves another script; a port cannot change.
    (app / "plain.py").write_text(
        "def init():\n    pass\n\ndef run(raw_data):\n    return {'echo': raw_data}\n"
    )
    service.update(
        inference_config=InferenceConfig(
            "plain.py", source_directory=str(app), environment=config.environment
        )
    )
    assert service.run('{"a": 1}') == {"echo": '{"a": 1}'}
    with pytest.raises(WebserviceException, match="a service keeps its port"):
        service.update(deployment_config=LocalWebservice.deploy_configuration(port=1))

    # A second deployment of the name is refused, unless it overwrites.
    with pytest.raises(WebserviceException, match="pass overwrite=True"):
        Model.deploy(azure_ws, "dot-svc", [model], config)
    again = Model.deploy(azure_ws, "dot-svc", [model], config, overwrite=True)
    again.wait_for_deployment()
    assert again.run(json.dumps({"data": [[1, 0, 0]]}))["dots"] == [1.0]

    service.delete()
    with pytest.raises(WebserviceException, match="no service dot-svc"):
        Webservice(azure_ws, "dot-svc")


def test_deploy_refuses_what_it_cannot_do_in_one_line(azure_ws, tmp_path, capsys):
    from mlmagic import Environment
    from mlmagic.azureml.core.model import InferenceConfig, Model
    from mlmagic.azureml.core.webservice import AciWebservice, AksWebservice

    with pytest.raises(DeployError, match="takes environment or conda_file, not both"):
        InferenceConfig("score.py", environment=Environment.from_text("e", "six\n"), conda_file="x")
    with pytest.raises(DeployError, match="only the python runtime"):
        InferenceConfig("score.py", runtime="spark-py")
    aci = AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=0.5, dns_name_label="x")
    assert capsys.readouterr().out.count("\n") == 1
    assert aci.settings() == {"port": None, "auth": False, "cpus": 1.0, "memory": "512m"}
    aks = AksWebservice.deploy_configuration(gpu_cores=1)
    assert "Azure Kubernetes Service" in capsys.readouterr().out
    assert aks.settings()["auth"] is True and aks.settings()["gpus"] == "1"
    model = Model.register(azure_ws, str(weights(tmp_path / "m", [1])), "dot")
    (tmp_path / "score.py").write_text(SCHEMA_SCORE)
    with pytest.raises(DeployError, match="needs an environment"):
        Model.deploy(azure_ws, "svc", [model], InferenceConfig("score.py"))
    with pytest.raises(DeployError, match="needs an inference_config"):
        Model.deploy(azure_ws, "svc", [model])
    with pytest.raises(DeployError, match="No entry script nope.py"):
        Model.deploy(azure_ws, "svc", [model], InferenceConfig("nope.py", conda_file="e.yml"))
