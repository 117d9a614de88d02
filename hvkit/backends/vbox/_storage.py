"""Storage: VirtualBox has no pools, so hvkit shows one, ``default``: the default machine folder, holding
every hard disk medium VirtualBox knows (``list hdds``). Volumes are media, their ids the medium UUIDs."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import PurePosixPath

from hvkit import errors
from hvkit.models import DiskFormat, StoragePool, Volume

from . import _parse
from ._session import Session

__all__ = ["EXTENSIONS", "FORMATS", "POOL", "create_medium", "hdd_blocks", "list_pools", "list_volumes"]

POOL = "default"
FORMATS = {"VDI": DiskFormat.VDI, "VMDK": DiskFormat.VMDK, "VHD": DiskFormat.VHD}
NAMES = {fmt: name for name, fmt in FORMATS.items()}
EXTENSIONS = {DiskFormat.VDI: "vdi", DiskFormat.VMDK: "vmdk", DiskFormat.VHD: "vhd"}
_MIB = 1024 * 1024


def hdd_blocks(session: Session) -> list[dict[str, str]]:
    return [b for b in _parse.key_value_blocks(session.run(["list", "hdds"]), "UUID") if b.get("UUID")]


def capacity(block: dict[str, str]) -> int:
    match = re.match(r"(\d+)\s*MBytes", block.get("Capacity", ""))
    return int(match.group(1)) * _MIB if match else 0


def to_volume(block: dict[str, str]) -> Volume:
    location = block.get("Location", "")
    parent = block.get("Parent UUID", "base")
    return Volume(
        id=block["UUID"].lower(),
        name=PurePosixPath(location).stem,
        pool=POOL,
        capacity_bytes=capacity(block),
        format=FORMATS.get(block.get("Storage format", "")),
        path=location,
        backing=None if parent in ("base", "") else parent.lower(),
        extra={"state": block.get("State", ""), "type": block.get("Type", "")},
    )


def list_pools(session: Session) -> list[StoragePool]:
    folder = session.machine_folder()
    if session.remote:
        out = session.shell(f"mkdir -p {shlex.quote(folder)} && df -Pk {shlex.quote(folder)}").decode()
        fields = out.strip().splitlines()[-1].split()
        total, free = int(fields[1]) * 1024, int(fields[3]) * 1024
    else:
        probe = PurePosixPath(folder)
        while not _exists(str(probe)) and probe != probe.parent:
            probe = probe.parent
        usage = shutil.disk_usage(str(probe))
        total, free = usage.total, usage.free
    return [
        StoragePool(
            id=POOL,
            name=POOL,
            capacity_bytes=total,
            free_bytes=free,
            formats=set(EXTENSIONS),
            type="folder",
            extra={"path": folder},
        )
    ]


def _exists(path: str) -> bool:
    from pathlib import Path

    return Path(path).exists()


def list_volumes(session: Session) -> list[Volume]:
    return [to_volume(b) for b in hdd_blocks(session)]


def get_volume(session: Session, ref: str) -> Volume:
    for vol in list_volumes(session):
        if ref in (vol.id, vol.path):
            return vol
    raise errors.NotFound(f"no volume {ref!r} on this VirtualBox host")


def create_medium(session: Session, path: str, size_bytes: int, fmt: DiskFormat) -> str:
    """createmedium disk; returns the new medium's UUID."""
    if fmt not in NAMES:
        raise errors.InvalidSpec(f"VirtualBox makes disks in VDI, VMDK or VHD, not {fmt.value}")
    out = session.run(
        ["createmedium", "disk", "--filename", path, "--sizebyte", str(size_bytes), "--format", NAMES[fmt]]
    )
    found = re.search(r"UUID: ([0-9a-fA-F-]{36})", out)
    if not found:
        raise errors.BackendError(f"createmedium did not report the new medium's UUID: {out[-200:]!r}")
    return found.group(1).lower()


def close_medium(session: Session, medium: str, *, delete: bool) -> None:
    session.run(["closemedium", "disk", medium] + (["--delete"] if delete else []))


def create_volume(session: Session, name: str, size_bytes: int, fmt: DiskFormat) -> Volume:
    if any(v.name == name for v in list_volumes(session)):
        raise errors.AlreadyExists(f"a volume named {name!r} exists already in pool {POOL!r}")
    path = f"{session.machine_folder()}/{name}.{EXTENSIONS.get(fmt, 'vdi')}"
    return get_volume(session, create_medium(session, path, size_bytes, fmt))
