"""The soak benchmark at a small size: runs from four processes at once while a service is
scored, then the database, every run and every log are checked (benchmarks/soak.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).parents[2] / "benchmarks" / "soak.py"


def test_runs_from_four_processes_while_a_service_is_scored(docker_engine, tmp_path):
    out = subprocess.run(
        [sys.executable, str(SOAK), "--runs", "8", "--processes", "4", "--lines", "300", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "MLMAGIC_TARGET": "docker"},
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["statuses"] == {"Completed": 8}, (result, out.stderr[-2000:])
    assert result["logs_complete"] == 8 and result["recorded"] == 8
    assert result["integrity_check"] == "ok"
    assert result["requests"]["ok"] > 0
    assert result["requests"]["failed"] == result["requests"]["wrong"] == 0
    assert result["containers_left"] == 0
    assert out.returncode == 0, out.stderr[-2000:]
