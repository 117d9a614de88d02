"""KvmBackend: the hvkit driver for KVM/QEMU (and other libvirt drivers) through libvirt-python."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import IO, Any

import libvirt

from ...driver import Backend, ConnectOptions, DiskImage, Event, ProgressFn, Traits
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
from . import (
    _backup,
    _clone,
    _cluster,
    _console,
    _definitions,
    _domxml,
    _imports,
    _inventory,
    _metrics,
    _recover,
    _snapshots,
    _storage,
    _vms,
)
from ._peers import Peers
from ._portability import PORTABILITY_NOTES
from ._session import ALL, KvmSession

__all__ = ["KvmBackend"]


@_cluster.clustered  # with the option peers: one cluster, each VM call sent to its daemon
class KvmBackend(Backend):
    """KVM/QEMU through libvirt. Options: ``virt_type`` (kvm | qemu), ``vnc_listen``, ``uri``; for a cluster
    ``peers``, and for restart after a host failure ``definitions`` and ``shared_pools`` (``_recover``)."""

    kind = "kvm"
    capabilities = ALL
    portability_notes = PORTABILITY_NOTES
    traits = Traits(
        disk_buses=_domxml.SUPPORTED_BUSES,
        disk_export=True,  # local_path: the volume files of this machine's libvirtd
        disk_import=True,
        disk_formats=(DiskFormat.QCOW2, DiskFormat.RAW),
    )

    def __init__(self, options: ConnectOptions) -> None:
        super().__init__(options)
        self.session = KvmSession(self, options)

    @property
    def peers(self) -> Peers:
        return self.session.peers

    def connect(self) -> None:
        self.session.connect()
        self.capabilities = self.session.capabilities  # the test driver and hosts without OVMF offer less

    @property
    def conn(self) -> libvirt.virConnect:
        return self.session.conn

    @property
    def uri(self) -> str:
        return self.session.uri

    @property
    def virt_type(self) -> str:
        return self.session.virt_type

    @property
    def host_id(self) -> str:
        return self.session.host_id

    @property
    def host_name(self) -> str:
        return self.session.host_name

    def close(self) -> None:
        return self.session.close()

    @property
    def version(self) -> str:
        return self.session.version

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return self.session.errors()

    def domain(self, vm: VM | str) -> libvirt.virDomain:
        return self.session.domain(vm)

    def volume_at(self, path: str) -> libvirt.virStorageVol | None:
        return self.session.volume_at(path)

    def list_hosts(self) -> list[Host]:
        return _inventory.list_hosts(self.session)

    def list_pools(self) -> list[StoragePool]:
        return _recover.mark_shared(self, _inventory.list_pools(self.session))

    def list_networks(self) -> list[Network]:
        return _inventory.list_networks(self.session)

    def list_vms(self, detail: bool = False) -> list[VM]:
        return _vms.list_vms(self.session, detail)

    def get_vm(self, ref: str) -> VM:
        return _vms.get_vm(self.session, ref)

    def create_vm(self, spec: VMSpec) -> VM:
        vm = _vms.create_vm(self.session, spec)
        _definitions.touched(self, vm.id)  # with the option definitions: kept at once
        return vm

    def delete_vm(self, vm: VM, keep_disks: bool) -> None:
        _vms.delete_vm(self.session, vm, keep_disks)
        _definitions.touched(self, vm.id)

    def start_vm(self, vm: VM) -> None:
        _vms.start_vm(self.session, vm)
        _definitions.touched(self, vm.id)

    def stop_vm(self, vm: VM, force: bool, timeout: float) -> None:
        _vms.stop_vm(self.session, vm, force, timeout)
        _definitions.touched(self, vm.id)

    def reboot_vm(self, vm: VM, force: bool) -> None:
        return _vms.reboot_vm(self.session, vm, force)

    def pause_vm(self, vm: VM) -> None:
        return _vms.pause_vm(self.session, vm)

    def resume_vm(self, vm: VM) -> None:
        return _vms.resume_vm(self.session, vm)

    def suspend_vm(self, vm: VM) -> None:
        _vms.suspend_vm(self.session, vm)
        _definitions.touched(self, vm.id)

    def reconfigure_vm(self, vm: VM, cpus: int | None, memory_mib: int | None) -> None:
        _vms.reconfigure_vm(self.session, vm, cpus, memory_mib)
        _definitions.touched(self, vm.id)

    def recover_vm(self, vm: VM, host: str) -> VM:
        return _recover.recover_vm(self, vm, host)

    def clone_vm(self, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> VM:
        clone = _clone.clone_vm(self.session, vm, name, linked, host, pool)
        _definitions.touched(self, clone.id)
        return clone

    def migrate_vm(self, vm: VM, host: str | None, pool: str | None, live: bool) -> Any:
        return _clone.migrate_vm(self.session, vm, host, pool, live)

    def console(self, vm: VM) -> Console:
        return _console.console(self.session, vm)

    def guest_ips(self, vm: VM) -> list[str]:
        return _console.guest_ips(self.session, vm)

    def read_serial(self, vm: VM) -> Callable[[], str]:
        return _console.read_serial(self.session, vm)

    def vm_metrics(self, vms: list[VM]) -> list[VMMetrics]:
        return _metrics.vm_metrics(self.session, vms)

    def host_metrics(self, hosts: list[Host]) -> list[HostMetrics]:
        return _metrics.host_metrics(self.session, hosts)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        return _metrics.subscribe(self.session, callback)

    def list_snapshots(self, vm: VM) -> list[Snapshot]:
        return _snapshots.list_snapshots(self.session, vm)

    def create_snapshot(self, vm: VM, name: str, description: str, memory: bool, quiesce: bool) -> Snapshot:
        return _snapshots.create_snapshot(self.session, vm, name, description, memory, quiesce)

    def revert_snapshot(self, vm: VM, snapshot: Snapshot) -> None:
        return _snapshots.revert_snapshot(self.session, vm, snapshot)

    def delete_snapshot(self, vm: VM, snapshot: Snapshot, children: bool) -> None:
        return _snapshots.delete_snapshot(self.session, vm, snapshot, children)

    def list_volumes(self, pool: StoragePool) -> list[Volume]:
        return _storage.list_volumes(self.session, pool)

    def get_volume(self, ref: str) -> Volume:
        return _storage.get_volume(self.session, ref)

    def create_volume(self, pool: StoragePool, name: str, size_bytes: int, fmt: DiskFormat) -> Volume:
        return _storage.create_volume(self.session, pool, name, size_bytes, fmt)

    def delete_volume(self, volume: Volume) -> None:
        return _storage.delete_volume(self.session, volume)

    def create_linked_volume(self, pool: StoragePool, name: str, base: Volume) -> Volume:
        return _storage.create_linked_volume(self.session, pool, name, base)

    def upload_volume(self, volume: Volume, source: IO[bytes], size: int, progress: ProgressFn) -> Volume:
        return _storage.upload_volume(self.session, volume, source, size, progress)

    def download_volume(self, volume: Volume, sink: IO[bytes], progress: ProgressFn) -> int:
        return _storage.download_volume(self.session, volume, sink, progress)

    def local_path(self, volume: Volume) -> str | None:
        return _storage.local_path(self.session, volume)

    def local_folder(self, pool: StoragePool) -> str | None:
        return _imports.local_folder(self.session, pool)

    def import_disk(
        self, pool: StoragePool, name: str, image: DiskImage, fmt: DiskFormat, workdir: str, progress: ProgressFn
    ) -> Volume:
        return _imports.import_disk(self.session, self, pool, name, image, fmt, workdir, progress)

    def track_changes(self, vm: VM, checkpoint: str) -> None:
        return _backup.track_changes(self.session, vm, checkpoint)

    def changed_extents(self, vm: VM, volume: Volume, since: str, workdir: str) -> list[tuple[int, int]]:
        return _backup.changed_extents(self.session, vm, volume, since, workdir)

    def untrack_changes(self, vm: VM, checkpoint: str) -> None:
        return _backup.untrack_changes(self.session, vm, checkpoint)
