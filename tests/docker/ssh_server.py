"""An ``sshd`` on 127.0.0.1 for tests of engines reached over ``ssh://``.

It runs from a folder of its own (host key, a throwaway client key, its config and its
pid file) on a free port, and each session it opens has ``DOCKER_HOST`` set to the engine
it stands in front of (``SetEnv``), as a remote host's own Docker would be. The client
side is an ``ssh`` wrapper put first on ``PATH`` that adds ``-F`` with the folder's client
config: docker-py and the docker CLI both run ``ssh`` by name, and the user's own
``~/.ssh`` is never touched. :meth:`SshServer.stop` ends the sshd it started (by its pid).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["SshServer"]

_SSHD = "/usr/sbin/sshd"


class SshServer:
    """An sshd the test starts as root, letting in the throwaway key only.

    Parameters
    ----------
    docker_host
        The ``DOCKER_HOST`` of every session (the engine behind this "remote host").
    """

    def __init__(self, docker_host: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mlm-sshd-", dir="/tmp"))
        self.docker_host = docker_host
        self.port = _free_port()
        self.bin = self.folder / "bin"
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def problem() -> str | None:
        """Why an sshd cannot start here, or ``None``."""
        if os.geteuid() != 0:
            return "an sshd that lets root in needs root"
        if not os.access(_SSHD, os.X_OK) or shutil.which("ssh-keygen") is None:
            return "no sshd here: apt-get install openssh-server (scripts/test does)"
        return None

    @property
    def user_host(self) -> str:
        """``root@127.0.0.1:PORT``, as an ``ssh://`` address takes it."""
        return f"root@127.0.0.1:{self.port}"

    def start(self) -> None:
        """Make the keys and configs, start sshd, and return once it accepts."""
        for key in ("host_key", "client_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.folder / key)],
                check=True,
                capture_output=True,
            )
        (self.folder / "authorized_keys").write_text((self.folder / "client_key.pub").read_text())
        (self.folder / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\n"
            f"HostKey {self.folder / 'host_key'}\n"
            f"AuthorizedKeysFile {self.folder / 'authorized_keys'}\n"
            f"PidFile {self.folder / 'sshd.pid'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
            f"SetEnv DOCKER_HOST={self.docker_host}\n"
        )
        (self.folder / "ssh_config").write_text(
            f"Host *\n  IdentityFile {self.folder / 'client_key'}\n  IdentitiesOnly yes\n"
            "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
            "  BatchMode yes\n  LogLevel ERROR\n"
        )
        self.bin.mkdir()
        wrapper = self.bin / "ssh"
        wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {self.folder / "ssh_config"} "$@"\n')
        wrapper.chmod(0o755)
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
        log = open(self.folder / "sshd.log", "wb")
        self._process = subprocess.Popen(
            [_SSHD, "-D", "-e", "-f", str(self.folder / "sshd_config")],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.folder / 'sshd.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("sshd never accepted a connection") from None
                time.sleep(0.2)

    def stop(self) -> None:
        """End the sshd started here (its sessions with it) and remove the folder."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
