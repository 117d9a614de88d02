"""Hyper-V driver: the Hyper-V PowerShell module over WinRM (pywinrm), one fixed script per operation."""

from __future__ import annotations

from typing import IO

from ...capabilities import Capability
from ...driver import Backend, ConnectOptions, DiskImage, Limits, ProgressFn, Traits
from ...errors import InvalidSpec, NotFound
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
from . import _console, _disks, _metrics, _migrate, _seed, _snapshots, _storage, _vms
from ._session import Session
from ._smb import SmbFiles

__all__ = ["HyperVBackend"]


class HyperVBackend(Backend):
    """``hyperv://user@host`` (WinRM over HTTPS, port 5986) or ``hyperv+http://`` (message encryption on).

    Options: ``auth`` (``ntlm`` default, ``kerberos``, ``credssp``); ``pools``: more storage paths as pools,
    ``name=D:/VMs,E:/Other`` (a path alone is named by its last part); the host's default virtual hard
    disk path is always the pool ``default``; ``migration_hosts``: hosts ``vms.migrate(host=...)`` may move VMs
    to (``HV02,HV03``).
    """

    kind = "hyperv"
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
        }
    )
    capability_notes = {
        Capability.VM_LINKED_CLONE: "differencing VHDX on the source's disks",
        Capability.VM_GUEST_IPS: "from KVP (integration services in the guest)",
        Capability.VM_CONSOLE: "VMConnect / RDP address (port 2179)",
        Capability.VM_MIGRATE: "Move-VM to a host named in migration_hosts=; needs Kerberos constrained delegation "
        "or a CredSSP session (the double hop)",
        Capability.CLOUD_INIT: "NoCloud seed ISO attached as a DVD",
        Capability.VOLUME_UPLOAD: "over SMB (the host's C$ share)",
        Capability.VOLUME_DOWNLOAD: "over SMB (the host's C$ share)",
    }
    portability_notes = {
        "vms.list": "one script for the whole host (Get-VM with disks, VHD sizes, adapters and KVP addresses): "
        "one WinRM round trip whatever the number of VMs; `detail` changes nothing",
        "names.vm": "kept as given (sent as JSON, never put into script text); a new disk file is named after the "
        "VM, with characters Windows refuses in file names replaced by '_'",
        "names.snapshot": "kept as given; Hyper-V allows two checkpoints of one name, hvkit refuses the second "
        "(`AlreadyExists`)",
        "snapshots.create": "a standard checkpoint: a running VM's memory is saved with it",
        "snapshots.create(memory=False)": "a production checkpoint (VSS in the guest, no memory)",
        "vms.clone(linked=True)": "a new VM on differencing VHDX children of the source's disks",
        "snapshots.revert": "works; a checkpoint with memory comes back saved and is resumed. The clone's differencing "
        "disks read the source's disk files: the source must not write to them while the clone lives (Hyper-V has "
        "no guard; a checkpoint taken before the clone moves the source onto differencing disks of its own)",
        "vms.reconfigure": "CPUs while stopped only (Hyper-V): a running VM's processor change is `InvalidState`",
        "vms.delete(keep_disks=True)": "works: the VHDX files stay where they are",
    }
    traits = Traits(
        disk_buses=frozenset({DiskBus.IDE, DiskBus.SCSI}),
        default_disk_bus=DiskBus.SCSI,
        disk_formats=(DiskFormat.VHDX, DiskFormat.VHD),
        disk_export=True,  # the VHDX file over SMB (Convert-VHD first for a differencing disk)
        disk_import=True,  # a VHDX made here, written over SMB into the pool's folder
        guest_tools="Hyper-V integration services (hv_utils / hyperv-daemons on Linux)",
        uefi_note=(
            "UEFI on Hyper-V is a Generation 2 VM with Secure Boot on (Microsoft UEFI CA template for Linux); "
            "boot entries kept in the source's NVRAM are not carried over"
        ),
        limits=Limits(
            max_cpus=240,
            max_memory_mib=12 * 1024 * 1024,
            disks_per_bus={DiskBus.IDE: 4, DiskBus.SCSI: 256},
            max_name_length=100,
        ),
    )

    def __init__(self, options: ConnectOptions) -> None:
        super().__init__(options)
        self.session = Session(options)
        self.smb = SmbFiles(self.session)

    # -- connection ------------------------------------------------------------------------------------
    def connect(self) -> None:
        self.session.connect()

    def close(self) -> None:
        self.smb.close()
        self.session.close()

    # -- inventory -------------------------------------------------------------------------------------
    def list_hosts(self) -> list[Host]:
        return [_vms.inventory(self.session, with_vms=False)[0], *_migrate.peer_hosts(self.session)]

    def list_pools(self) -> list[StoragePool]:
        return _vms.inventory(self.session, with_vms=False)[2]

    def list_networks(self) -> list[Network]:
        return _vms.inventory(self.session, with_vms=False)[1]

    def list_vms(self, detail: bool = False) -> list[VM]:
        return _vms.inventory(self.session, with_vms=True)[3]

    def get_vm(self, ref: str) -> VM:
        return _vms.get(self.session, ref)

    # -- VMs -------------------------------------------------------------------------------------------
    def create_vm(self, spec: VMSpec) -> VM:
        if spec.host is not None and spec.host.lower() != self.list_hosts()[0].name.lower():
            raise NotFound(f"no host {spec.host!r}: this connection is one Hyper-V host")
        pools = {p.name: p for p in self.list_pools()}
        seed = None
        if spec.cloud_init is not None:  # a NoCloud seed ISO beside the first disk (or in the default pool)
            first = spec.disks[0] if spec.disks else None
            if first is not None and first.volume:
                folder = first.volume.rpartition("\\")[0]
            else:
                folder = self.session.pool_dir(first.pool if first is not None and first.pool else "default")
            path = f"{folder}\\{_vms.file_name(spec.name)}-cidata.iso"
            seed = (path, _seed.seed_iso_base64(_seed.seed_payload(spec.name, spec.cloud_init)))
        return _vms.create(self.session, spec, pools, seed)

    def delete_vm(self, vm: VM, keep_disks: bool) -> None:
        _vms.delete(self.session, vm, keep_disks)

    def start_vm(self, vm: VM) -> VM:
        return _vms.power(self.session, vm, "start")

    def stop_vm(self, vm: VM, force: bool, timeout: float) -> VM:
        if force:
            return _vms.power(self.session, vm, "turnoff")
        return _vms.power(self.session, vm, "stop", limit=timeout)

    def reboot_vm(self, vm: VM, force: bool) -> VM:
        return _vms.power(self.session, vm, "reset" if force else "reboot")

    def pause_vm(self, vm: VM) -> VM:
        return _vms.power(self.session, vm, "pause")

    def resume_vm(self, vm: VM) -> VM:
        return _vms.power(self.session, vm, "resume")

    def suspend_vm(self, vm: VM) -> VM:
        return _vms.power(self.session, vm, "save")

    def reconfigure_vm(self, vm: VM, cpus: int | None, memory_mib: int | None) -> VM:
        return _vms.reconfigure(self.session, vm, cpus, memory_mib)

    def clone_vm(self, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> VM:
        if host is not None and vm.host is not None and host.lower() != vm.host.lower():
            raise InvalidSpec("a Hyper-V clone stays on its source's host (this connection is one host)")
        return _vms.clone(self.session, vm, name, linked, pool)

    def migrate_vm(self, vm: VM, host: str | None, pool: str | None, live: bool) -> VM:
        if host is not None and not self.session.vhd_path:
            self.list_pools()  # learns the host's default storage path (the pool 'default')
        return _migrate.migrate(self.session, vm, host, pool)

    def console(self, vm: VM) -> Console:
        return _console.console(self.session, vm)

    def guest_ips(self, vm: VM) -> list[str]:
        return list(_vms.get(self.session, vm.id).ip_addresses)

    def vm_metrics(self, vms: list[VM]) -> list[VMMetrics]:
        return _metrics.vm_metrics(self.session, vms)

    def host_metrics(self, hosts: list[Host]) -> list[HostMetrics]:
        return [_metrics.host_metrics(self.session)] if hosts else []

    # -- snapshots -------------------------------------------------------------------------------------
    def list_snapshots(self, vm: VM) -> list[Snapshot]:
        return _snapshots.list_many(self.session, [vm]).get(vm.id, [])

    def list_snapshots_many(self, vms: list[VM]) -> dict[str, list[Snapshot]]:
        return _snapshots.list_many(self.session, vms)

    def create_snapshot(self, vm: VM, name: str, description: str, memory: bool, quiesce: bool) -> Snapshot:
        return _snapshots.create(self.session, vm, name, memory)

    def revert_snapshot(self, vm: VM, snapshot: Snapshot) -> VM:
        return _snapshots.revert(self.session, vm, snapshot)

    def delete_snapshot(self, vm: VM, snapshot: Snapshot, children: bool) -> None:
        _snapshots.delete(self.session, vm, snapshot, children)

    # -- volumes ---------------------------------------------------------------------------------------
    def list_volumes(self, pool: StoragePool) -> list[Volume]:
        return _storage.list_in(self.session, [self.session.pool_dir(pool.name)])

    def get_volume(self, ref: str) -> Volume:
        _storage.volume_path(ref)  # a full path, or NotFound before any call
        if not self.session.vhd_path:
            self.list_pools()  # learns the host's default storage path
        return _storage.get(self.session, ref)

    def create_volume(self, pool: StoragePool, name: str, size_bytes: int, fmt: DiskFormat) -> Volume:
        return _storage.create(self.session, pool, name, size_bytes, fmt)

    def delete_volume(self, volume: Volume) -> None:
        _storage.delete(self.session, volume)

    def upload_volume(self, volume: Volume, source: IO[bytes], size: int, progress: ProgressFn) -> None:
        _disks.upload_volume(self.session, self.smb, volume, source, size, progress)

    def download_volume(self, volume: Volume, sink: IO[bytes], progress: ProgressFn) -> int:
        return _disks.download_volume(self.session, self.smb, volume, sink, progress)

    def export_disk(
        self, volume: Volume, workdir: str, progress: ProgressFn, snapshot: Snapshot | None = None
    ) -> DiskImage:
        return _disks.export_disk(self.session, self.smb, volume, workdir, progress, snapshot)

    def import_disk(
        self, pool: StoragePool, name: str, image: DiskImage, fmt: DiskFormat, workdir: str, progress: ProgressFn
    ) -> Volume:
        return _disks.import_disk(self.session, self.smb, pool, name, image, fmt, workdir, progress)

    # -- for tests and benchmarks ----------------------------------------------------------------------
    @property
    def round_trips(self) -> int:
        """Scripts run on the host so far (each is one WinRM command in the connection's shell)."""
        return self.session.round_trips
