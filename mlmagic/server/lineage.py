"""What the studio views show of models, services and environment versions, as JSON.

Lineage runs both ways through the store's records: a service names its models
(``name:version``) and environment; a model version names the run it came from and that
run's environment version; an environment version names its image. Each function here
reads the store once per kind of record and answers plain rows; none starts or asks a
container, so a lineage view costs no engine call.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

from mlmagic.exceptions import NotFoundError
from mlmagic.workspace import Workspace

__all__ = [
    "MAX_ENVIRONMENT_RUNS",
    "environment_details",
    "environment_diff",
    "finite",
    "model_rows",
    "service_lineage",
]

#: The most runs an environment version's details list (the newest).
MAX_ENVIRONMENT_RUNS = 200


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None``: JSON has no word for them, and a
    browser's ``JSON.parse`` refuses Python's ``NaN``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _model_row(row: dict[str, Any], users: dict[str, list[str]]) -> dict[str, Any]:
    ref = f"{row['name']}:{row['version']}"
    return {
        "name": row["name"],
        "version": row["version"],
        "ref": ref,
        "file": Path(row["path"]).name,
        "run_id": row["run_id"],
        "experiment": row["experiment"],
        "environment": f"{row['env_name']}:{row['env_version']}" if row["env_name"] else None,
        "tags": row["tags"],
        "description": row["description"],
        "created": row["created"],
        "services": sorted(users.get(ref, [])),
    }


def _users(ws: Workspace) -> dict[str, list[str]]:
    """The services using each model version, by ``name:version``."""
    users: dict[str, list[str]] = {}
    for service in ws.store.services():
        for ref in service.config.models:
            users.setdefault(ref, []).append(service.name)
    return users


def model_rows(ws: Workspace, run_id: str | None = None) -> list[dict[str, Any]]:
    """Every model version (or those registered from ``run_id``), by name, newest version
    first: name, version, ref, file, run_id, experiment, environment, tags, description,
    created, and the ``services`` that use it."""
    users = _users(ws)
    return [
        _model_row(row, users)
        for row in ws.store.models()
        if run_id is None or row["run_id"] == run_id
    ]


def _run_summary(ws: Workspace, run_id: str | None) -> dict[str, Any] | None:
    record = ws.store.run(run_id) if run_id else None
    if record is None:
        return None
    return {
        "id": record.id,
        "experiment": record.experiment,
        "status": record.status.value,
        "environment": record.environment,
        "image": record.image,
        "target": record.target,
    }


def _environment_summary(ws: Workspace, ref: str | None) -> dict[str, Any] | None:
    name, _, version = (ref or "").partition(":")
    row = ws.store.environment(name, int(version)) if name and version.isdigit() else None
    if row is None:
        return None
    return {
        "ref": f"{row['name']}:{row['version']}",
        "name": row["name"],
        "version": row["version"],
        "image": row["image"],
        "status": row["status"],
    }


def service_lineage(ws: Workspace, name: str) -> dict[str, Any]:
    """A service back to its models, the runs that made them, their environment
    versions and images: ``{"service", "environment", "models": [{..., "run",
    "run_environment"}]}`` (``run`` is ``None`` for a model registered from a file)."""
    record = ws.store.service(name)
    if record is None:
        raise NotFoundError(f"No service {name}: the panel lists the services there are.")
    users = _users(ws)
    models = []
    for ref in record.config.models:
        model_name, _, version = ref.partition(":")
        row = ws.store.model(model_name, int(version) if version.isdigit() else None)
        if row is None:
            models.append({"ref": ref, "missing": True, "run": None, "run_environment": None})
            continue
        entry = _model_row(row, users)
        entry["run"] = _run_summary(ws, row["run_id"])
        entry["run_environment"] = _environment_summary(ws, entry["environment"])
        models.append(entry)
    return {
        "service": {
            "name": record.name,
            "state": record.state,
            "url": record.url,
            "image": record.image,
            "target": record.target,
            "environment": record.config.environment,
        },
        "environment": _environment_summary(ws, record.config.environment),
        "models": models,
    }


def environment_details(ws: Workspace, name: str, version: int) -> dict[str, Any]:
    """One environment version as its details show it: format, the Dockerfile stored when
    it was registered (what was built), the resolved packages, size, image, and the runs
    that used it (newest first, at most :data:`MAX_ENVIRONMENT_RUNS`)."""
    env = ws.environments.get(name, version)
    ref = env.ref
    runs = []
    # The listing's own query (plain tuples, no config decoded): cheap at any scale.
    for row in ws.store.run_table():
        if row[4] == ref:
            runs.append({"id": row[0], "experiment": row[1], "status": row[3], "created": row[5]})
            if len(runs) >= MAX_ENVIRONMENT_RUNS:
                break
    versions = [r["version"] for r in ws.store.environments(name)]
    return {
        "ref": ref,
        "name": env.name,
        "version": env.version,
        "versions": versions,
        "format": env.spec.format,
        "status": env.status,
        "image": env.image,
        "venv": env.venv,
        "size": env.size,
        "created": env.created,
        "error": env.error,
        "dockerfile": env.dockerfile,
        "packages": env.packages,
        "runs": runs,
        "models": [m for m in model_rows(ws) if m["environment"] == ref],
    }


def environment_diff(ws: Workspace, name: str, old: int, new: int) -> dict[str, Any]:
    """Unified diffs of two versions of ``name``: of their resolved packages and of their
    Dockerfiles (``""`` where they are the same)."""
    a, b = ws.environments.get(name, old), ws.environments.get(name, new)

    def diff(first: list[str], second: list[str]) -> str:
        lines = difflib.unified_diff(first, second, a.ref, b.ref, lineterm="", n=1)
        return "\n".join(lines)

    return {
        "old": a.ref,
        "new": b.ref,
        "packages": diff(a.packages or [], b.packages or []),
        "dockerfile": diff(a.dockerfile.splitlines(), b.dockerfile.splitlines()),
    }
