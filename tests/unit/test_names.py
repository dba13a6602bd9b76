"""Names are matched whole: a trailing newline is not part of any valid name.

A pattern that ends in ``$`` also matches before a final newline, so ``"name\\n"`` used
to pass every name check and reach folder names, image tags and Dockerfiles.
"""

from __future__ import annotations

import pytest

from mlmagic import DeployError, MlmagicError, RunError, SpecError
from mlmagic.environment import check_name
from mlmagic.run.config import check_experiment, parse_data
from mlmagic.spec import parse


@pytest.fixture
def ws(local_ws):
    """The local workspace of tests/conftest.py."""
    return local_ws


def test_environment_names() -> None:
    check_name("env")
    with pytest.raises(SpecError, match="not a valid environment name") as info:
        check_name("env\n")
    assert "'env\\n'" in str(info.value)


def test_model_names(ws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    weights = tmp_path / "w.txt"
    weights.write_text("w")
    with pytest.raises(MlmagicError, match="not a valid model name"):
        ws.models.register("model\n", weights)
    assert ws.models.list().empty
    assert not (ws.root / "models").exists() or not any((ws.root / "models").iterdir())
    assert ws.models.register("model", weights).version == 1


def test_service_names(ws) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DeployError, match="not a valid service name"):
        next(ws.services.deploy("svc\n", models=[], entry_script="score.py", environment="e"))
    assert ws.store.services() == []


def test_experiment_and_data_names(tmp_path) -> None:  # type: ignore[no-untyped-def]
    check_experiment("exp")
    with pytest.raises(RunError, match="Experiment name"):
        check_experiment("exp\n")
    assert parse_data({"train": str(tmp_path)}) == {"train": str(tmp_path)}
    with pytest.raises(RunError, match="Data name"):
        parse_data({"train\n": str(tmp_path)})


def test_yaml_variable_names() -> None:
    assert dict(parse('pip: [six]\nenv: {"OMP": "1"}\n').env) == {"OMP": "1"}
    with pytest.raises(SpecError, match="is not an environment variable name") as info:
        parse('pip: [six]\nenv: {"OMP\\n": "1"}\n')
    assert info.value.line == 2
