"""A second Docker engine beside the first, for tests of how mlmagic picks its engine.

It has its own socket, data, exec root, pid file and bridge, and no iptables rules, so
the first engine and its containers are never touched (``--bridge none`` would delete the
first engine's ``docker0``: see ARCHITECTURE.md, "This machine"). Everything it makes is
removed by :meth:`SecondEngine.stop`: the daemon (by its own pid), the bridge, the folder.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import docker

__all__ = ["SecondEngine"]


class SecondEngine:
    """A dockerd the test starts as root, reached at :attr:`host`."""

    def __init__(self, extra_args: tuple[str, ...] = ()) -> None:
        #: More dockerd options (another --host with its TLS settings).
        self.extra_args = extra_args
        # Short: a unix socket's path has room for about 100 characters.
        self.folder = Path(tempfile.mkdtemp(prefix="mlm-eng2-", dir="/tmp"))
        self.host = f"unix://{self.folder}/docker.sock"
        self.bridge = f"mlm2br{secrets.token_hex(3)}"
        #: The bridge's address on this machine (set by :meth:`start`).
        self.address = ""
        self.log = self.folder / "dockerd.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._bridge_made = False

    @staticmethod
    def problem() -> str | None:
        """Why a second engine cannot start here, or ``None``."""
        if os.geteuid() != 0:
            return "a second Docker engine needs root"
        for tool in ("dockerd", "ip"):
            if shutil.which(tool) is None:
                return f"a second Docker engine needs {tool} on PATH"
        return None

    def start(self) -> docker.DockerClient:
        """Start the daemon and return a client of it once it answers."""
        subnet = _free_subnet()
        _ip("link", "add", "name", self.bridge, "type", "bridge")
        self._bridge_made = True
        _ip("addr", "add", str(subnet), "dev", self.bridge)
        self.address = str(subnet.ip)
        _ip("link", "set", self.bridge, "up")
        command = [
            "dockerd",
            "--host", self.host,
            "--data-root", str(self.folder / "data"),
            "--exec-root", str(self.folder / "exec"),
            "--pidfile", str(self.folder / "dockerd.pid"),
            "--bridge", self.bridge,
            "--iptables=false",
            "--ip6tables=false",
            *self.extra_args,
        ]  # fmt: skip
        with open(self.log, "wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"the second dockerd exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(docker.errors.DockerException):
                # docker-py asks the engine's API version as it is made: made once it answers.
                client = docker.DockerClient(base_url=self.host, timeout=120)
                client.ping()
                return client
            if time.monotonic() > deadline:
                raise RuntimeError(f"the second dockerd never answered: {self.log}")
            time.sleep(0.5)

    def load(self, image: str) -> None:
        """Copy ``image`` from the first engine (there is no registry to pull from)."""
        cli = shutil.which("docker") or "/usr/bin/docker"
        save = subprocess.Popen([cli, "-H", "unix:///var/run/docker.sock", "save", image],
                                stdout=subprocess.PIPE)  # fmt: skip
        assert save.stdout is not None
        loaded = subprocess.run(
            [cli, "-H", self.host, "load", "-q"], stdin=save.stdout, capture_output=True
        )
        save.stdout.close()
        if save.wait() != 0 or loaded.returncode != 0:
            raise RuntimeError(f"loading {image} into the second engine failed: {loaded.stderr!r}")

    def stop(self) -> None:
        """Stop the daemon (its containers first), remove its bridge and its folder."""
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(docker.errors.DockerException):
                client = docker.DockerClient(base_url=self.host, timeout=30)
                for container in client.containers.list(all=True):
                    container.remove(force=True)
            self._process.terminate()
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._bridge_made:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _free_subnet() -> ipaddress.IPv4Interface:
    """A /24 in 10.213.0.0/16 that no interface here uses (first address for the bridge)."""
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    taken = [ipaddress.ip_interface(w).network for w in used.split() if "/" in w and w[0].isdigit()]
    for third in range(secrets.randbelow(200) + 10, 256):
        net = ipaddress.ip_network(f"10.213.{third}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return ipaddress.ip_interface(f"10.213.{third}.1/24")
    raise RuntimeError("no free /24 in 10.213.0.0/16 for the second engine's bridge")
