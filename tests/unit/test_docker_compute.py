"""Docker computes without an engine: addresses, stored settings, CLI flags, and what a
remote run's archive may bring back."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from mlmagic.computes.docker_host import (
    check_docker_address,
    docker_compute,
    endpoint,
    shares_files,
    target_name,
)
from mlmagic.exceptions import EngineError, MlmagicError
from mlmagic.targets.transfer import unpack


@pytest.mark.parametrize(
    ("address", "said"),
    [
        ("http://host:2375", "not a Docker engine's address"),
        ("tcp://host", "needs its port"),
        ("ssh://", "names no host"),
        ("ssh://me:secret@host", "leave the password out"),
        ("tcp://host:port", "port that is not a number"),
        ("unix://", "names no socket"),
    ],
)
def test_bad_addresses_are_one_line(address: str, said: str) -> None:
    with pytest.raises(MlmagicError, match=said):
        check_docker_address(address)


def test_only_this_machines_socket_shares_files_unless_told() -> None:
    assert shares_files(docker_compute("a", "unix:///var/run/docker.sock"))
    assert not shares_files(docker_compute("b", "ssh://me@gpu-box"))
    assert shares_files(docker_compute("c", "ssh://me@gpu-box", shared_path=True))
    assert not shares_files(docker_compute("d", "unix:///x.sock", shared_path=False))
    assert target_name(docker_compute("e", "ssh://me@gpu-box")) == "docker@e"


def test_tls_paths_are_stored_checked_and_given_to_the_cli(tmp_path: Path) -> None:
    for name in ("ca", "cert", "key"):
        (tmp_path / f"{name}.pem").write_text("x")
    compute = docker_compute(
        "box",
        "tcp://host:2376",
        tls_ca=str(tmp_path / "ca.pem"),
        tls_cert=str(tmp_path / "cert.pem"),
        tls_key=str(tmp_path / "key.pem"),
    )
    assert compute.extra["tls_ca"] == str(tmp_path / "ca.pem")
    assert endpoint(compute).cli_flags() == [
        "--host", "tcp://host:2376", "--tlsverify",
        "--tlscacert", str(tmp_path / "ca.pem"),
        "--tlscert", str(tmp_path / "cert.pem"), "--tlskey", str(tmp_path / "key.pem"),
    ]  # fmt: skip
    (tmp_path / "cert.pem").unlink()
    with pytest.raises(EngineError, match="TLS files of the compute 'box' are missing"):
        endpoint(compute)
    with pytest.raises(MlmagicError, match="--tls-cert and --tls-key go together"):
        docker_compute("x", "tcp://host:2376", tls_cert=str(tmp_path / "key.pem"))
    with pytest.raises(MlmagicError, match="for tcp:// engines"):
        docker_compute("x", "ssh://host", tls_ca=str(tmp_path / "ca.pem"))


def _archive(*members: tarfile.TarInfo, data: bytes = b"hi") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member in members:
            if member.isreg():
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            else:
                tar.addfile(member)
    return buffer.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def test_what_comes_back_stays_below_the_run_and_makes_no_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("mine")
    outputs = tmp_path / "outputs"
    archive = _archive(
        _member("outputs", tarfile.DIRTYPE),
        _member("outputs/model.txt"),
        _member("outputs/../../escape.txt"),
        _member("outputs/link", tarfile.SYMTYPE, str(outside)),
        _member("outputs/sub/deep.txt"),
    )
    assert unpack([archive], outputs) == 2
    assert (outputs / "model.txt").read_text() == "hi"
    assert (outputs / "sub" / "deep.txt").read_text() == "hi"
    assert not (outputs / "link").exists() and not (tmp_path / "escape.txt").exists()
    # A link already here is never written through.
    (outputs / "model.txt").unlink()
    (outputs / "model.txt").symlink_to(outside)
    unpack([_archive(_member("outputs/model.txt"))], outputs)
    assert outside.read_text() == "mine"
    # One file asked for lands as the destination itself.
    unpack([_archive(_member("exit.json"), data=b"{}")], tmp_path / "exit.json")
    assert (tmp_path / "exit.json").read_text() == "{}"
