"""SimBackend: an in-process reference hypervisor, the embedded default (``sim://`` / ``sim://NAME``).

Volumes are real image files made with qemu-img; snapshots really keep and restore disk data;
tasks take time and report progress; faults can be injected (``hv.backend.faults``).
CPU, memory, disk and network counters come from a load model (``VMSpec.extra["sim.load"]``, 0..1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from ...capabilities import Capability
from ...driver import Backend, Event, ProgressFn, Task, Traits
from ...models import (
    VM,
    Console,
    DiskFormat,
    Host,
    HostMetrics,
    Network,
    Snapshot,
    StoragePool,
    VMMetrics,
    VMSpec,
    Volume,
)
from . import _console, _inventory, _metrics, _migrate, _recover, _snapshots, _storage, _vms
from ._portability import PORTABILITY_NOTES
from ._session import SimSession
from ._world import World

__all__ = ["SimBackend"]


class SimBackend(Backend):
    """The Backend contract wired to the sim areas; each call goes to its area with this connection's session."""

    kind = "sim"
    capabilities = frozenset(Capability)
    portability_notes = PORTABILITY_NOTES
    traits = Traits(disk_export=True, disk_import=True, pools_are_local=True)  # every bus and NIC model; local files

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        self.session = SimSession(options)

    @property
    def world(self) -> World:
        return self.session.world

    @property
    def task_delay(self) -> float:
        return self.session.task_delay

    @property
    def faults(self) -> Any:
        return self.session.faults

    @property
    def version(self) -> str:
        return self.session.version

    def connect(self) -> None:
        return self.session.connect()

    def list_hosts(self) -> list[Host]:
        return _inventory.list_hosts(self.session)

    def list_pools(self) -> list[StoragePool]:
        return _inventory.list_pools(self.session)

    def list_networks(self) -> list[Network]:
        return _inventory.list_networks(self.session)

    def list_vms(self, detail: bool = False) -> list[VM]:
        return _vms.list_vms(self.session, detail)

    def get_vm(self, ref: str) -> VM:
        return _vms.get_vm(self.session, ref)

    def create_vm(self, spec: VMSpec) -> Task:
        return _vms.create_vm(self.session, spec)

    def delete_vm(self, vm: VM, keep_disks: bool) -> Task:
        return _vms.delete_vm(self.session, vm, keep_disks)

    def start_vm(self, vm: VM) -> Task:
        return _vms.start_vm(self.session, vm)

    def stop_vm(self, vm: VM, force: bool, timeout: float) -> Task:
        return _vms.stop_vm(self.session, vm, force, timeout)

    def reboot_vm(self, vm: VM, force: bool) -> Task:
        return _vms.reboot_vm(self.session, vm, force)

    def pause_vm(self, vm: VM) -> Task:
        return _vms.pause_vm(self.session, vm)

    def resume_vm(self, vm: VM) -> Task:
        return _vms.resume_vm(self.session, vm)

    def suspend_vm(self, vm: VM) -> Task:
        return _vms.suspend_vm(self.session, vm)

    def set_guest_ignores_shutdown(self, vm: VM, ignore: bool = True) -> None:
        return _vms.set_guest_ignores_shutdown(self.session, vm, ignore)

    def crash(self, vm: VM) -> None:
        return _vms.crash(self.session, vm)

    def set_maintenance(self, host: str, on: bool = True) -> None:
        return _vms.set_maintenance(self.session, host, on)

    def set_host_down(self, host: str, down: bool = True) -> None:
        """Simulate a host failure (``down=True``: unreachable, its VMs not running) or its return."""
        return _recover.set_host_down(self.session, host, down)

    def recover_vm(self, vm: VM, host: str) -> Task:
        return _recover.recover_vm(self.session, vm, host)

    def ha_policy(self, vms: list[VM]) -> dict[str, str]:
        return _recover.ha_policy(self.session, vms)

    def reconfigure_vm(self, vm: VM, cpus: int | None, memory_mib: int | None) -> Task:
        return _vms.reconfigure_vm(self.session, vm, cpus, memory_mib)

    def mark_template(self, vm: VM) -> Task:
        return _vms.mark_template(self.session, vm)

    def clone_vm(self, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> Task:
        return _migrate.clone_vm(self.session, vm, name, linked, host, pool)

    def migrate_vm(self, vm: VM, host: str | None, pool: str | None, live: bool) -> Task:
        return _migrate.migrate_vm(self.session, vm, host, pool, live)

    def console(self, vm: VM) -> Console:
        return _console.console(self.session, vm)

    def guest_ips(self, vm: VM) -> list[str]:
        return _console.guest_ips(self.session, vm)

    def vm_metrics(self, vms: list[VM]) -> list[VMMetrics]:
        return _metrics.vm_metrics(self.session, vms)

    def host_metrics(self, hosts: list[Host]) -> list[HostMetrics]:
        return _metrics.host_metrics(self.session, hosts)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        return _metrics.subscribe(self.session, callback)

    def list_snapshots(self, vm: VM) -> list[Snapshot]:
        return _snapshots.list_snapshots(self.session, vm)

    def list_snapshots_many(self, vms: list[VM]) -> dict[str, list[Snapshot]]:
        return _snapshots.list_snapshots_many(self.session, vms)

    def create_snapshot(self, vm: VM, name: str, description: str, memory: bool, quiesce: bool) -> Task:
        return _snapshots.create_snapshot(self.session, vm, name, description, memory, quiesce)

    def revert_snapshot(self, vm: VM, snapshot: Snapshot) -> Task:
        return _snapshots.revert_snapshot(self.session, vm, snapshot)

    def delete_snapshot(self, vm: VM, snapshot: Snapshot, children: bool) -> Task:
        return _snapshots.delete_snapshot(self.session, vm, snapshot, children)

    def list_volumes(self, pool: StoragePool) -> list[Volume]:
        return _storage.list_volumes(self.session, pool)

    def get_volume(self, ref: str) -> Volume:
        return _storage.get_volume(self.session, ref)

    def local_path(self, volume: Volume) -> str | None:
        return _storage.local_path(self.session, volume)

    def create_volume(self, pool: StoragePool, name: str, size_bytes: int, fmt: DiskFormat) -> Volume:
        return _storage.create_volume(self.session, pool, name, size_bytes, fmt)

    def delete_volume(self, volume: Volume) -> None:
        return _storage.delete_volume(self.session, volume)

    def create_linked_volume(self, pool: StoragePool, name: str, base: Volume) -> Volume:
        return _storage.create_linked_volume(self.session, pool, name, base)

    def upload_volume(self, volume: Volume, source: IO[bytes], size: int, progress: ProgressFn) -> None:
        return _storage.upload_volume(self.session, volume, source, size, progress)

    def download_volume(self, volume: Volume, sink: IO[bytes], progress: ProgressFn) -> int:
        return _storage.download_volume(self.session, volume, sink, progress)
