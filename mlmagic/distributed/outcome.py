"""How a gang stands and how it ended, read from the exit records its nodes write.

Each rank's exit is recorded by the node launcher in ``system/gang/rank-K.json`` (a node
whose one process is ``mpirun`` or ``torchrun`` writes ``node-N.json``). Any process can
read them, so the process that re-attaches to a gang after the kernel died decides its
state and its failure exactly as the one that submitted it would.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlmagic.engine.base import ContainerState

__all__ = [
    "NodeState",
    "exit_records",
    "failure_message",
    "first_failure",
    "gang_state",
    "node_rows",
]

#: Lines of the failing rank shown with the run's error.
TAIL_LINES = 10
_TAIL_BYTES = 1 << 20


@dataclass(frozen=True)
class NodeState:
    """What the target knows of one node: its plan entry and its container or process."""

    index: int
    primary: bool
    ranks: tuple[int, ...]
    state: ContainerState | None


def exit_records(folder: Path) -> list[dict[str, Any]]:
    """Every exit record in ``folder``, oldest first (unreadable ones are skipped)."""
    records = []
    for path in folder.glob("*.json"):
        try:
            record = json.loads(path.read_text())
            float(record["ended"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        records.append(record)
    return sorted(records, key=lambda r: float(r["ended"]))


def first_failure(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The first process that exited non-zero on its own (not stopped by the gang)."""
    for record in records:
        if record.get("exit_code") not in (0, None) and not record.get("stopped"):
            return record
    return None


def gang_state(handle: str, nodes: Sequence[NodeState], exits: Path) -> ContainerState | None:
    """One state for the whole gang; ``None`` when nothing of it is left or recorded.

    Running while no process failed and a primary node runs; ended with the first
    failure's code as soon as one process failed (the others may still run: the target
    stops them when the run is finalised); else ended when every primary node ended.
    """
    records = exit_records(exits)
    if not records and all(node.state is None for node in nodes):
        return None
    oom = any(node.state is not None and node.state.oom_killed for node in nodes)
    failure = first_failure(records)
    if failure is not None:
        return ContainerState(handle, "exited", int(failure["exit_code"]), oom, None, None)
    primaries = [node for node in nodes if node.primary]
    if any(node.state is not None and node.state.running for node in primaries):
        return ContainerState(handle, "running", None, False, None, None)
    for node in primaries:
        code = node.state.exit_code if node.state is not None else None
        if code:  # the node itself failed (its launcher, or killed for memory)
            return ContainerState(handle, "exited", code, oom, None, None)
    stopped = [r for r in records if r.get("stopped")]
    if stopped:  # stopped from outside (cancel, timeout): not a success
        return ContainerState(handle, "exited", int(stopped[0]["exit_code"]), oom, None, None)
    recorded = {r.get("rank") for r in records}
    # A node whose one process is mpirun or torchrun records itself (rank None).
    recorded |= {("node", r.get("node")) for r in records if r.get("rank") is None}
    for node in primaries:
        if not set(node.ranks) <= recorded and ("node", node.index) not in recorded:
            return ContainerState(handle, "exited", None, oom, None, None)
    return ContainerState(handle, "exited", 0, False, None, None)


def failure_message(exits: Path, log: Path) -> str | None:
    """``rank K (node N) exited with code C`` and that rank's last lines, or ``None``."""
    records = exit_records(exits)
    failure = first_failure(records)
    if failure is None:
        return None
    label = failure.get("label") or f"node {failure.get('node')}"
    head = f"{label} (node {failure.get('node')}) exited with code {failure['exit_code']}"
    if label.startswith("node "):
        head = f"{label} exited with code {failure['exit_code']}"
    lines = _last_lines(log, f"[{label}] ")
    if not lines:
        return head
    return head + "; its last lines:\n" + "\n".join(lines)


def _last_lines(log: Path, prefix: str) -> list[str]:
    try:
        with log.open("rb") as file:
            file.seek(max(0, file.seek(0, 2) - _TAIL_BYTES))
            text = file.read().decode(errors="replace")
    except OSError:
        return []
    found = [line for line in text.splitlines() if line.startswith(prefix)]
    return found[-TAIL_LINES:]


def node_rows(
    plan_file: Path, exits: Path, states: dict[int, ContainerState | None]
) -> list[dict[str, Any]]:
    """One row per node for the widget and ``run.nodes``: ``node``, ``host``, ``processes``
    (their labels) and ``state`` (``Running``, ``Exited 0``, ``Failed: rank 3 exited 3``,
    ``Stopped``, ``Serving`` for MPI's launch agents)."""
    try:
        plan = json.loads(plan_file.read_text())
    except (OSError, ValueError):
        return []
    by_node: dict[int, list[dict[str, Any]]] = {}
    for record in exit_records(exits):
        by_node.setdefault(int(record.get("node", -1)), []).append(record)
    rows = []
    for node in plan.get("nodes", []):
        index = node["index"]
        labels = [p["label"] for p in node["procs"]] or [node["role"]]
        records = by_node.get(index, [])
        state = states.get(index)
        failed = first_failure(records)
        if failed is not None:
            shown = f"Failed: {failed.get('label')} exited {failed['exit_code']}"
        elif state is not None and state.running:
            shown = "Serving" if node["role"] == "agent" else "Running"
        elif any(r.get("stopped") for r in records) or (node["role"] == "agent" and records == []):
            shown = "Stopped"
        elif records:
            shown = f"Exited {max(int(r['exit_code']) for r in records)}"
        else:
            shown = "Ended"
        rows.append(
            {"node": index, "host": node["host"], "processes": ", ".join(labels), "state": shown}
        )
    return rows
