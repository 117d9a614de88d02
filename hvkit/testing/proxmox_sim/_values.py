"""Values of the simulated cluster: drive strings, sizes, image files (qemu-img), checksums and MACs."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

from ..._images import _qemuimg
from ...errors import BackendError

__all__ = [
    "GiB",
    "PVEError",
    "drive",
    "drive_memory",
    "entries",
    "file_checksum",
    "fmt_size",
    "image_info",
    "is_size",
    "join_drive",
    "mac_for",
    "qemu_img",
    "size_of",
]


GiB = 1024**3


class PVEError(Exception):
    """An API error: HTTP status, PVE's message, and per-parameter errors for 400."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def drive(value: str) -> dict[str, str]:
    """Split a stored drive string (written by the simulator, so already valid)."""
    out: dict[str, str] = {}
    for part in value.split(","):
        key, eq, val = part.partition("=")
        if eq:
            out[key] = val
        elif part:
            out["file"] = part
    return out


def join_drive(values: dict[str, str]) -> str:
    head = values.get("file", "")
    rest = [f"{k}={v}" for k, v in values.items() if k != "file"]
    return ",".join([head, *rest])


def entries(directory: Path) -> list[Path]:
    """The entries of ``directory``; none when it is not there (any more: a concurrent free removed it)."""
    try:
        return list(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def drive_memory(value: str) -> str:
    return value.split(",")[0].replace("current=", "")


def is_size(text: str) -> bool:
    try:
        return float(text) >= 0
    except ValueError:
        return False


def size_of(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": GiB, "T": 1024**4}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(float(text or 0))


def fmt_size(size: int) -> str:
    for unit, mult in (("T", 1024**4), ("G", GiB), ("M", 1024**2), ("K", 1024)):
        if size % mult == 0:
            return f"{size // mult}{unit}"
    return str(size)


def qemu_img(*args: str) -> str:
    """Run qemu-img; its failure is the node's: a PVEError with its message."""
    try:
        return _qemuimg.qemu_img(*args)
    except BackendError as exc:
        raise PVEError(500, str(exc)) from None


def image_info(path: Path) -> dict[str, Any]:
    import json

    info: dict[str, Any] = json.loads(qemu_img("info", "--output=json", "-U", str(path)))
    if info.get("backing-filename"):
        info["parent"] = info["backing-filename"]
    return info


def file_checksum(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def mac_for(vmid: int, index: int) -> str:
    rnd = random.Random(vmid * 100 + index)
    return "BC:24:11:" + ":".join(f"{rnd.randrange(256):02X}" for _ in range(3))
