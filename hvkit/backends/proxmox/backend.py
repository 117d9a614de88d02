"""Proxmox VE driver: proxmoxer's HTTPS backend, UPID tasks, lock retries, one-call inventory."""

from __future__ import annotations

import contextlib
from typing import IO, Any

from ...capabilities import Capability
from ...driver import Backend, DiskImage, Limits, ProgressFn, Task, Traits, VolumeScan
from ...models import (
    VM,
    Console,
    DiskBus,
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
from . import _console, _create, _ha, _inventory, _metrics, _migrate, _recover, _snapshots, _storage, _vms
from ._portability import PORTABILITY_NOTES
from ._session import BUS_LIMIT, ProxmoxSession

__all__ = ["ProxmoxBackend"]


class ProxmoxBackend(Backend):
    """Proxmox VE through its REST API (``proxmox://user@realm@host:8006``): the contract wired to the areas."""

    """Proxmox VE through its REST API (``proxmox://user@realm@host:8006``)."""
    kind = "proxmox"
    portability_notes = PORTABILITY_NOTES
    create_copies_volumes = True  # DiskSpec(volume=...) is created with import-from
    capabilities = frozenset(
        {
            Capability.VM_CREATE,
            Capability.VM_DELETE,
            Capability.VM_POWER,
            Capability.VM_PAUSE,
            Capability.VM_SUSPEND,
            Capability.VM_RECONFIGURE,
            Capability.VM_TEMPLATE,
            Capability.VM_CLONE,
            Capability.VM_LINKED_CLONE,
            Capability.VM_CONSOLE,
            Capability.VM_METRICS,
            Capability.VM_GUEST_IPS,
            Capability.VM_MIGRATE,
            Capability.VM_STORAGE_MIGRATE,
            Capability.UEFI,
            Capability.CLOUD_INIT,
            Capability.SNAPSHOT,
            Capability.SNAPSHOT_MEMORY,
            Capability.HOST_METRICS,
            Capability.VOLUME_DELETE,
        }
    )
    traits = Traits(
        disk_buses=frozenset(BUS_LIMIT),
        default_disk_bus=DiskBus.SCSI,
        disk_export=True,  # an SSH copy (ssh_node) or a vzdump-free read through the storage
        disk_import=True,  # import-from, after a convert where the storage wants one
        uefi_note=(
            "UEFI on Proxmox: the VM gets an OVMF firmware and an EFI vars disk (efidisk0); "
            "boot entries kept in the source's NVRAM are not carried over"
        ),
        limits=Limits(
            disks_per_bus=BUS_LIMIT,  # VM names PVE refuses (not DNS names) are mapped: see _names
        ),
    )

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        self.session = ProxmoxSession(options)

    @property
    def api(self) -> Any:
        return self.session.api

    def connect(self) -> None:
        return self.session.connect()

    def close(self) -> None:
        return self.session.close()

    @property
    def version(self) -> str:
        return self.session.version

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return self.session.errors()

    def follow_task(self, node: str, upid: str, operation: str, target: str, result: Any = None) -> Task:
        return self.session.follow_task(node, upid, operation, target, result)

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

    def create_vm(self, spec: VMSpec) -> Any:
        return _create.create_vm(self.session, spec)

    def delete_vm(self, vm: VM, keep_disks: bool) -> Any:
        return _vms.delete_vm(self.session, vm, keep_disks)

    def start_vm(self, vm: VM) -> Any:
        return _vms.start_vm(self.session, vm)

    def stop_vm(self, vm: VM, force: bool, timeout: float) -> Any:
        return _vms.stop_vm(self.session, vm, force, timeout)

    def reboot_vm(self, vm: VM, force: bool) -> Any:
        return _vms.reboot_vm(self.session, vm, force)

    def pause_vm(self, vm: VM) -> Any:
        return _vms.pause_vm(self.session, vm)

    def resume_vm(self, vm: VM) -> Any:
        return _vms.resume_vm(self.session, vm)

    def suspend_vm(self, vm: VM) -> Any:
        return _vms.suspend_vm(self.session, vm)

    def reconfigure_vm(self, vm: VM, cpus: int | None, memory_mib: int | None) -> Any:
        return _vms.reconfigure_vm(self.session, vm, cpus, memory_mib)

    def clone_vm(self, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> Any:
        return _migrate.clone_vm(self.session, vm, name, linked, host, pool)

    def mark_template(self, vm: VM) -> Task:
        return _vms.mark_template(self.session, vm)

    def migrate_vm(self, vm: VM, host: str | None, pool: str | None, live: bool) -> Any:
        return _migrate.migrate_vm(self.session, vm, host, pool, live)

    def recover_vm(self, vm: VM, host: str) -> Task:
        return _recover.recover_vm(self.session, vm, host)

    def ha_policy(self, vms: list[VM]) -> dict[str, str]:
        return _ha.ha_policy(self.session, vms)

    def console(self, vm: VM) -> Console:
        return _console.console(self.session, vm)

    def guest_ips(self, vm: VM) -> list[str]:
        return _console.guest_ips(self.session, vm)

    def vm_metrics(self, vms: list[VM]) -> list[VMMetrics]:
        return _metrics.vm_metrics(self.session, vms)

    def host_metrics(self, hosts: list[Host]) -> list[HostMetrics]:
        return _metrics.host_metrics(self.session, hosts)

    def rrddata(self, vm: VM, timeframe: str = "hour") -> list[dict[str, Any]]:
        return _metrics.rrddata(self.session, vm, timeframe)

    def list_snapshots(self, vm: VM) -> list[Snapshot]:
        return _snapshots.list_snapshots(self.session, vm)

    def create_snapshot(self, vm: VM, name: str, description: str, memory: bool, quiesce: bool) -> Any:
        return _snapshots.create_snapshot(self.session, vm, name, description, memory, quiesce)

    def revert_snapshot(self, vm: VM, snapshot: Snapshot) -> Any:
        return _snapshots.revert_snapshot(self.session, vm, snapshot)

    def delete_snapshot(self, vm: VM, snapshot: Snapshot, children: bool) -> Any:
        return _snapshots.delete_snapshot(self.session, vm, snapshot, children)

    def list_volumes(self, pool: StoragePool) -> list[Volume]:
        return _storage.list_volumes(self.session, pool)

    def delete_volume(self, volume: Volume) -> Task:
        return _storage.delete_volume(self.session, volume)

    def export_disk(
        self, volume: Volume, workdir: str, progress: ProgressFn, snapshot: Snapshot | None = None
    ) -> DiskImage:
        return _storage.export_disk(self.session, volume, workdir, progress, snapshot)

    def import_disk(
        self, pool: StoragePool, name: str, image: DiskImage, fmt: DiskFormat, workdir: str, progress: ProgressFn
    ) -> Volume:
        return _storage.import_disk(self.session, pool, name, image, fmt, workdir, progress)

    def scan_volume(self, volume: Volume, digests: bool) -> VolumeScan:
        from . import _patch

        return _patch.scan_volume(self.session, volume, digests)

    def patch_volume(self, volume: Volume, patch: DiskImage) -> int:
        from . import _patch

        return _patch.patch_volume(self.session, volume, patch)

    def upload_image(
        self,
        node: str,
        storage: str,
        filename: str,
        source: IO[bytes],
        *,
        content: str = "import",
        checksum: tuple[str, str] | None = None,
        progress: ProgressFn | None = None,
    ) -> Task:
        return _storage.upload_image(
            self.session, node, storage, filename, source, content=content, checksum=checksum, progress=progress
        )
