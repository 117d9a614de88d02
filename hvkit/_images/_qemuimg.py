"""Thin helpers around the qemu-img command (image create, info, convert)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..errors import BackendError, InvalidSpec

__all__ = ["convert", "create", "info", "qemu_img"]


def qemu_img(*args: str, timeout: float | None = None) -> str:
    """Run qemu-img and return its output; a failure raises BackendError with its message.

    ``timeout`` (seconds) defaults to a day for ``convert`` (a disk of any size) and 10 minutes otherwise.
    """
    exe = shutil.which("qemu-img")
    if exe is None:
        raise BackendError("qemu-img is not installed (Debian/Ubuntu: apt-get install qemu-utils)")
    if timeout is None:
        timeout = 24 * 3600.0 if args and args[0] == "convert" else 600.0
    try:
        proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise BackendError(f"qemu-img {args[0]} did not finish in {timeout:g} s") from None
    if proc.returncode != 0:
        raise BackendError(f"qemu-img {args[0]} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def create(
    path: Path, fmt: str, size_bytes: int, *, backing: Path | None = None, backing_fmt: str | None = None
) -> None:
    """Create the image file ``path`` in ``fmt`` (qemu-img's name) of ``size_bytes``, over ``backing`` if given."""
    args = ["create", "-q", "-f", fmt]
    if backing is not None:
        args += ["-b", str(backing), "-F", backing_fmt or "qcow2"]
    args += [str(path), str(size_bytes)]
    qemu_img(*args)


def info(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(qemu_img("info", "--output=json", "-U", str(path)))
    return data


def convert(src: Path, src_fmt: str, dst: Path, dst_fmt: str, *, existing: bool = False) -> None:
    """Convert ``src`` to ``dst``; sparse (holes stay holes). ``existing`` writes into ``dst`` in place."""
    if src_fmt == "vhd" or dst_fmt == "vhd":
        raise InvalidSpec("qemu-img calls the VHD format 'vpc'")
    args = ["convert", "-q", "-f", src_fmt, "-O", dst_fmt]
    if existing:
        args.append("-n")
    qemu_img(*args, str(src), str(dst))
