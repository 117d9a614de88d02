"""What an import writes on the target, known by identity: the names and paths a volume takes, and which of
them were there before."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..driver import partial_path
from ..errors import NotFound
from ..hypervisor import Hypervisor
from ..models import StoragePool, Volume
from ._plan import DiskPlan

__all__ = ["files_here", "is_target", "target_of"]

_EXTENSIONS = {"vpc": "vhd"}


def target_of(hv: Hypervisor, pool: StoragePool | None, d: DiskPlan, *, probe: bool = True) -> dict[str, Any]:
    """The identity of what importing ``d`` writes: the pool, the exact names the plan's volume takes on the
    vendors (``NAME``, ``NAME.EXT``; Proxmox: ``import/NAME.qcow2``), its possible files in the pool's directory
    when the target tells it, and (``probe``) which of those volumes and files were there before (never ours)."""
    name = d.target_volume
    ext = _EXTENSIONS.get(d.target_format.value, d.target_format.value)
    names = sorted({name, f"{name}.{ext}", f"{name}.qcow2"})
    folder = str(pool.extra.get("path") or "") if pool is not None else ""
    files = (name, f"{name}.{ext}")
    # the volume's files, and the partial files a backend's import writes before they become the volume
    paths = sorted({str(Path(folder) / n) for n in files} | {str(partial_path(folder, n)) for n in files})
    paths = paths if folder else []
    target: dict[str, Any] = {"pool": d.target_pool, "names": names, "paths": paths, "present": []}
    if probe:
        present = [v.id for v in hv.volumes.list(d.target_pool) if is_target(v, target)]
        present += [p for p in paths if os.path.lexists(p)]
        target["present"] = present
    return target


def is_target(vol: Volume, target: dict[str, Any]) -> bool:
    """Whether ``vol`` is the recorded import target: by its path where both sides know one, else exact names."""
    if vol.path and target.get("paths"):
        return vol.path in target["paths"]
    return vol.name in target["names"] or vol.name.rsplit("/", 1)[-1] in target["names"]


def files_here(hv: Hypervisor, pool: str) -> bool:
    """Whether the target pool's directory is on this machine (:meth:`hvkit.backend.Backend.local_folder`), so a
    file it never registered can be found there."""
    try:
        found = hv.pools.get(pool)
    except NotFound:
        return False
    with hv.translating("local_folder"):
        return hv.backend.local_folder(found) is not None
