"""The computes of a workspace (``ws.computes``): attach, start, list, look up, remove."""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING, Any

from mlmagic.computes import cluster, docker_host
from mlmagic.computes.client import RayJobs
from mlmagic.computes.record import (
    Compute,
    check_address,
    check_compute_name,
    check_token_env,
)
from mlmagic.events import BuildEvent, drain
from mlmagic.exceptions import ConflictError, MlmagicError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd

    from mlmagic.environment import Environment
    from mlmagic.workspace import Workspace

__all__ = ["Computes"]

_COLUMNS = ["name", "kind", "address", "state", "nodes", "CPUs", "GPUs", "environment", "storage"]


class Computes:
    """The computes (Ray clusters) runs can be sent to with ``compute=NAME``.

    Parameters
    ----------
    workspace
        The workspace whose store keeps them.
    """

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def attach(
        self,
        name: str,
        *,
        ray_address: str | None = None,
        token_env: str | None = None,
        storage: str | None = None,
        cluster_storage: str | None = None,
        python: str = "python",
        environment: str | Environment | None = None,
        check: bool = True,
        docker: str | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_verify: bool = True,
        shared_path: bool | None = None,
    ) -> Compute:
        """Record an existing Ray cluster (``ray_address``) or Docker engine (``docker``)
        under ``name``.

        Parameters
        ----------
        name
            What runs name with ``compute=``.
        ray_address
            Its Jobs API (dashboard) URL, e.g. ``http://ray-head:8265``.
        token_env
            The NAME of the environment variable holding its token (the token itself is
            never stored), for a cluster with ``RAY_AUTH_MODE=token``.
        storage
            A folder this machine and the cluster's nodes both see; outputs come back
            through it. ``cluster_storage`` is its path on the nodes, when it differs.
        python
            The interpreter the launcher runs with on the nodes (an absolute path is
            safest: a job's shell has the head's ``PATH``).
        environment
            The environment the cluster's nodes already run (their image was built from
            it, e.g. by ``mlmagic``): runs of it go there as they are, nothing is
            installed per job. Without it, a run's packages become the job's ``pip``
            runtime environment.
        check
            Ask the cluster first (its address, its token): refuse one that does not
            answer.
        docker
            A Docker engine instead of a Ray cluster: ``ssh://user@host``,
            ``tcp://host:2376`` or ``unix:///path`` (see :mod:`.docker_host`), with
            ``tls_ca``/``tls_cert``/``tls_key`` (paths; ``tls_verify``) for ``tcp://``,
            and ``shared_path`` when the engine sees this machine's paths.

        Raises
        ------
        ConflictError
            A compute of that name exists.
        MlmagicError
            Bad input, or (with ``check``) the cluster does not answer or refuses the token.
        """
        if (ray_address is None) == (docker is None):
            raise MlmagicError(
                "Give the compute's address: --ray URL (a Ray cluster) or --docker URL (a "
                "Docker engine, e.g. ssh://me@gpu-box)."
            )
        if docker is not None:
            engine = docker_host.docker_compute(
                name,
                docker,
                tls_ca=tls_ca,
                tls_cert=tls_cert,
                tls_key=tls_key,
                tls_verify=tls_verify,
                shared_path=shared_path,
            )
            return self._attach(engine, check)
        env = self._ws.environments.resolve(environment) if environment is not None else None
        compute = Compute(
            name=check_compute_name(name),
            kind="ray",
            address=check_address(str(ray_address)),
            token_env=check_token_env(token_env),
            storage=str(storage) if storage else None,
            cluster_storage=cluster_storage,
            python=python,
            environment=env.ref if env else None,
            env_image=env.image if env else None,
            created=time.time(),
        )
        return self._attach(compute, check)

    def _attach(self, compute: Compute, check: bool) -> Compute:
        name = compute.name
        if self._ws.store.compute(name) is not None:
            raise ConflictError(
                f"A compute named {name!r} exists: detach it first (%compute detach {name}) "
                "or choose another name."
            )
        if check and compute.kind == docker_host.KIND:
            docker_host.describe(compute, self._ws.config)
        elif check:
            RayJobs(compute).nodes()
        self._insert(compute)
        return compute

    def _insert(self, compute: Compute) -> None:
        if not self._ws.store.insert_compute(
            compute.name, compute.kind, compute.address, compute.options(), compute.created
        ):
            raise ConflictError(f"A compute named {compute.name!r} exists: choose another name.")

    def up(
        self,
        name: str,
        environment: str | Environment,
        *,
        workers: int = 1,
        show_output: bool = False,
    ) -> Compute:
        """Start a Ray cluster of containers of ``environment`` on this engine.

        The environment is built if needed, then its image with Ray added; a head and
        ``workers`` workers start on a network of their own, with token authentication,
        the Jobs API on 127.0.0.1 only, and storage in the workspace. Returns once every
        node has joined. The cluster outlives the kernel; :meth:`down` removes it.

        Raises
        ------
        ConflictError
            A compute of that name exists.
        MlmagicError
            Bad input, a failed build, or a node that did not join (with the head's log).
        """
        check_compute_name(name)
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise MlmagicError(f"--workers {workers!r}: give a whole number of workers, 1 or more.")
        if self._ws.store.compute(name) is not None:
            raise ConflictError(
                f"A compute named {name!r} exists: %compute down {name} first, or choose "
                "another name."
            )

        def show(event: BuildEvent) -> None:
            if show_output and event.message:
                print(event.message)

        env = self._ws.environments.resolve(environment)
        env = drain(self._ws.environments.build(env, target="docker"), show)
        assert env.image is not None
        engine = self._ws.engine
        log_path = self._ws.path("computes", name, "image.log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        image = drain(cluster.ray_image(engine, env.image, log_path=log_path), show)
        compute = cluster.up(
            engine,
            self._ws.root,
            name,
            image=image,
            environment=env.ref,
            env_image=env.image,
            workers=workers,
            folder=self._ws.path("computes", name),
        )
        try:
            self._insert(compute)
        except BaseException:
            cluster.down(engine, self._ws.root, name)
            raise
        return compute

    def get(self, name: str) -> Compute:
        """The compute ``name``.

        Raises
        ------
        NotFoundError
            There is none: the message lists those there are.
        """
        row = self._ws.store.compute(name)
        if row is None:
            known = ", ".join(r["name"] for r in self._ws.store.computes()) or "none yet"
            raise NotFoundError(
                f"No compute named {name!r} (computes: {known}): attach one with "
                "%compute attach NAME --ray URL (or --docker URL), or start one with "
                "%compute up."
            )
        return Compute.from_row(row)

    def all(self) -> list[Compute]:
        """Every compute, by name."""
        return [Compute.from_row(row) for row in self._ws.store.computes()]

    def status(self, compute: Compute) -> dict[str, Any]:
        """One row of :meth:`list` for ``compute``: its stored facts and, asked now, its
        state (``up``, ``unreachable: ...``), nodes, CPUs and GPUs."""
        row: dict[str, Any] = {
            "name": compute.name,
            "kind": compute.kind,
            "address": compute.address,
            "environment": compute.environment,
            "storage": compute.storage,
        }
        if compute.kind == docker_host.KIND:
            try:
                row.update(state="up", **docker_host.describe(compute, self._ws.config))
            except MlmagicError as exc:
                row.update(state=f"unreachable: {exc}", nodes=None, CPUs=None, GPUs=None)
            return row
        try:
            nodes = [n for n in RayJobs(compute).nodes() if n.get("state") == "ALIVE"]
        except MlmagicError as exc:
            row.update(state=f"unreachable: {exc}", nodes=None, CPUs=None, GPUs=None)
            return row
        totals = [n.get("resources_total") or {} for n in nodes]
        row.update(
            state="up",
            nodes=len(nodes),
            CPUs=sum(float(t.get("CPU", 0)) for t in totals),
            GPUs=sum(float(t.get("GPU", 0)) for t in totals),
        )
        return row

    def list(self) -> pd.DataFrame:
        """A table of every compute (asked now how it is): name, kind, address, state,
        nodes, CPUs, GPUs, environment, storage."""
        import pandas as pd

        return pd.DataFrame([self.status(c) for c in self.all()], columns=_COLUMNS)

    def detach(self, name: str) -> None:
        """Forget an attached compute (the cluster is not touched).

        Raises
        ------
        NotFoundError
            There is none.
        MlmagicError
            mlmagic started it: use :meth:`down`, which also removes its containers.
        """
        compute = self.get(name)
        if compute.made:
            raise MlmagicError(
                f"The compute {name!r} is a cluster mlmagic started: remove it with "
                f"%compute down {name}."
            )
        self._ws.store.delete_compute(name)

    def down(self, name: str) -> None:
        """Remove a cluster made by :meth:`up`: its containers, network, token and storage.

        Raises
        ------
        NotFoundError
            There is none.
        MlmagicError
            It is an attached cluster: use :meth:`detach`.
        """
        compute = self.get(name)
        if not compute.made:
            raise MlmagicError(
                f"The compute {name!r} is attached, not started by mlmagic: forget it with "
                f"%compute detach {name}."
            )
        cluster.down(self._ws.engine, self._ws.root, name)
        self._ws.store.delete_compute(name)
        shutil.rmtree(self._ws.path("computes", name), ignore_errors=True)
