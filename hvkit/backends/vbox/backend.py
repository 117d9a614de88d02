"""The VirtualBox backend: VBoxManage here (``vbox:///``) or on a workstation over SSH (``vbox+ssh://user@host``).

Small on purpose: each area lives in its module (``_vms``, ``_storage``, ``_snapshots``, ``_metrics``,
``_console``, ``_migrate``), all working through one :class:`~._session.Session`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import IO, Any

from hvkit.capabilities import Capability
from hvkit.driver import Backend, ConnectOptions, DiskImage, Limits, ProgressFn, Traits
from hvkit.models import (
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

from . import _console, _inventory, _metrics, _migrate, _ova, _snapshots, _storage, _vms
from ._errors import VBoxManageError, translate
from ._session import Session

__all__ = ["VBoxBackend"]

LIMITS = Limits(
    max_cpus=32,  # VirtualBox's maximum guest CPU count (list systemproperties)
    max_memory_mib=2 * 1024 * 1024,  # 2 TiB, VirtualBox's maximum guest RAM
    disks_per_bus={DiskBus.IDE: 4, DiskBus.SATA: 30, DiskBus.SCSI: 16, DiskBus.NVME: 255, DiskBus.VIRTIO: 255},
)


class VBoxBackend(Backend):
    kind = "vbox"
    capabilities = frozenset(
        {
            Capability.VM_CREATE,
            Capability.VM_DELETE,
            Capability.VM_POWER,
            Capability.VM_PAUSE,
            Capability.VM_SUSPEND,
            Capability.VM_RECONFIGURE,
            Capability.VM_CLONE,
            Capability.VM_LINKED_CLONE,
            Capability.VM_CONSOLE,
            Capability.VM_METRICS,
            Capability.VM_GUEST_IPS,
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
    capability_notes = {
        Capability.VM_LINKED_CLONE: "from a snapshot hvkit takes of the source",
        Capability.VM_CONSOLE: "VRDE (RDP); needs the Extension Pack",
        Capability.VM_GUEST_IPS: "needs the Guest Additions",
        Capability.VOLUME_UPLOAD: "clonemedium --existing from a raw file",
        Capability.VOLUME_DOWNLOAD: "clonemedium to a raw file",
    }
    traits = Traits(
        disk_buses=frozenset({DiskBus.SATA, DiskBus.SCSI, DiskBus.IDE, DiskBus.NVME, DiskBus.VIRTIO}),
        default_disk_bus=DiskBus.SATA,
        nic_models=frozenset({NicModel.E1000, NicModel.VIRTIO}),
        default_nic_model=NicModel.E1000,
        disk_export=True,
        disk_import=True,
        disk_formats=(DiskFormat.VDI, DiskFormat.VMDK, DiskFormat.VHD),
        guest_tools="VirtualBox Guest Additions",
        limits=LIMITS,
    )

    def __init__(self, options: ConnectOptions) -> None:
        super().__init__(options)
        self.session = Session(options)

    # -- connection ------------------------------------------------------------------------------------
    def connect(self) -> None:
        with self.errors():
            self.session.connect()

    @property
    def version(self) -> str:
        return self.session.version_text

    @contextlib.contextmanager
    def _translating(self) -> Iterator[None]:
        try:
            yield
        except VBoxManageError as exc:
            raise translate(exc) from exc

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return self._translating()

    # -- inventory --------------------------------------------------------------------------------------
    def list_hosts(self) -> list[Host]:
        return _inventory.list_hosts(self.session)

    def list_pools(self) -> list[StoragePool]:
        return _storage.list_pools(self.session)

    def list_networks(self) -> list[Network]:
        return _inventory.list_networks(self.session)

    def list_vms(self, detail: bool = False) -> list[VM]:
        return _vms.list_vms(self.session)

    def get_vm(self, ref: str) -> VM:
        return _vms.get_vm(self.session, ref)

    # -- VMs ----------------------------------------------------------------------------------------------
    def create_vm(self, spec: VMSpec) -> VM:
        networks: dict[str, Network] = {}
        if spec.nics:
            for net in self.list_networks():
                networks.setdefault(net.id, net)
                networks.setdefault(net.name, net)
        return _vms.create_vm(self.session, spec, networks)

    def delete_vm(self, vm: VM, keep_disks: bool) -> None:
        _vms.delete_vm(self.session, vm, keep_disks)

    def start_vm(self, vm: VM) -> None:
        _vms.power(self.session, vm, "start")

    def stop_vm(self, vm: VM, force: bool, timeout: float) -> None:
        _vms.stop_vm(self.session, vm, force, timeout)

    def reboot_vm(self, vm: VM, force: bool) -> None:
        # 7.0 asks the Guest Additions to reboot; 6.1 has no such request, so both reset when forced or on 6.1
        _vms.power(self.session, vm, "reboot" if self.session.v7 and not force else "reset")

    def pause_vm(self, vm: VM) -> None:
        _vms.power(self.session, vm, "pause")

    def resume_vm(self, vm: VM) -> None:
        _vms.power(self.session, vm, "resume")

    def suspend_vm(self, vm: VM) -> None:
        _vms.power(self.session, vm, "savestate")

    def reconfigure_vm(self, vm: VM, cpus: int | None, memory_mib: int | None) -> None:
        _vms.reconfigure_vm(self.session, vm, cpus, memory_mib)

    def clone_vm(self, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> VM:
        return _vms.clone_vm(self.session, vm, name, linked)

    def console(self, vm: VM) -> Console:
        return _console.console(self.session, vm)

    def guest_ips(self, vm: VM) -> list[str]:
        return _console.guest_ips(self.session, vm)

    def vm_metrics(self, vms: list[VM]) -> list[VMMetrics]:
        return _metrics.vm_metrics(self.session, vms)

    def host_metrics(self, hosts: list[Host]) -> list[HostMetrics]:
        return _metrics.host_metrics(self.session, hosts)

    # -- snapshots ----------------------------------------------------------------------------------------
    def list_snapshots(self, vm: VM) -> list[Snapshot]:
        return _snapshots.list_snapshots(self.session, vm)

    def create_snapshot(self, vm: VM, name: str, description: str, memory: bool, quiesce: bool) -> Snapshot:
        return _snapshots.create_snapshot(self.session, vm, name, description, memory)

    def revert_snapshot(self, vm: VM, snapshot: Snapshot) -> None:
        _snapshots.revert_snapshot(self.session, vm, snapshot)

    def delete_snapshot(self, vm: VM, snapshot: Snapshot, children: bool) -> None:
        _snapshots.delete_snapshot(self.session, vm, snapshot, children)

    # -- volumes and disks --------------------------------------------------------------------------------------
    def list_volumes(self, pool: StoragePool) -> list[Volume]:
        return _storage.list_volumes(self.session)

    def get_volume(self, ref: str) -> Volume:
        return _storage.get_volume(self.session, ref)

    def create_volume(self, pool: StoragePool, name: str, size_bytes: int, fmt: DiskFormat) -> Volume:
        return _storage.create_volume(self.session, name, size_bytes, fmt)

    def delete_volume(self, volume: Volume) -> None:
        _storage.close_medium(self.session, volume.id, delete=True)

    def upload_volume(self, volume: Volume, source: IO[bytes], size: int, progress: ProgressFn) -> None:
        _migrate.upload_volume(self.session, volume, source, size, progress)

    def download_volume(self, volume: Volume, sink: IO[bytes], progress: ProgressFn) -> int:
        return _migrate.download_volume(self.session, volume, sink, progress)

    def export_disk(
        self, volume: Volume, workdir: str, progress: ProgressFn, snapshot: Snapshot | None = None
    ) -> DiskImage:
        return _migrate.export_disk(self.session, volume, workdir, progress, snapshot)

    def import_disk(
        self, pool: StoragePool, name: str, image: DiskImage, fmt: DiskFormat, workdir: str, progress: ProgressFn
    ) -> Volume:
        return _migrate.import_disk(self.session, name, image, fmt, workdir, progress)

    # -- appliances (VirtualBox only: not part of the common API) -----------------------------------------------
    def export_ova(self, vm: VM, path: str) -> None:
        """Export the stopped ``vm`` as one OVA file (``VBoxManage export --output``); the VM is untouched.

        ``path`` ends in ``.ova`` and is on the VirtualBox host: the remote workstation over ``vbox+ssh://``.
        A VM that is not stopped is InvalidState; an existing file is InvalidSpec (never overwritten); a
        failed export removes the partial file."""
        with self.errors():
            _ova.export_ova(self.session, vm, path)

    def import_ova(self, path: str, name: str) -> VM:
        """Import the first virtual system of the OVA at ``path`` as a new, stopped VM ``name``; return it.

        ``path`` is on the VirtualBox host (the remote workstation over ``vbox+ssh://``). A taken name is
        AlreadyExists before anything runs; a failed import removes the VM and disks it registered, by UUID."""
        with self.errors():
            return _ova.import_ova(self.session, path, name)

    def stats(self) -> dict[str, Any]:
        """How many VBoxManage processes this connection started (what the inventory benchmark counts)."""
        return {"vboxmanage_calls": self.session.calls}
