"""Computes: named Ray clusters runs are sent to (``compute=NAME``, ``--compute NAME``).

:class:`~mlmagic.computes.computes.Computes` is ``ws.computes``: attach an existing
cluster by its Jobs API address, or start one of containers of an environment
(:mod:`.cluster`); the runs themselves go through the ``ray`` target
(:mod:`mlmagic.targets.ray`). Only :mod:`.client` imports Ray (the ``mlmagic[ray]`` extra).
"""

from __future__ import annotations

from mlmagic.computes.computes import Computes
from mlmagic.computes.record import Compute

__all__ = ["Compute", "Computes"]
