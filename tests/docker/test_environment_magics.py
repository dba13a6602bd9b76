"""``%%environment`` and ``%envs`` through a real InteractiveShell and the real engine."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError


def test_environment_cell_builds_returns_the_environment_and_hits_the_cache(shell, workspace):
    env = shell.run_cell_magic("environment", "magic-env", "six==1.16.0\n")
    assert env.ref == "magic-env:1" and env.status == "ready"
    again = shell.run_cell_magic("environment", "magic-env --quiet", "six==1.16.0  # same\n")
    assert again.cache_hit and again.image == env.image
    v2 = shell.run_cell_magic("environment", "magic-env --no-build", "six==1.15.0\n")
    assert v2.version == 2 and v2.status == "registered"
    frame = shell.run_line_magic("envs", "")
    assert list(frame["name"]) == ["magic-env", "magic-env"]
    shown = shell.run_line_magic("envs", "magic-env --version 1")
    assert shown.packages and any(p.startswith("six==") for p in shown.packages)


def test_failed_build_is_one_line_with_the_log_path(shell, workspace):
    with pytest.raises(UsageError) as info:
        shell.run_cell_magic("environment", "bad-env --quiet", "no-such-package-mlmagic-x==1\n")
    message = str(info.value)
    assert message.startswith(
        "no-such-package-mlmagic-x==1 was not found in the package index "
        "(installing the Python packages, step "
    )
    assert "Full log:" in message and "\n" not in message
