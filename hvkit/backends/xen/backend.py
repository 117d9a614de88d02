"""XenServer / XCP-ng driver: XAPI through the XenAPI client (``xen://user@pool-master[:port]``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import IO, Any

from ...capabilities import Capability
from ...driver import Backend, ConnectOptions, DiskImage, Event, Limits, ProgressFn, Task, Traits
from ...errors import NotFound
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
from . import _console, _events, _metrics, _migrate, _snapshots, _storage, _vms
from . import _convert as cv
from ._errors import translate
from ._session import XapiSession

__all__ = ["XenBackend"]


class XenBackend(Backend):
    """One XAPI pool, through its master (a member's HOST_IS_SLAVE is followed once)."""

    kind = "xen"
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
            Capability.VM_EVENTS,
            Capability.VM_MIGRATE,
            Capability.VM_STORAGE_MIGRATE,
            Capability.UEFI,
            Capability.CLOUD_INIT,
            Capability.SNAPSHOT,
            Capability.SNAPSHOT_MEMORY,
            Capability.HOST_METRICS,
            Capability.VOLUME_CREATE,
            Capability.VOLUME_DELETE,
            Capability.VOLUME_UPLOAD,
            Capability.VOLUME_DOWNLOAD,
            Capability.VOLUME_LINKED,
        }
    )
    capability_notes = {Capability.VM_STORAGE_MIGRATE: "within the pool", Capability.VM_MIGRATE: "within the pool"}
    traits = Traits(
        disk_buses=frozenset({DiskBus.IDE}),  # HVM guests see emulated IDE until their PV drivers take over
        default_disk_bus=DiskBus.IDE,
        nic_models=frozenset({NicModel.RTL8139, NicModel.E1000}),
        default_nic_model=NicModel.RTL8139,
        disk_export=True,  # /export_raw_vdi as a dynamic VHD
        disk_import=True,  # /import_raw_vdi as a dynamic VHD
        disk_formats=(DiskFormat.VHD,),
        guest_tools="XCP-ng / XenServer guest tools (xe-guest-utilities)",
        uefi_note="UEFI on Xen: HVM_boot_params firmware=uefi; NVRAM variables of the source are not carried over",
        limits=Limits(disks_per_bus={DiskBus.IDE: 16}),
    )

    def __init__(self, options: ConnectOptions) -> None:
        super().__init__(options)
        self._session: XapiSession | None = None

    # -- connection --------------------------------------------------------------------------------
    @property
    def session(self) -> XapiSession:
        if self._session is None:
            from ...errors import ConnectionError

            raise ConnectionError("not connected to XAPI")
        return self._session

    def connect(self) -> None:
        session = XapiSession(self.options)
        try:
            session.connect()
        except BaseException:
            session.close()
            raise
        self._session = session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    @property
    def version(self) -> str:
        hosts = self.list_hosts()
        return hosts[0].hypervisor_version if hosts else ""

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return self._translate()

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        with translate(ca_file=self.options.ca_file):
            yield

    # -- inventory -----------------------------------------------------------------------------------
    def list_hosts(self) -> list[Host]:
        return _metrics.list_hosts(self.session)

    def list_pools(self) -> list[StoragePool]:
        return _storage.list_pools(self.session)

    def list_networks(self) -> list[Network]:
        return [
            cv.network(ref, rec)
            for ref, rec in self.session.call("network.get_all_records").items()
            if (rec.get("other_config") or {}).get("is_host_internal_management_network") != "true"
        ]

    def list_vms(self, detail: bool = False) -> list[VM]:
        return _vms.inventory(self.session, detail)

    def get_vm(self, ref: str) -> VM:
        return _vms.get(self.session, ref)

    # -- VMs -------------------------------------------------------------------------------------------
    def create_vm(self, spec: VMSpec) -> str:
        return _vms.create(self.session, spec)

    def delete_vm(self, vm: VM, keep_disks: bool) -> None:
        _vms.delete(self.session, vm, keep_disks)

    def start_vm(self, vm: VM) -> Task:
        return _vms.power(self.session, vm, "start")

    def stop_vm(self, vm: VM, force: bool, timeout: float) -> Any:
        if force:
            return _vms.power(self.session, vm, "hard_shutdown")
        return Task.in_thread("vms.stop", vm.name, lambda: _vms.clean_shutdown(self.session, vm, timeout))

    def reboot_vm(self, vm: VM, force: bool) -> Task:
        return _vms.power(self.session, vm, "hard_reboot" if force else "clean_reboot")

    def pause_vm(self, vm: VM) -> Task:
        return _vms.power(self.session, vm, "pause")

    def resume_vm(self, vm: VM) -> Task:
        return _vms.power(self.session, vm, "unpause")

    def suspend_vm(self, vm: VM) -> Task:
        return _vms.power(self.session, vm, "suspend")

    def reconfigure_vm(self, vm: VM, cpus: int | None, memory_mib: int | None) -> str:
        return _vms.reconfigure(self.session, vm, cpus, memory_mib)

    def mark_template(self, vm: VM) -> str:
        return _vms.mark_template(self.session, vm)

    def clone_vm(self, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> Task:
        return _vms.clone(self.session, vm, name, linked, host, pool)

    def migrate_vm(self, vm: VM, host: str | None, pool: str | None, live: bool) -> Task:
        return Task.in_thread("vms.migrate", vm.name, lambda: _migrate.migrate(self.session, vm, host, pool, live))

    def console(self, vm: VM) -> Console:
        return _console.console(self.session, vm)

    def guest_ips(self, vm: VM) -> list[str]:
        return _metrics.guest_ips(self.session, vm)

    def vm_metrics(self, vms: list[VM]) -> list[VMMetrics]:
        return _metrics.vm_metrics(self.session, vms)

    def host_metrics(self, hosts: list[Host]) -> list[HostMetrics]:
        return _metrics.host_metrics(self.session, hosts)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        return _events.subscribe(self.options, callback)

    # -- snapshots ---------------------------------------------------------------------------------------
    def list_snapshots(self, vm: VM) -> list[Snapshot]:
        return _snapshots.list_one(self.session, vm)

    def list_snapshots_many(self, vms: list[VM]) -> dict[str, list[Snapshot]]:
        return _snapshots.list_many(self.session, vms)

    def create_snapshot(self, vm: VM, name: str, description: str, memory: bool, quiesce: bool) -> Task:
        return _snapshots.create(self.session, vm, name, description, memory, quiesce)

    def revert_snapshot(self, vm: VM, snapshot: Snapshot) -> Task:
        return Task.in_thread("snapshots.revert", vm.name, lambda: _snapshots.revert(self.session, vm, snapshot))

    def delete_snapshot(self, vm: VM, snapshot: Snapshot, children: bool) -> None:
        _snapshots.delete(self.session, vm, snapshot, children)

    # -- volumes -------------------------------------------------------------------------------------------
    def list_volumes(self, pool: StoragePool) -> list[Volume]:
        return _storage.list_volumes(self.session, pool)

    def get_volume(self, ref: str) -> Volume:
        return _storage.get_volume(self.session, ref)

    def create_volume(self, pool: StoragePool, name: str, size_bytes: int, fmt: DiskFormat) -> Volume:
        return _storage.create_volume(self.session, pool, name, size_bytes, fmt)

    def delete_volume(self, volume: Volume) -> None:
        _storage.delete_volume(self.session, volume)

    def create_linked_volume(self, pool: StoragePool, name: str, base: Volume) -> Volume:
        return _storage.create_linked_volume(self.session, pool, name, base)

    def upload_volume(self, volume: Volume, source: IO[bytes], size: int, progress: ProgressFn) -> None:
        _storage.upload(self.session, volume, source, size, progress)

    def download_volume(self, volume: Volume, sink: IO[bytes], progress: ProgressFn) -> int:
        return _storage.download(self.session, volume, sink, progress)

    def export_disk(
        self, volume: Volume, workdir: str, progress: ProgressFn, snapshot: Snapshot | None = None
    ) -> DiskImage:
        if snapshot is not None:
            return self._export_snapshot_disk(volume, workdir, progress, snapshot)
        return _storage.export_disk(self.session, volume, workdir, progress)

    def _export_snapshot_disk(
        self, volume: Volume, workdir: str, progress: ProgressFn, snapshot: Snapshot
    ) -> DiskImage:
        """The snapshot's copy of ``volume``: the snapshot VDI whose snapshot_of is the volume."""
        s = self.session
        vdi = s.call("VDI.get_by_uuid", volume.id)
        snap = s.call("VM.get_by_uuid", snapshot.id)
        for vbd in s.call("VM.get_VBDs", snap):
            candidate = s.call("VBD.get_VDI", vbd)
            if candidate != cv.NULL and s.call("VDI.get_snapshot_of", candidate) == vdi:
                rec = s.call("VDI.get_record", candidate)
                return _storage.export_disk(s, cv.volume(candidate, rec, volume.pool), workdir, progress)
        raise NotFound(f"snapshot {snapshot.name!r} holds no copy of volume {volume.name!r}")

    def import_disk(
        self, pool: StoragePool, name: str, image: DiskImage, fmt: DiskFormat, workdir: str, progress: ProgressFn
    ) -> Volume:
        return _storage.import_disk(self.session, pool, name, image, workdir, progress)
