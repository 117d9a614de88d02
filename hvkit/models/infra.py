"""What a hypervisor reports about its infrastructure: Host, StoragePool, Volume, Network."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import attrs

from ._fields import extra_field, to_frozenset
from .enums import DiskFormat

__all__ = ["Host", "HostMetrics", "Network", "StoragePool", "Volume"]


@attrs.frozen
class Host:
    id: str
    name: str
    cpu_sockets: int
    cpu_cores: int  # physical cores in all sockets
    cpu_threads: int  # logical CPUs
    memory_mib: int
    hypervisor_kind: str
    hypervisor_version: str = ""
    cpu_model: str = ""
    cpu_mhz: int | None = None
    cpu_usage: float | None = None  # 0.0 .. 1.0
    memory_used_mib: int | None = None
    maintenance: bool = False
    connected: bool = True
    hypervisor: str | None = attrs.field(default=None, kw_only=True)
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen
class StoragePool:
    id: str
    name: str
    capacity_bytes: int
    free_bytes: int
    shared: bool = False
    formats: frozenset[DiskFormat] = attrs.field(default=frozenset(), converter=to_frozenset)
    type: str = ""
    host: str | None = None  # None when shared by every host
    active: bool = True
    # the hosts (ids or names) that mount it, where the vendor says (VMware); empty: see shared / host
    hosts: frozenset[str] = attrs.field(default=frozenset(), converter=to_frozenset)
    hypervisor: str | None = attrs.field(default=None, kw_only=True)
    extra: Mapping[str, Any] = extra_field()

    @property
    def used_bytes(self) -> int:
        return self.capacity_bytes - self.free_bytes


@attrs.frozen
class Volume:
    id: str
    name: str
    pool: str
    capacity_bytes: int
    allocation_bytes: int | None = None
    format: DiskFormat | None = None
    path: str | None = None
    backing: str | None = None  # backing volume id for linked clones
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen
class Network:
    id: str
    name: str
    type: str = ""  # bridge, nat, isolated, portgroup, dvportgroup, ...
    bridge: str | None = None
    vlan: int | None = None
    active: bool = True
    host: str | None = None
    hypervisor: str | None = attrs.field(default=None, kw_only=True)
    extra: Mapping[str, Any] = extra_field()


@attrs.frozen
class HostMetrics:
    host: str
    timestamp: dt.datetime
    cpu_usage: float | None = None
    memory_used_mib: int | None = None
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None
