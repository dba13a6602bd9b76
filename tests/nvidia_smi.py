# ruff: noqa: E501  (the tables are printed at their real width)
"""A stand-in ``nvidia-smi`` for machines without a GPU: it prints what a real one prints.

The outputs below are the formats of real drivers (the table of R545 and later, the
narrower one of R470 to R535, the message of a driver that is not loaded, ``-L`` with a
MIG device, ``--query-gpu ... --format=csv,noheader``), with the versions and GPUs a test
asks for. :func:`install` writes an executable ``nvidia-smi`` into a folder that the test
puts first on ``PATH``, so the code under test runs the command as it would on a GPU
machine.
"""

from __future__ import annotations

import shlex
from pathlib import Path

__all__ = ["NOT_LOADED", "install", "listing", "query", "table"]

#: What nvidia-smi prints (exit status 9) when the kernel driver is not loaded.
NOT_LOADED = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure "
    "that the latest NVIDIA driver is installed and running.\n"
)


def table(driver: str, cuda: str, names: list[str]) -> str:
    """The output of a plain ``nvidia-smi``: a header with the versions, one row per GPU."""
    if int(driver.split(".")[0]) >= 545:
        return _wide_table(driver, cuda, names)
    return _narrow_table(driver, cuda, names)


def _wide_table(driver: str, cuda: str, names: list[str]) -> str:
    rule = "+-----------------------------------------+------------------------+----------------------+"
    lines = [
        "Thu Dec  3 16:02:11 2026       ",
        "+-----------------------------------------------------------------------------------------+",
        f"| NVIDIA-SMI {driver:<22} Driver Version: {driver:<14} CUDA Version: {cuda:<9}|",
        "|-----------------------------------------+------------------------+----------------------+",
        "| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |",
        "| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |",
        "|                                         |                        |               MIG M. |",
        "|=========================================+========================+======================|",
    ]
    for index, name in enumerate(names):
        lines += [
            f"|   {index}  {name:<31}On  |   00000000:{7 + index:02X}:00.0 Off |"
            "                    0 |",
            "| N/A   31C    P0             61W /  400W |       1MiB /  81920MiB |"
            "      0%      Default |",
            "|                                         |                        |"
            "             Disabled |",
            rule,
        ]
    lines += [
        " " * 89,
        "+-----------------------------------------------------------------------------------------+",
        "| Processes:                                                                              |",
        "|  GPU   GI   CI        PID   Type   Process name                              GPU Memory |",
        "|        ID   ID                                                               Usage      |",
        "|=========================================================================================|",
        "|  No running processes found                                                             |",
        "+-----------------------------------------------------------------------------------------+",
    ]
    return "\n".join(lines) + "\n"


def _narrow_table(driver: str, cuda: str, names: list[str]) -> str:
    rule = "+-------------------------------+----------------------+----------------------+"
    lines = [
        "Thu Dec  3 16:02:11 2026       ",
        "+-----------------------------------------------------------------------------+",
        f"| NVIDIA-SMI {driver:<12} Driver Version: {driver:<12} CUDA Version: {cuda:<9}|",
        "|-------------------------------+----------------------+----------------------+",
        "| GPU  Name        Persistence-M| Bus-Id        Disp.A | Volatile Uncorr. ECC |",
        "| Fan  Temp  Perf  Pwr:Usage/Cap|         Memory-Usage | GPU-Util  Compute M. |",
        "|                               |                      |               MIG M. |",
        "|===============================+======================+======================|",
    ]
    for index, name in enumerate(names):
        lines += [
            f"|   {index}  {name:<20}Off  | 00000000:00:{30 + index:02X}.0 Off |"
            "                    0 |",
            "| N/A   29C    P8     9W /  70W |      0MiB / 15109MiB |      0%      Default |",
            "|                               |                      |                  N/A |",
            rule,
        ]
    return "\n".join(lines) + "\n"


def listing(names: list[str], *, mig: bool = False) -> str:
    """The output of ``nvidia-smi -L`` (with a MIG device under GPU 0 when ``mig``)."""
    lines = []
    for index, name in enumerate(names):
        lines.append(
            f"GPU {index}: {name} (UUID: GPU-5f0c8a3e-2b1d-4e6f-8a9c-1d2e3f4a5b{index:02x})"
        )
        if mig and index == 0:
            lines.append(
                "  MIG 3g.40gb     Device  0: (UUID: MIG-1a2b3c4d-5e6f-5a7b-8c9d-0e1f2a3b4c5d)"
            )
    return "\n".join(lines) + "\n"


def query(driver: str, names: list[str]) -> str:
    """The output of ``nvidia-smi --query-gpu=driver_version,name --format=csv,noheader``."""
    return "".join(f"{driver}, {name}\n" for name in names)


def install(
    folder: Path,
    *,
    driver: str = "550.54.15",
    cuda: str = "12.4",
    names: list[str] | None = None,
    loaded: bool = True,
    mig: bool = False,
) -> Path:
    """Write an executable ``nvidia-smi`` into ``folder``; return its path.

    ``loaded=False`` makes every call fail as with no kernel driver (status 9).
    """
    names = ["NVIDIA A100-SXM4-80GB"] if names is None else names
    folder.mkdir(parents=True, exist_ok=True)
    outputs = {
        "table": table(driver, cuda, names),
        "list": listing(names, mig=mig),
        "query": query(driver, names),
    }
    for name, text in outputs.items():
        (folder / f"nvidia-smi.{name}").write_text(text)
    here = shlex.quote(str(folder))
    if loaded:
        body = (
            'case "$1" in\n'
            f"  '') cat {here}/nvidia-smi.table ;;\n"
            f"  -L|--list-gpus) cat {here}/nvidia-smi.list ;;\n"
            f"  --query-gpu=*) cat {here}/nvidia-smi.query ;;\n"
            '  *) echo "Invalid combination of input arguments. Please run '
            "'nvidia-smi -h' for help.\"; exit 2 ;;\n"
            "esac\n"
        )
    else:
        body = f"printf '%s' {shlex.quote(NOT_LOADED)}\nexit 9\n"
    script = folder / "nvidia-smi"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return script
