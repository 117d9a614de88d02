"""Inventory managers: hosts, pools, networks, volumes (and the base every manager shares)."""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ._resolve import find, noop, open_stream, pick_format, ref_text, to_format
from .backend import ProgressFn
from .capabilities import Capability
from .errors import AlreadyExists, InsufficientCapacity, InvalidSpec, InvalidState
from .models import DiskFormat, Host, HostMetrics, Network, StoragePool, Volume
from .models._checks import check_number
from .models.spec import MAX_DISK_GIB, MIN_DISK_GIB, check_name

if TYPE_CHECKING:
    from .hypervisor import Hypervisor

__all__ = ["HostManager", "Manager", "NetworkManager", "PoolManager", "VolumeManager"]


class Manager:
    def __init__(self, hv: Hypervisor) -> None:
        self._hv = hv
        self._b = hv.backend


class HostManager(Manager):
    def list(self) -> list[Host]:
        return self._hv.call("hosts.list", self._b.list_hosts)

    def get(self, ref: Host | str) -> Host:
        found: Host = find(self.list(), ref, "host")
        return found

    def metrics(self, hosts: Iterable[Host | str] | None = None) -> builtins.list[HostMetrics]:
        self._hv.require(Capability.HOST_METRICS, "hosts.metrics")
        chosen = self.list() if hosts is None else [self.get(h) for h in hosts]
        return self._hv.call("hosts.metrics", self._b.host_metrics, chosen)


class PoolManager(Manager):
    def list(self) -> list[StoragePool]:
        return self._hv.call("pools.list", self._b.list_pools)

    def get(self, ref: StoragePool | str) -> StoragePool:
        found: StoragePool = find(self.list(), ref, "storage pool")
        return found


class NetworkManager(Manager):
    def list(self) -> list[Network]:
        return self._hv.call("networks.list", self._b.list_networks)

    def get(self, ref: Network | str) -> Network:
        found: Network = find(self.list(), ref, "network")
        return found


class VolumeManager(Manager):
    def list(self, pool: StoragePool | str | None = None) -> list[Volume]:
        if pool is None:
            pools = self._hv.pools.list()
        else:  # a pool object is listed as it is (no second lookup); a name is looked up
            pools = [pool if isinstance(pool, StoragePool) else self._hv.pools.get(pool)]
        return [v for p in pools for v in self._hv.call("volumes.list", self._b.list_volumes, p)]

    def get(self, ref: Volume | str) -> Volume:
        ref_id = ref_text(ref, Volume, "volume")
        vol: Volume = self._hv.call("volumes.get", self._b.get_volume, ref_id)
        return vol

    def create(
        self, pool: StoragePool | str, name: str, size_gib: float, *, format: DiskFormat | str | None = None
    ) -> Volume:
        """Create an empty volume of ``size_gib`` in ``pool`` (format: the pool's preferred one)."""
        self._hv.require(Capability.VOLUME_CREATE, "volumes.create")
        check_name("volume name", name)
        check_number("volume size_gib", size_gib, MIN_DISK_GIB, MAX_DISK_GIB, low_text="1 MiB (1/1024)")
        fmt = to_format(format)
        target = self._hv.pools.get(pool)
        fmt = pick_format(target, fmt)
        if any(v.name == name for v in self.list(target)):
            raise AlreadyExists(f"volume {name!r} exists in pool {target.name!r}")
        size = -(-int(size_gib * 1024**3) // 1024**2) * 1024**2
        if size > target.free_bytes and fmt is DiskFormat.RAW:
            raise InsufficientCapacity(f"pool {target.name!r} has {target.free_bytes} bytes free; {size} asked")
        vol: Volume = self._hv.run(
            "volumes.create", name, lambda: self._b.create_volume(target, name, size, fmt), wait=True, timeout=None
        )
        return vol

    def delete(self, volume: Volume | str) -> None:
        """Delete a volume; refuses one that a VM uses (delete the VM, or detach it, first)."""
        self._hv.require(Capability.VOLUME_DELETE, "volumes.delete")
        vol = self.get(volume)
        users = [vm.name for vm in self._hv.vms.list(detail=True) if any(d.volume == vol.id for d in vm.disks)]
        if users:
            raise InvalidState(f"volume {vol.name!r} is used by VM(s) {', '.join(users)}")
        self._hv.run("volumes.delete", vol.id, lambda: self._b.delete_volume(vol), wait=True, timeout=None)

    def upload(
        self, volume: Volume | str, source: str | os.PathLike[str] | IO[bytes], *, progress: ProgressFn | None = None
    ) -> Volume:
        """Write raw content (a path or a binary stream) into a volume, as the guest will see it."""
        self._hv.require(Capability.VOLUME_UPLOAD, "volumes.upload")
        if isinstance(source, str | os.PathLike) and not Path(source).is_file():
            raise InvalidSpec(f"{source} is not a file")
        vol = self.get(volume)
        with open_stream(source, "rb") as (stream, size):
            if size is None:
                raise InvalidSpec("upload needs a file or a seekable stream, to know its size")
            if size > vol.capacity_bytes:
                raise InvalidSpec(f"{size} bytes do not fit volume {vol.name!r} of {vol.capacity_bytes} bytes")
            self._hv.run(
                "volumes.upload",
                vol.id,
                lambda: self._b.upload_volume(vol, stream, size, progress or noop),
                wait=True,
                timeout=None,
            )
        return self.get(vol.id)

    def download(
        self, volume: Volume | str, dest: str | os.PathLike[str] | IO[bytes], *, progress: ProgressFn | None = None
    ) -> int:
        """Write a volume's raw content to a path or a binary stream; return the byte count."""
        self._hv.require(Capability.VOLUME_DOWNLOAD, "volumes.download")
        vol = self.get(volume)
        with open_stream(dest, "wb") as (stream, _):
            count: int = self._hv.run(
                "volumes.download",
                vol.id,
                lambda: self._b.download_volume(vol, stream, progress or noop),
                wait=True,
                timeout=None,
            )
        return count
