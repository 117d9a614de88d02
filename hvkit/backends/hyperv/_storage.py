"""Storage paths (hvkit pools) and the VHD/VHDX files in them (volumes)."""

from __future__ import annotations

from ...errors import InvalidSpec, NotFound
from ...models import DiskFormat, StoragePool, Volume
from . import _convert
from ._session import Session
from ._vms import file_name

__all__ = ["create", "delete", "get", "list_in"]


def list_in(s: Session, dirs: list[str]) -> list[Volume]:
    doc = s.run("volume.list", {"Dirs": dirs})
    return [_convert.volume(v, s.pool_name) for v in doc.get("Volumes") or []]


def get(s: Session, ref: str) -> Volume:
    for vol in list_in(s, list(s.pool_dirs.values())):
        if vol.id.lower() == ref.lower():
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
