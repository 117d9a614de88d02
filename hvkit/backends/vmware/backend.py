"""The VMware driver: vCenter (``vcenter://user@vc/Datacenter``) and standalone ESXi (``esxi://root@host``).

Reads go through the PropertyCollector only (see ``_property_collector``); tasks are followed through
``WaitForUpdatesEx`` (see ``_tasks``). Operations that need vCenter (clone, relocate) are dropped from
the capabilities when the server turns out to be a standalone host.
"""

from __future__ import annotations

import contextlib
from typing import IO, Any, ClassVar

from ...capabilities import Capability
from ...driver import Backend, ConnectOptions, Limits, MacRange, ProgressFn, Task, Traits
from ...models import (
    VM,
    Console,
    DiskBus,
    DiskFormat,
    Host,
    HostMetrics,
    Network,
    NicModel,
    Snapshot,
    StoragePool,
    VMMetrics,
    VMSpec,
    Volume,
)
from . import _console, _ha, _inventory, _metrics, _migrate, _recover, _snapshots, _storage, _vms
from ._devices import DISKS_PER_BUS, NIC_MODELS
from ._portability import PORTABILITY_NOTES
from ._session import VCENTER_ONLY, VM_PROPS, VmwareSession

__all__ = ["VM_PROPS", "VmwareBackend"]


class VmwareBackend(Backend):
    """pyvmomi driver for vCenter and ESXi: the Backend contract wired to the vSphere areas."""

    """pyvmomi driver for vCenter and ESXi."""
    kind: ClassVar[str] = "vcenter"
    portability_notes = PORTABILITY_NOTES
    capability_notes: ClassVar[dict[Capability, str]] = dict.fromkeys(
        VCENTER_ONLY, "vCenter only, not on a standalone ESXi"
    )
    capabilities: frozenset[Capability] = frozenset(
        {
            Capability.VM_CREATE,
            Capability.VM_DELETE,
            Capability.VM_POWER,
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
            Capability.SNAPSHOT,
            Capability.SNAPSHOT_MEMORY,
            Capability.HOST_METRICS,
            Capability.VOLUME_CREATE,
            Capability.VOLUME_DELETE,
            Capability.VOLUME_UPLOAD,
            Capability.VOLUME_DOWNLOAD,
        }
    )
    traits = Traits(
        disk_buses=frozenset(DISKS_PER_BUS),
        default_disk_bus=DiskBus.SCSI,
        nic_models=NIC_MODELS,
        default_nic_model=NicModel.VMXNET3,
        disk_formats=(DiskFormat.VMDK,),
        mac_ranges=(MacRange("00:50:56:00:00:00", "00:50:56:3f:ff:ff"),),  # static MACs vSphere takes
        guest_tools="VMware Tools (open-vm-tools)",
        limits=Limits(
            max_cpus=768,  # vSphere 8 configuration maximums
            max_memory_mib=24 * 1024 * 1024,
            disks_per_bus=DISKS_PER_BUS,
            max_name_length=80,
        ),
    )

    def __init__(self, options: ConnectOptions) -> None:
        super().__init__(options)
        self.session = VmwareSession(options, self.capabilities)
        setattr(self, "kind", self.session.kind)  # noqa: B010 - per connection
        self.capabilities = self.session.capabilities

    def connect(self) -> None:
        self.session.connect()
        self.capabilities = self.session.capabilities  # a standalone ESXi behind the URL has no vCenter-only calls

    @property
    def soap_requests(self) -> int:
        """SOAP calls sent on this connection (for benchmarks and diagnostics)."""
        return self.session.soap_requests

    def close(self) -> None:
        return self.session.close()

    @property
    def version(self) -> str:
        return self.session.version

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return self.session.errors()

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

    def delete_vm(self, vm: VM, keep_disks: bool) -> Any:
        return _vms.delete_vm(self.session, vm, keep_disks)

    def start_vm(self, vm: VM) -> Task:
        return _vms.start_vm(self.session, vm)

    def stop_vm(self, vm: VM, force: bool, timeout: float) -> Any:
        return _vms.stop_vm(self.session, vm, force, timeout)

    def reboot_vm(self, vm: VM, force: bool) -> Any:
        return _vms.reboot_vm(self.session, vm, force)

    def suspend_vm(self, vm: VM) -> Task:
        return _vms.suspend_vm(self.session, vm)

    def reconfigure_vm(self, vm: VM, cpus: int | None, memory_mib: int | None) -> Task:
        return _vms.reconfigure_vm(self.session, vm, cpus, memory_mib)

    def clone_vm(self, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> Any:
        return _migrate.clone_vm(self.session, vm, name, linked, host, pool)

    def migrate_vm(self, vm: VM, host: str | None, pool: str | None, live: bool) -> Task:
        return _migrate.migrate_vm(self.session, vm, host, pool, live)

    def recover_vm(self, vm: VM, host: str) -> VM:
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

    def create_volume(self, pool: StoragePool, name: str, size_bytes: int, fmt: DiskFormat) -> Volume:
        return _storage.create_volume(self.session, pool, name, size_bytes, fmt)

    def delete_volume(self, volume: Volume) -> Task:
        return _storage.delete_volume(self.session, volume)

    def upload_volume(self, volume: Volume, source: IO[bytes], size: int, progress: ProgressFn) -> None:
        return _storage.upload_volume(self.session, volume, source, size, progress)

    def download_volume(self, volume: Volume, sink: IO[bytes], progress: ProgressFn) -> int:
        return _storage.download_volume(self.session, volume, sink, progress)

    def mark_template(self, vm: VM) -> None:
        return _vms.mark_template(self.session, vm)

    def import_ovf(
        self, source: str, name: str, *, pool: str | None = None, network: str | None = None, host: str | None = None
    ) -> str:
        return _migrate.import_ovf(self.session, source, name, pool=pool, network=network, host=host)
