"""Storage paths (hvkit pools) and the VHD/VHDX files in them (volumes)."""

from __future__ import annotations

import re

from ...errors import InvalidSpec, NotFound
from ...models import DiskFormat, StoragePool, Volume
from . import _convert
from ._session import Session
from ._vms import file_name

__all__ = ["create", "delete", "get", "list_in", "volume_path"]

_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:|\\\\[^\\]+\\[^\\]+)\\")  # C:\... or \\server\share\...


def list_in(s: Session, dirs: list[str]) -> list[Volume]:
    doc = s.run("volume.list", {"Dirs": dirs})
    return [_convert.volume(v, s.pool_name) for v in doc.get("Volumes") or []]


def volume_path(ref: str) -> str:
    """The Windows path a volume id names; NotFound (before any call) for what cannot be one."""
    path = ref.replace("/", "\\")
    if not _WINDOWS_PATH.match(path) or not path.rpartition("\\")[2]:
        raise NotFound(f"no volume {ref!r} on this Hyper-V host (a volume's id is its file's full path)")
    return path


def get(s: Session, ref: str) -> Volume:
    """A volume by its id (its file's path): one listing of that file's folder, a pool or not (a VM's disk may
    lie in a pool's subfolder, as a linked clone's do, and a checkpoint's ``.avhdx`` beside its parent)."""
    path = volume_path(ref)
    folder = path.rpartition("\\")[0]
    for vol in list_in(s, [folder + "\\" if folder.endswith(":") else folder]):
        if vol.id.lower() == path.lower():
            return vol
    raise NotFound(f"no volume {ref!r} on this Hyper-V host")


def create(s: Session, pool: StoragePool, name: str, size_bytes: int, fmt: DiskFormat) -> Volume:
    if fmt not in (DiskFormat.VHDX, DiskFormat.VHD):
        raise InvalidSpec(f"Hyper-V volumes are VHDX or VHD, not {fmt.value}")
    ext = ".vhd" if fmt is DiskFormat.VHD else ".vhdx"
    if file_name(name) != name:
        raise InvalidSpec(f"{name!r} is not a Windows file name")
    directory = s.pool_dir(pool.name)
    path = f"{directory}\\{name if name.lower().endswith(ext) else name + ext}"
    rec = s.run("volume.create", {"Dir": directory, "Path": path, "SizeBytes": size_bytes})
    return _convert.volume(rec, s.pool_name)


def delete(s: Session, volume: Volume) -> None:
    s.run("volume.delete", {"Path": volume.id})
