"""The ``mlmagic`` command on the docker target, driven as a subprocess like a user's shell.

The same scenario as ``tests/unit/test_cli.py`` runs on the local target; here every
environment is an image, every run and service a container of the real engine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlmagic import Workspace
from tests import cli_driver
from tests.cli_driver import Cli


@pytest.fixture
def cli(docker_engine, tmp_path: Path) -> Cli:  # type: ignore[no-untyped-def]
    project = cli_driver.make_project(tmp_path / "project")
    return Cli(project, tmp_path / ".mlmagic", {"MLMAGIC_TARGET": "docker"})


def test_every_command_against_the_api(cli: Cli, docker_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = Workspace(cli.root, engine=docker_engine)
    try:
        cli_driver.check_environments(cli, ws)
        shown = cli.json("env", "show", "cli-env:1")
        assert shown["venv"] is None and docker_engine.image_info(shown["image"]) is not None
        run_id = cli_driver.check_runs(cli, ws)
        assert ws.runs.get(run_id).details["target"] == "docker"
        cli_driver.check_models(cli, ws, run_id)
        cli_driver.check_services(cli, ws)
        cli_driver.check_completion(cli, ws, run_id, tmp_path)
    finally:
        for name in ws.services.list()["name"]:
            ws.services.get(name).delete()
