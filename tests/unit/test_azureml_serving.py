"""The serving side of mlmagic.azureml without an engine: Azure's inferenceconfig.json,
the SDK's deployment configurations, and their one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlmagic.deploy.inference_config import read_inference_config
from mlmagic.exceptions import DeployError

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
