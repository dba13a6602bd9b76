"""The jupyter_server extension: REST handlers over the public API, for the labextension.

Enabled by the install (``etc/jupyter/jupyter_server_config.d/mlmagic.json``, which
names the package: :func:`mlmagic._jupyter_server_extension_points` points here); the
handlers live under ``{base_url}mlmagic/api/`` (see :mod:`mlmagic.server.handlers`).

The workspace is the one of the directory JupyterLab was started in (its ``root_dir``),
found like a kernel finds its own: ``MLMAGIC_WORKSPACE``, else the nearest ``.mlmagic/``
upwards, else ``.mlmagic/`` in ``root_dir``. ``c.MLMagicServer.workspace`` names another.
So that the panel and the notebooks agree, the server passes its workspace and its base URL
to the kernels it starts (``MLMAGIC_WORKSPACE``, ``MLMAGIC_JUPYTER_BASE_URL``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from traitlets import Bool, Unicode
from traitlets.config import Configurable

from mlmagic.server import studio
from mlmagic.server.computes import compute_handlers
from mlmagic.server.handlers import WorkspaceAccess, handlers
from mlmagic.server.rerun import rerun_handlers
from mlmagic.server.submit import notebook_handlers
from mlmagic.widgets.render import JUPYTER_BASE_URL_VARIABLE
from mlmagic.workspace import find_workspace

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

__all__ = ["MLMagicServer"]


class MLMagicServer(Configurable):
    """Settings of mlmagic's Jupyter server extension (``c.MLMagicServer...``)."""

    workspace = Unicode(
        "",
        help="The workspace folder (.mlmagic) the panel shows; relative paths start at the "
        "server's root_dir. Empty: the workspace of root_dir, found like the kernels find "
        "theirs (MLMAGIC_WORKSPACE, else the nearest .mlmagic upwards, else a new one there).",
    ).tag(config=True)
    share_workspace = Bool(
        True,
        help="Start kernels with MLMAGIC_WORKSPACE set to this workspace, so notebooks in "
        "subfolders use the workspace the panel shows.",
    ).tag(config=True)

    def workspace_path(self, root_dir: str | Path) -> Path:
        """The workspace folder for a server started in ``root_dir``."""
        root = Path(root_dir).expanduser()
        if self.workspace:
            return (root / Path(self.workspace).expanduser()).resolve()
        return find_workspace(root)


def _load_jupyter_server_extension(server_app: ServerApp) -> None:
    """Add the handlers to the server; pass the workspace and base URL on to kernels."""
    settings = MLMagicServer(parent=server_app)
    root = settings.workspace_path(server_app.root_dir)
    if settings.share_workspace:
        # Kernels inherit the server's environment when they start.
        os.environ["MLMAGIC_WORKSPACE"] = str(root)
    # A kernel's widgets link to the full log of a run through this server.
    os.environ[JUPYTER_BASE_URL_VARIABLE] = server_app.base_url
    web_app = server_app.web_app
    base_url, access = web_app.settings["base_url"], WorkspaceAccess(root)
    # The studio's file links open in JupyterLab only where its file browser reaches.
    allow_hidden = bool(getattr(server_app.contents_manager, "allow_hidden", False))
    routes = studio.handlers(base_url, access, server_app.root_dir, allow_hidden)
    routes += notebook_handlers(base_url, access, server_app.root_dir)
    routes += rerun_handlers(base_url, access)
    routes += compute_handlers(base_url, access)
    web_app.add_handlers(".*$", handlers(base_url, access) + routes)
    server_app.log.info("mlmagic: the panel shows the workspace %s", root)
