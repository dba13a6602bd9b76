"""A real JupyterLab and a real browser, for the e2e tests and ``benchmarks/bench_widget.py``.

:class:`JupyterLab` runs ``jupyter lab`` as a child process on 127.0.0.1, on a free port,
with a random token, in a folder of its own, and stops it by its PID. :func:`chromium`
drives Debian's Chromium (``/usr/bin/chromium``) headless through Playwright; Playwright
never downloads a browser here. The helpers type and run notebook cells as a person does.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "JupyterLab",
    "built_labextension",
    "chromium",
    "chromium_problem",
    "install_problem",
    "new_notebook",
    "run_cell",
]

#: Debian's Chromium (``apt-get install -y chromium``).
CHROMIUM = os.environ.get("MLMAGIC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# JupyterLab's settings for a quiet, repeatable session: no news or update checks, no
# rename dialog on the first save of an untitled notebook.
_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {
        "renameUntitledFileOnSave": False,
    },
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class JupyterLab:
    """``jupyter lab`` serving ``root`` on 127.0.0.1, for one test session.

    Parameters
    ----------
    root
        The folder JupyterLab starts in (its ``root_dir``); mlmagic's workspace is made
        there by the first notebook that needs one.
    state
        A folder for JupyterLab's settings, workspaces and runtime files, and its log
        (``jupyterlab.log``).
    python
        The interpreter of the environment whose JupyterLab (and kernel) runs: this
        process's by default, another for another JupyterLab version.
    """

    def __init__(self, root: Path, state: Path, python: str | Path = sys.executable) -> None:
        self.root = root
        self.state = state
        self.python = str(python)
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = state / "jupyterlab.log"
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        """The URL of ``path`` (like ``/lab``), carrying the token."""
        sep = "&" if "?" in path else "?"
        return f"{self.base}{path}{sep}token={self.token}"

    def start(self, timeout: float = 90) -> None:
        """Start the server; return once its API answers (else raise, with its log)."""
        settings = self.state / "settings"
        for name, values in _SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = dict(os.environ)
        env.pop("MLMAGIC_WORKSPACE", None)  # the server's root_dir decides, as for a person
        env.update(
            JUPYTERLAB_SETTINGS_DIR=str(settings),
            JUPYTERLAB_WORKSPACES_DIR=str(self.state / "workspaces"),
            JUPYTER_RUNTIME_DIR=str(self.state / "runtime"),
            DOCKER_BUILDKIT="1",
            PYTHONUNBUFFERED="1",
            # The environment's own tools first (the kernel's python among them).
            PATH=f"{Path(self.python).parent}{os.pathsep}{env.get('PATH', '')}",
        )
        command = [
            self.python,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # CI containers run as root
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({self.process.returncode}):\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url("/api/status"), timeout=5) as answer:
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"JupyterLab did not answer in {timeout:g} s:\n{self.log()}")

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM, which shuts its kernels down; then SIGKILL)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def wait_for_kernel(self, path: str, timeout: float = 60) -> None:
        """Wait until the kernel of the notebook at ``path`` is idle and a browser tab is
        connected to it (cells run before that are lost)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url("/api/sessions"), timeout=10) as answer:
                    sessions = json.loads(answer.read())
            except (OSError, urllib.error.URLError):
                # A server busy starting the kernel can be slow to answer: ask again.
                time.sleep(0.3)
                continue
            for session in sessions:
                kernel = session.get("kernel") or {}
                if (
                    session.get("path") == path
                    and kernel.get("execution_state") == "idle"
                    and kernel.get("connections", 0) > 0
                ):
                    return
            time.sleep(0.3)
        raise RuntimeError(f"The kernel of {path} is not ready after {timeout:g} s.")

    def app_version(self) -> str:
        """The JupyterLab version the server gives its pages (``appVersion``)."""
        with urllib.request.urlopen(self.url("/lab"), timeout=30) as answer:
            page = answer.read().decode()
        found = re.search(r'"appVersion":\s*"([^"]+)"', page)
        if not found:
            raise RuntimeError("JupyterLab's page carries no appVersion")
        return found.group(1)

    def log(self, chars: int = 6000) -> str:
        """The end of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> JupyterLab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def built_labextension() -> Path | None:
    """mlmagic's built labextension: this checkout's build, else the installed one."""
    from jupyter_core.paths import jupyter_path

    own = Path(__file__).resolve().parents[2] / "mlmagic" / "labextension"
    folders = [own, *(Path(f) / "mlmagic" for f in jupyter_path("labextensions"))]
    return next((f.resolve() for f in folders if (f / "package.json").is_file()), None)


def install_problem(lab: JupyterLab) -> str | None:
    """Why mlmagic's extensions are not there for a person, or ``None``: the prebuilt
    labextension among those the server gives its pages, and the server extension
    answering."""
    with urllib.request.urlopen(lab.url("/lab"), timeout=30) as answer:
        page = answer.read().decode()
    if not re.search(r'"name":\s*"mlmagic"', page):
        return (
            "mlmagic's labextension is not among JupyterLab's extensions: "
            "`pip install -e .` builds it (Node comes from PyPI)"
        )
    try:
        with urllib.request.urlopen(lab.url("/mlmagic/api/workspace"), timeout=10):
            return None
    except (OSError, urllib.error.URLError) as exc:
        return f"mlmagic's server extension does not answer ({exc}): is it enabled?"


def chromium_problem() -> str | None:
    """Why the browser tier cannot run here, or ``None``."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[test]')"
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright's ``Browser``), closed at the end."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def new_notebook(page: Any, lab: JupyterLab) -> str:
    """Open JupyterLab afresh, make a notebook from the launcher's Python card, wait for
    its kernel; return the notebook's path."""
    page.goto(lab.url("/lab?reset"))  # a fresh layout, with the launcher open
    card = page.locator('.jp-LauncherCard[data-category="Notebook"]').first
    card.click(timeout=60_000)
    page.wait_for_url("**/lab/tree/*.ipynb", timeout=30_000)
    path = page.url.split("/lab/tree/", 1)[1].split("?")[0]
    lab.wait_for_kernel(path)
    return path


def run_cell(page: Any, code: str, *, timeout: float = 60) -> Any:
    """Type ``code`` into the last cell, run it with Shift+Enter, wait until it is done.

    Returns the cell's locator. Done means its prompt shows its execution count.
    """
    from playwright.sync_api import expect

    cells = page.locator(".jp-NotebookPanel:visible .jp-CodeCell")
    # Pinned by position: running the last cell adds a new one after it.
    cell = cells.nth(cells.count() - 1)
    editor = cell.locator(".cm-content")
    editor.click()
    page.keyboard.insert_text(code)
    expect(editor).to_contain_text(code.splitlines()[0])
    page.keyboard.press("Shift+Enter")
    prompt = cell.locator(".jp-InputPrompt")
    expect(prompt).not_to_have_text("[ ]:", timeout=10_000)  # queued or running: [*]
    expect(prompt).to_have_text(re.compile(r"\[\d+\]"), timeout=timeout * 1000)
    return cell
