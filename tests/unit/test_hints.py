"""Errors say what to do next in the words of the front end the user is in."""

from __future__ import annotations

import pytest

from mlmagic import DeployError, MlmagicError, Workspace, hints
from mlmagic.hints import render


def test_each_front_end_gets_its_own_hint():
    error = MlmagicError("No run r1 in /ws.", hint=hints.LIST_RUNS)
    assert str(error) == "No run r1 in /ws. ws.runs.list() lists the runs."
    assert render(error, "magic") == "No run r1 in /ws. %runs lists the runs."
    assert render(error, "cli") == "No run r1 in /ws. `mlmagic run list` lists the runs."


def test_a_hint_ends_the_first_line_before_the_details():
    error = DeployError(
        "svc stopped while starting (exit 1).\nIts last lines:\nTraceback ...",
        hint=hints.RELOAD_SERVICE.format(name="svc"),
    )
    first, *rest = render(error, "cli").splitlines()
    assert first == (
        "svc stopped while starting (exit 1). Fix it, then `mlmagic service reload svc` "
        "(or `mlmagic service delete svc`)."
    )
    assert rest == ["Its last lines:", "Traceback ..."]


def test_errors_without_a_hint_read_as_before():
    assert render(ValueError("plain"), "cli") == "plain"
    assert str(MlmagicError("plain")) == "plain"


@pytest.mark.parametrize(
    ("lookup", "python_hint"),
    [
        (lambda ws: ws.runs.get("nope_1"), "ws.runs.list() lists the runs."),
        (lambda ws: ws.models.get("nope"), "ws.models.list() lists them."),
        (lambda ws: ws.services.get("nope"), "ws.services.list() lists them."),
        (lambda ws: ws.environments.get("nope"), "Environment.from_text(NAME, ...).register()"),
    ],
)
def test_not_found_errors_of_the_api_carry_hints(tmp_path, lookup, python_hint):
    ws = Workspace(tmp_path / ".mlmagic")
    with pytest.raises(MlmagicError) as info:
        lookup(ws)
    assert info.value.hint is not None and python_hint in str(info.value)
    assert "mlmagic " in render(info.value, "cli") and "%" not in render(info.value, "cli")
