"""``Datastore``: a folder of the workspace standing in for Azure's blob storage.

``ws.get_default_datastore()`` is ``<workspace>/datastores/workspaceblobstore``. Files go
in with :meth:`Datastore.upload` and come out with :meth:`Datastore.download`; a
:class:`DataReference` (``datastore.path("mnist").as_mount()``, or ``datastore.as_mount()``)
given as a script argument becomes a read-only data mount of the run (``--data``), and the
script receives the path where it is mounted.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mlmagic.exceptions import MlmagicError, NotFoundError
from mlmagic.run.paths import CONTAINER

if TYPE_CHECKING:
    from mlmagic.azureml.core.workspace import Workspace

__all__ = ["DEFAULT_DATASTORE", "DataReference", "Datastore"]

#: The name of Azure's default datastore, kept so code that names it works.
DEFAULT_DATASTORE = "workspaceblobstore"
_NAME = re.compile(r"[A-Za-z0-9_]{1,255}")


class Datastore:
    """A named folder of the workspace that runs can read.

    Parameters
    ----------
    workspace
        The workspace.
    name
        The datastore's name (letters, digits, ``_``); ``None`` is the default one.
    """

    def __init__(self, workspace: Workspace, name: str | None = None) -> None:
        self.workspace = workspace
        self.name = name or DEFAULT_DATASTORE
        if not _NAME.fullmatch(self.name):
            raise MlmagicError(
                f"{self.name!r} is not a datastore name: use letters, digits and '_'."
            )
        self.datastore_type = "AzureBlob"
        self.container_name = self.name
        self.account_name = "local"

    @property
    def root(self) -> Path:
        """The datastore's folder (made when first used)."""
        folder = self.workspace.mlmagic.path("datastores", self.name)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @classmethod
    def get(cls, workspace: Workspace, datastore_name: str) -> Datastore:
        """An existing datastore.

        Raises
        ------
        NotFoundError
            None of that name has been made (``Datastore.register_azure_blob_container``).
        """
        if datastore_name != DEFAULT_DATASTORE and not (
            workspace.mlmagic.path("datastores", datastore_name).is_dir()
        ):
            raise NotFoundError(
                f"No datastore {datastore_name!r} in this workspace: use "
                "ws.get_default_datastore(), or make one with "
                "Datastore.register_azure_blob_container(ws, name, ...)."
            )
        return cls(workspace, datastore_name)

    @classmethod
    def get_default(cls, workspace: Workspace) -> Datastore:
        """The default datastore (``workspaceblobstore``)."""
        return cls(workspace)

    @classmethod
    def register_azure_blob_container(
        cls, workspace: Workspace, datastore_name: str, *args: object, **kwargs: object
    ) -> Datastore:
        """A new (empty) datastore folder; the account and key arguments are not used."""
        made = cls(workspace, datastore_name)
        made.root  # noqa: B018 (made on first use)
        return made

    register_azure_file_share = register_azure_blob_container

    # -- files ---------------------------------------------------------------------------

    def upload(
        self,
        src_dir: str | Path,
        target_path: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> DataReference:
        """Copy the files of ``src_dir`` to ``target_path`` of the datastore.

        A file that exists there already is kept unless ``overwrite``.
        """
        source = Path(src_dir)
        if not source.is_dir():
            raise MlmagicError(f"upload: {source} is not a folder; upload_files takes files.")
        files = [p for p in sorted(source.rglob("*")) if p.is_file()]
        return self.upload_files(files, source, target_path, overwrite, show_progress)

    def upload_files(
        self,
        files: Iterable[str | Path],
        relative_root: str | Path | None = None,
        target_path: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> DataReference:
        """Copy ``files`` to ``target_path``, each under its path relative to
        ``relative_root`` (its bare name when that is ``None``)."""
        destination = self._inside(target_path)
        count = 0
        for item in files:
            path = Path(item)
            relative = path.relative_to(relative_root) if relative_root else Path(path.name)
            target = destination / relative
            if target.exists() and not overwrite:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            count += 1
            if show_progress:
                print(f"Uploaded {path}, {count} files out of an estimated total of {count}")
        return self.path(target_path)

    def download(
        self,
        target_path: str | Path,
        prefix: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> int:
        """Copy the datastore's files (those under ``prefix``) into ``target_path``,
        keeping their paths; return how many were copied."""
        count = 0
        for path in sorted(self.root.rglob("*")):
            relative = path.relative_to(self.root)
            if not path.is_file() or (prefix and not relative.as_posix().startswith(prefix)):
                continue
            target = Path(target_path) / relative
            if target.exists() and not overwrite:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            count += 1
        if show_progress:
            print(f"Downloaded {count} files to {target_path}")
        return count

    # -- references ----------------------------------------------------------------------

    def path(
        self, path: str | None = None, data_reference_name: str | None = None
    ) -> DataReference:
        """A reference to ``path`` of the datastore (the whole datastore when ``None``)."""
        return DataReference(self, path, data_reference_name)

    def as_mount(self) -> DataReference:
        """The whole datastore, mounted in the run."""
        return self.path().as_mount()

    def as_download(self, path_on_compute: str | None = None) -> DataReference:
        """The whole datastore, given to the run (read-only, like a mount)."""
        return self.path().as_download(path_on_compute)

    def _inside(self, path: str | None) -> Path:
        parts = PurePosixPath(path or "").parts
        if any(part == ".." for part in parts) or (path or "").startswith("/"):
            raise MlmagicError(f"{path!r} leaves the datastore: give a path inside it.")
        return self.root.joinpath(*parts)

    def __repr__(self) -> str:
        return f"Datastore(name={self.name!r}, folder={str(self.root)!r})"


class DataReference:
    """A folder (or file) of a datastore that a run receives as an argument.

    ``str(reference)`` is Azure's placeholder text; as an argument of a
    ``ScriptRunConfig`` or an estimator it becomes the path where the run sees it.
    """

    def __init__(
        self,
        datastore: Datastore,
        path_on_datastore: str | None = None,
        data_reference_name: str | None = None,
        mode: str = "mount",
        path_on_compute: str | None = None,
    ) -> None:
        self.datastore = datastore
        self.path_on_datastore = path_on_datastore
        digest = hashlib.sha1(f"{datastore.name}/{path_on_datastore}".encode()).hexdigest()[:8]
        self.data_reference_name = data_reference_name or f"{datastore.name}_{digest}"
        self.mode = mode
        self.path_on_compute = path_on_compute

    def as_mount(self) -> DataReference:
        """This reference, mounted."""
        return DataReference(self.datastore, self.path_on_datastore, self.data_reference_name)

    def as_download(
        self, path_on_compute: str | None = None, overwrite: bool = False
    ) -> DataReference:
        """This reference, given to the run before it starts (a read-only mount here)."""
        return DataReference(
            self.datastore,
            self.path_on_datastore,
            self.data_reference_name,
            mode="download",
            path_on_compute=path_on_compute,
        )

    @property
    def host_path(self) -> Path:
        """The folder on this machine."""
        return self.datastore._inside(self.path_on_datastore)

    def run_argument(self, target: str) -> tuple[str, str, str]:
        """``(mount name, host folder, the path the script receives)`` on ``target``.

        In a container the folder is mounted at ``/mlmagic/data/NAME``; a local process
        reads the datastore's folder itself.
        """
        name = re.sub(r"[^A-Za-z0-9_-]", "_", self.data_reference_name)
        if not name[:1].isalpha():
            name = f"d{name}"
        host = self.host_path
        if not host.exists():
            raise NotFoundError(
                f"{self.datastore.name}/{self.path_on_datastore or ''} is empty: upload to it "
                "first (datastore.upload(src_dir=..., target_path=...))."
            )
        seen = str(host) if target == "local" else f"{CONTAINER.data}/{name}"
        return name, str(host), seen

    def __str__(self) -> str:
        return f"$AZUREML_DATAREFERENCE_{self.data_reference_name}"

    def __repr__(self) -> str:
        return (
            f"DataReference(datastore={self.datastore.name!r}, "
            f"path={self.path_on_datastore!r}, mode={self.mode!r})"
        )
