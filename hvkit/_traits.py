"""What a backend declares about itself, as data: the core, migration and fleet read it, never a vendor name.

A backend sets ``traits = Traits(...)`` on its class (or on the instance once connected). Everything has a
safe default: a backend that declares nothing takes every disk bus and NIC model, any MAC, and states no
limit beyond the model's own.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .models import DiskBus, DiskFormat, NicModel
from .models.spec import normalize_mac

__all__ = ["Limits", "MacRange", "Traits"]


def _frozen_map(value: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return types.MappingProxyType(dict(value))


def _mac_int(mac: str) -> int:
    return int(normalize_mac(mac).replace(":", ""), 16)


@attrs.frozen
class MacRange:
    """MAC addresses from ``first`` to ``last`` (inclusive), e.g. the range a vendor takes static MACs from."""

    first: str = attrs.field(converter=normalize_mac)
    last: str = attrs.field(converter=normalize_mac)

    def __attrs_post_init__(self) -> None:
        if _mac_int(self.first) > _mac_int(self.last):
            raise ValueError(f"MAC range {self.first}-{self.last} ends before it starts")

    def __contains__(self, mac: object) -> bool:
        return isinstance(mac, str) and _mac_int(self.first) <= _mac_int(mac) <= _mac_int(self.last)

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


@attrs.frozen(hash=False)
class Limits:
    """What one VM may have on this backend; ``None`` (or no entry) means no stated limit.

    :meth:`problems` names each limit a VM breaks; the core raises InvalidSpec with it before any call.
    """

    max_cpus: int | None = None  # vCPUs per VM
    max_memory_mib: int | None = None  # memory per VM
    disks_per_bus: Mapping[DiskBus, int] = attrs.field(factory=dict, converter=_frozen_map)
    max_name_length: int | None = None
    name_pattern: str | None = None  # a regular expression the whole VM name must match
    name_rule: str = ""  # the pattern in words, e.g. "DNS names (letters, digits, '-', '.')"

    def problems(
        self,
        kind: str,
        *,
        name: str | None = None,
        cpus: int | None = None,
        memory_mib: int | None = None,
        buses: Iterable[DiskBus] = (),
    ) -> list[str]:
        """What breaks a limit, one text per limit, each naming it (empty: the VM fits)."""
        out = []
        if cpus is not None and self.max_cpus is not None and cpus > self.max_cpus:
            out.append(f"the {kind} backend gives a VM at most {self.max_cpus} vCPUs (max_cpus); asked for {cpus}")
        if memory_mib is not None and self.max_memory_mib is not None and memory_mib > self.max_memory_mib:
            out.append(
                f"the {kind} backend gives a VM at most {self.max_memory_mib} MiB of memory (max_memory_mib); "
                f"asked for {memory_mib} MiB"
            )
        counts: dict[DiskBus, int] = {}
        for bus in buses:
            counts[bus] = counts.get(bus, 0) + 1
        for bus, count in counts.items():
            most = self.disks_per_bus.get(bus)
            if most is not None and count > most:
                out.append(
                    f"the {kind} backend takes at most {most} {bus.value} disks per VM (disks_per_bus); "
                    f"asked for {count}"
                )
        if name is not None:
            if self.max_name_length is not None and len(name) > self.max_name_length:
                out.append(
                    f"the {kind} backend takes VM names of at most {self.max_name_length} characters "
                    f"(max_name_length); {name[:20]!r}... has {len(name)}"
                )
            if self.name_pattern is not None and not re.fullmatch(self.name_pattern, name):
                rule = self.name_rule or f"names matching {self.name_pattern!r}"
                out.append(f"the {kind} backend takes {rule} as VM names (name_pattern); {name!r} is not one")
        return out


@attrs.frozen(hash=False)
class Traits:
    """What migration, fleet and the core's checks need to know about a backend."""

    # disk buses and NIC models a VM created here can have, and what a disk or NIC gets when the source's
    # is not among them
    disk_buses: frozenset[DiskBus] = frozenset(DiskBus)
    default_disk_bus: DiskBus = DiskBus.VIRTIO
    nic_models: frozenset[NicModel] = frozenset(NicModel)
    default_nic_model: NicModel = NicModel.VIRTIO
    # export_disk / import_disk work by the backend's own means (local files, an SSH copy, a vendor export),
    # not only through VOLUME_DOWNLOAD / VOLUME_CREATE + VOLUME_UPLOAD
    disk_export: bool = False
    disk_import: bool = False
    # formats its volumes are made in, first choice first, when a pool does not say (empty: qcow2, raw)
    disk_formats: tuple[DiskFormat, ...] = ()
    # static MACs it takes; a MAC outside them may be refused (empty: any unicast MAC)
    mac_ranges: tuple[MacRange, ...] = ()
    # its pools' directories are on this machine (an in-process hypervisor): a file it never registered is found there
    pools_are_local: bool = False
    # the vendor's guest tools, which do nothing elsewhere (e.g. "VMware Tools (open-vm-tools)")
    guest_tools: str = ""
    # what a UEFI guest should know when it moves here (empty: the general NVRAM note)
    uefi_note: str = ""
    limits: Limits = Limits()

    def owns_mac(self, mac: str) -> bool:
        """``mac`` lies in one of :attr:`mac_ranges` (always true when none are declared)."""
        return not self.mac_ranges or any(mac in r for r in self.mac_ranges)
