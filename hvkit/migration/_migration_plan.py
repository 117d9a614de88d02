"""What a migration plan holds: the disks and NICs as mapped onto the target, and the plan itself
(``print(plan)`` shows it, :meth:`MigrationPlan.run` does it). :func:`hvkit.migration.plan` makes one."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .._units import format_bytes
from ..models import VM, DiskBus, DiskFormat, Firmware, GuestOS, NicModel, PowerState
from ._verify import ALGORITHM

if TYPE_CHECKING:
    from ..hypervisor import Hypervisor
    from ._results import MigrationResult, ProgressArg

__all__ = ["DiskPlan", "MigrationPlan", "NicPlan"]


@attrs.frozen
class DiskPlan:
    """One disk: where it comes from and what it becomes on the target."""

    index: int
    name: str  # the source disk's name
    source_volume: str  # the source volume id
    source_pool: str | None
    size: int  # guest-visible bytes
    allocated: int  # bytes of data to move (estimate from the source's allocation)
    source_format: DiskFormat | None
    source_bus: DiskBus | None
    target_pool: str
    target_format: DiskFormat
    target_bus: DiskBus
    target_volume: str  # the name the target volume gets

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "name": self.name, "source_volume": self.source_volume,
            "source_pool": self.source_pool,
            "size": self.size, "allocated": self.allocated,
            "source_format": self.source_format.value if self.source_format else None,
            "source_bus": self.source_bus.value if self.source_bus else None, "target_pool": self.target_pool,
            "target_format": self.target_format.value, "target_bus": self.target_bus.value,
            "target_volume": self.target_volume,
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DiskPlan:
        return cls(
            d["index"], d["name"], d["source_volume"], d["source_pool"], d["size"], d["allocated"],
            DiskFormat(d["source_format"]) if d["source_format"] else None,
            DiskBus(d["source_bus"]) if d["source_bus"] else None,
            d["target_pool"], DiskFormat(d["target_format"]), DiskBus(d["target_bus"]), d["target_volume"],
        )  # fmt: skip


@attrs.frozen
class NicPlan:
    source_mac: str
    mac: str | None  # kept MAC, or None: the target picks a new one
    source_network: str | None
    network: str
    source_model: NicModel | None
    model: NicModel

    def to_json(self) -> dict[str, Any]:
        return {
            "source_mac": self.source_mac, "mac": self.mac, "source_network": self.source_network,
            "network": self.network, "source_model": self.source_model.value if self.source_model else None,
            "model": self.model.value,
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> NicPlan:
        return cls(
            d["source_mac"], d["mac"], d["source_network"], d["network"],
            NicModel(d["source_model"]) if d["source_model"] else None, NicModel(d["model"]),
        )  # fmt: skip


@attrs.frozen(eq=False)
class MigrationPlan:
    """What a migration will do. ``print(plan)`` shows it; :meth:`run` does it."""

    source: Hypervisor = attrs.field(repr=False)
    target: Hypervisor = attrs.field(repr=False)
    vm: VM  # the source VM as read when planning
    name: str  # the target VM's name
    cpus: int
    memory_mib: int
    firmware: Firmware
    guest_os: GuestOS
    disks: tuple[DiskPlan, ...]
    nics: tuple[NicPlan, ...]
    problems: tuple[str, ...]
    warnings: tuple[str, ...]
    power_off: bool = False  # shut the source down first (the user allows it)
    snapshot: bool = False  # export a snapshot taken now; the source keeps running
    verify: bool = True
    notes: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def bytes_to_move(self) -> int:
        return sum(d.allocated for d in self.disks)

    @property
    def steps(self) -> list[str]:
        out = []
        if self.vm.power_state is not PowerState.STOPPED:
            if self.snapshot:
                out.append(f"take snapshot of {self.vm.name!r} on the source (it keeps running)")
            elif self.power_off:
                out.append(f"shut down {self.vm.name!r} on the source")
        for d in self.disks:
            conv = f"{(d.source_format or DiskFormat.RAW).value} -> {d.target_format.value}"
            out.append(
                f"disk {d.name}: export {format_bytes(d.allocated)} of {format_bytes(d.size)}, checksum, "
                f"convert {conv}, "
                f"import as {d.target_volume!r} into pool {d.target_pool!r}"
                + (", verify on the target" if self.verify else "")
            )
        out.append(f"create VM {self.name!r} on the target ({self.target.kind})")
        out.append(f"start {self.name!r} on the target (if asked) and wait until it runs")
        if self.snapshot and self.vm.power_state is not PowerState.STOPPED:
            out.append("delete the snapshot taken on the source")
        return out

    def __str__(self) -> str:
        lines = [
            f"Migration of VM {self.vm.name!r}: {self.source.kind} ({self.source.url}) -> "
            f"{self.target.kind} ({self.target.url}) as {self.name!r}",
            f"  cpus {self.cpus}, memory {self.memory_mib} MiB, firmware {self.firmware.value}, "
            f"guest OS {self.guest_os.value}",
        ]
        for d in self.disks:
            lines.append(
                f"  disk {d.name}: {format_bytes(d.size)} ({format_bytes(d.allocated)} allocated), "
                f"{(d.source_format.value if d.source_format else '?')}/{d.source_bus.value if d.source_bus else '?'} "
                f"in {d.source_pool!r} -> {d.target_format.value}/{d.target_bus.value} in {d.target_pool!r}"
            )
        for n in self.nics:
            lines.append(
                f"  nic {n.source_mac}: network {n.source_network!r} -> {n.network!r}, "
                f"{n.source_model.value if n.source_model else '?'} -> {n.model.value}, "
                f"MAC {'kept' if n.mac else 'new'}"
            )
        lines.append(f"  bytes to move: {format_bytes(self.bytes_to_move)}")
        lines.append("Steps:")
        lines += [f"  {i}. {s}" for i, s in enumerate(self.steps, 1)]
        lines.append("Problems:" if self.problems else "Problems: none")
        lines += [f"  - {p}" for p in self.problems]
        lines.append("Warnings:" if self.warnings else "Warnings: none")
        lines += [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """What a journal keeps of the plan (no secrets: URLs without passwords)."""
        return {
            "vm_id": self.vm.id, "vm_name": self.vm.name, "name": self.name,
            "source": {"kind": self.source.kind, "url": self.source.url},
            "target": {"kind": self.target.kind, "url": self.target.url},
            "source_power": self.vm.power_state.value, "cpus": self.cpus, "memory_mib": self.memory_mib,
            "firmware": self.firmware.value, "guest_os": self.guest_os.value,
            "disks": [d.to_json() for d in self.disks], "nics": [n.to_json() for n in self.nics],
            "power_off": self.power_off, "snapshot": self.snapshot, "verify": self.verify, "notes": self.notes,
            "warnings": list(self.warnings),
        }  # fmt: skip

    def run(
        self,
        progress: ProgressArg = None,
        *,
        start: bool = False,
        journal_dir: str | os.PathLike[str] | None = None,
        parallel: int = 2,
        on_error: str = "rollback",
        start_timeout: float = 300.0,
        checksum: str = ALGORITHM,
    ) -> MigrationResult:
        """Do the migration; see :func:`hvkit.migration.run`."""
        from ._run import run

        return run(self, progress=progress, start=start, journal_dir=journal_dir, parallel=parallel,
                   on_error=on_error, start_timeout=start_timeout, checksum=checksum)  # fmt: skip
