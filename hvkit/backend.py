"""The narrow contract a driver implements.

A backend does primitive things only. Validation, capability checks, state checks, waiting, progress,
cancelling what times out and error translation safety nets live once, in :mod:`hvkit.hypervisor`.

Conventions:

* Methods that change something return either their result or a :class:`~hvkit.tasks.Task` that
  yields it; the core waits (or hands the Task to the caller with ``wait=False``).
* VM methods get the :class:`VM` just read by the core (so ``vm.id``, ``vm.host`` and ``vm.extra``
  are at hand without another round trip).
* :meth:`Backend.errors` translates the vendor's exceptions; the core calls every method inside it.
* A method the backend does not override raises :class:`Unsupported`; declare only what works.
* Rollback is the backend's: a multi-step method (create, clone, storage migration, import) runs its steps
  under one :class:`~hvkit.driver.Rollback` keyed on the ids it creates, so a failure at any step (or a
  cancelled Task) leaves nothing behind. The core never removes anything after a failure, and never by name.
* Identity: a create or clone yields the new VM (or its id); a snapshot create the Snapshot (or its id).
  When the core's wait times out it cancels the Task (``TaskSource.cancel``; it must stop the work and
  undo it, or raise Unsupported); if the Task then succeeds anyway, the core deletes what it made by that id.
* One name, one VM: a create or clone of a name another VM has, or gets meanwhile, raises AlreadyExists
  and removes only its own work, on vendors that allow duplicate names too (verify by id after creating).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, ClassVar

import attrs

from ._options import ConnectOptions
from ._traits import Traits
from .capabilities import Capability
from .errors import Unsupported
from .models import (
    VM,
    Console,
    Host,
    HostMetrics,
    Network,
    Snapshot,
    StoragePool,
    VMMetrics,
    VMSpec,
    Volume,
)
from .models.enums import DiskFormat

__all__ = ["Backend", "DiskImage", "Event", "ProgressFn", "VolumeScan"]

ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total)
Event = dict[str, Any]  # {"vm": id, "name": ..., "event": "started" | "stopped" | ..., "detail": ...}
Result = Any  # a value, or a Task that yields it


@attrs.frozen
class DiskImage:
    """A disk's content as an image file on this machine, which qemu-img can read (disk export / import)."""

    path: str
    format: DiskFormat
    size: int  # guest-visible bytes
    temporary: bool = False  # a copy made for the transfer (hvkit deletes it), not the disk's own file
    bytes_moved: int = 0  # bytes that crossed the vendor's API to make it (0: read in place)
    # bytes of allocated guest data when known (else qemu-img map counts them); a callable gives them once
    # they are known (a migration maps the source while the import creates its volume)
    data_bytes: int | Callable[[], int] | None = None

    def allocated(self) -> int | None:
        """``data_bytes``, waiting for it when it is still being counted."""
        return self.data_bytes() if callable(self.data_bytes) else self.data_bytes


@attrs.frozen
class VolumeScan:
    """A volume's content summed up where it lies (:meth:`Backend.scan_volume`), nothing of it copied here."""

    size: int  # guest-visible bytes
    checksum: str  # hvkit-disk-v1 (hvkit.migration.checksum(..., algorithm="hvkit-disk-v1")) of the content
    digests: dict[int, bytes] | None  # BLAKE2b-128 of each non-zero 64 KiB block, by block index (when asked)
    bytes_moved: int = 0  # bytes that crossed the wire, both ways, to make this


class Backend:
    """Base class of every driver. Subclasses set ``kind``, ``capabilities`` and ``traits``."""

    kind: ClassVar[str] = "?"
    capabilities: frozenset[Capability] = frozenset()
    capability_notes: ClassVar[dict[Capability, str]] = {}  # e.g. "vCenter only", shown in the support matrix
    # What this backend does with one portable call, where it differs from the plain documented behaviour
    # (defaults, emulation, refusals and why), keyed by the operations of hvkit._matrix.PORTABILITY_ROWS;
    # docs/portability.md is generated from it
    portability_notes: ClassVar[dict[str, str]] = {}
    # create_vm makes new volumes from DiskSpec(volume=...) (Proxmox import-from) instead of attaching them
    # as they are: a migration then verifies the VM's disks once it exists, not the imports beside its creation
    create_copies_volumes: ClassVar[bool] = False
    # what migration, fleet and the core's checks read: buses, NIC models, disk transfer, MAC ranges, limits
    traits: Traits = Traits()

    def __init__(self, options: ConnectOptions) -> None:
        self.options = options

    # -- connection --------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the connection; raise ConnectionError / AuthenticationError."""

    def close(self) -> None:
        """Release the connection; must not raise."""

    @property
    def version(self) -> str:
        return ""

    def errors(self) -> contextlib.AbstractContextManager[None]:
        """A context manager that translates vendor exceptions into hvkit errors."""
        return contextlib.nullcontext()

    def _unsupported(self, operation: str) -> Unsupported:
        return Unsupported(self.kind, operation)

    # -- inventory ---------------------------------------------------------------------------
    def list_hosts(self) -> list[Host]:
        raise self._unsupported("hosts.list")

    def list_pools(self) -> list[StoragePool]:
        raise self._unsupported("pools.list")

    def list_networks(self) -> list[Network]:
        raise self._unsupported("networks.list")

    def list_vms(self, detail: bool = False) -> list[VM]:
        """Every VM. ``detail=False``: what one bulk read gives cheaply (name, power state, CPUs, memory, host,
        IPs, template flag ...); ``detail=True``: also devices (disks with their pools, NICs), read in bulk
        where the vendor allows. A backend whose listing is cheap anyway may ignore ``detail``."""
        raise self._unsupported("vms.list")

    def get_vm(self, ref: str) -> VM:
        """Read one VM by id or name; raise NotFound. Default: scan list_vms()."""
        from .errors import NotFound

        by_name = None
        for vm in self.list_vms():
            if vm.id == ref or vm.uuid == ref:
                return vm
            if vm.name == ref:
                by_name = vm
        if by_name is None:
            raise NotFound(f"no VM {ref!r} on this {self.kind} hypervisor")
        return by_name

    # -- VMs -----------------------------------------------------------------------------------
    def create_vm(self, spec: VMSpec) -> Result:
        """Create a stopped VM (every DiskSpec has its pool filled in); yield the VM or its id.

        On failure or cancellation, undo this call's own partial work (known by the ids it created); when
        the name is taken (even by a create racing this one), raise AlreadyExists and remove only its own VM.
        """
        raise self._unsupported("vms.create")

    def delete_vm(self, vm: VM, keep_disks: bool) -> Result:
        raise self._unsupported("vms.delete")

    def start_vm(self, vm: VM) -> Result:
        raise self._unsupported("vms.start")

    def stop_vm(self, vm: VM, force: bool, timeout: float) -> Result:
        """Graceful shutdown within ``timeout`` seconds (raise Timeout), or power off if ``force``."""
        raise self._unsupported("vms.stop")

    def reboot_vm(self, vm: VM, force: bool) -> Result:
        raise self._unsupported("vms.reboot")

    def pause_vm(self, vm: VM) -> Result:
        raise self._unsupported("vms.pause")

    def resume_vm(self, vm: VM) -> Result:
        raise self._unsupported("vms.resume")

    def suspend_vm(self, vm: VM) -> Result:
        raise self._unsupported("vms.suspend")

    def reconfigure_vm(self, vm: VM, cpus: int | None, memory_mib: int | None) -> Result:
        raise self._unsupported("vms.reconfigure")

    def mark_template(self, vm: VM) -> Result:
        """Turn a stopped VM into a template (irreversible on some vendors)."""
        raise self._unsupported("vms.mark_template")

    def clone_vm(self, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> Result:
        """Clone ``vm`` (stopped, or a snapshot of it where the vendor allows) as a new stopped VM; yield it or
        its id. Failures, cancellation and a taken name are handled as in :meth:`create_vm`."""
        raise self._unsupported("vms.clone")

    def migrate_vm(self, vm: VM, host: str | None, pool: str | None, live: bool) -> Result:
        """Move ``vm`` to another host and/or its disks to another pool."""
        raise self._unsupported("vms.migrate")

    def recover_vm(self, vm: VM, host: str) -> Result:
        """Start ``vm``, whose host is down, on ``host`` (which reaches its disks; fleet recovery checked room
        and rules); yield the VM. Its registration moves to ``host``, so the failed host does not start it
        again when it returns. Raise InvalidState when ``vm``'s host is up."""
        raise self._unsupported("vms.recover")

    def ha_policy(self, vms: list[VM]) -> dict[str, str]:
        """What the vendor's own HA does with each of ``vms`` when its host fails (VM id -> a sentence, e.g.
        "Proxmox HA restarts it (group g1)"); VMs it does not protect are left out. Fleet recovery leaves
        these VMs to it. Default: no vendor HA."""
        return {}

    def console(self, vm: VM) -> Console:
        raise self._unsupported("vms.console")

    def guest_ips(self, vm: VM) -> list[str]:
        raise self._unsupported("vms.guest_ips")

    def vm_metrics(self, vms: list[VM]) -> list[VMMetrics]:
        """Counters for many VMs in as few round trips as the vendor allows."""
        raise self._unsupported("vms.metrics")

    def host_metrics(self, hosts: list[Host]) -> list[HostMetrics]:
        raise self._unsupported("hosts.metrics")

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` on VM lifecycle events until the returned function is called."""
        raise self._unsupported("events.subscribe")

    # -- snapshots -------------------------------------------------------------------------------
    def list_snapshots(self, vm: VM) -> list[Snapshot]:
        raise self._unsupported("snapshots.list")

    def list_snapshots_many(self, vms: list[VM]) -> dict[str, list[Snapshot]]:
        """Snapshots of many VMs (by VM id). Default: one list_snapshots per VM; override with a bulk read."""
        return {vm.id: self.list_snapshots(vm) for vm in vms}

    def create_snapshot(self, vm: VM, name: str, description: str, memory: bool, quiesce: bool) -> Result:
        raise self._unsupported("snapshots.create")

    def revert_snapshot(self, vm: VM, snapshot: Snapshot) -> Result:
        raise self._unsupported("snapshots.revert")

    def delete_snapshot(self, vm: VM, snapshot: Snapshot, children: bool) -> Result:
        raise self._unsupported("snapshots.delete")

    # -- volumes ---------------------------------------------------------------------------------
    def list_volumes(self, pool: StoragePool) -> list[Volume]:
        raise self._unsupported("volumes.list")

    def get_volume(self, ref: str) -> Volume:
        """Read a volume by id; raise NotFound. Default: scan every pool."""
        from .errors import NotFound

        for pool in self.list_pools():
            for vol in self.list_volumes(pool):
                if vol.id == ref:
                    return vol
        raise NotFound(f"no volume {ref!r} on this {self.kind} hypervisor")

    def create_volume(self, pool: StoragePool, name: str, size_bytes: int, fmt: DiskFormat) -> Result:
        raise self._unsupported("volumes.create")

    def delete_volume(self, volume: Volume) -> Result:
        raise self._unsupported("volumes.delete")

    def create_linked_volume(self, pool: StoragePool, name: str, base: Volume) -> Result:
        """Create volume ``name`` in ``pool`` that reads ``base`` and writes only into itself (copy-on-write).

        Its size is the base's. ``base`` must never change or be deleted through it: deleting the new
        volume (or the VM it is a disk of) leaves the base as it is. VOLUME_LINKED."""
        raise self._unsupported("volumes.create_linked")

    def upload_volume(self, volume: Volume, source: IO[bytes], size: int, progress: ProgressFn) -> Result:
        """Write ``size`` bytes of raw guest-visible content from ``source`` into ``volume``."""
        raise self._unsupported("volumes.upload")

    def download_volume(self, volume: Volume, sink: IO[bytes], progress: ProgressFn) -> Result:
        """Write the volume's raw guest-visible content to ``sink``; return the byte count."""
        raise self._unsupported("volumes.download")

    # -- disk export / import (cross-vendor migration) -------------------------------------------------
    def local_path(self, volume: Volume) -> str | None:
        """The volume's image file when it lies on this machine, else None (the default).

        A path returned here is read in place (never changed) by export_disk, and written by import_disk
        only into a volume import_disk has just created. Default: ``volume.path`` when the connection
        has the option ``local_files=true`` (the user says this hypervisor's volumes are files on this
        machine, e.g. ``sim://a?local_files=true`` or ``qemu:///system?local_files=true``) and that
        file exists here; else None.
        """
        if volume.path and self.options.bool_option("local_files", False) and Path(volume.path).is_file():
            return volume.path
        return None

    def local_folder(self, pool: StoragePool) -> str | None:
        """The directory on this machine that holds ``pool``'s volume files, when they are here; else None.

        Where an import writes files before the pool registers them (a kill in between leaves a file no
        volume names), a journal records their paths in this folder and removes them on rollback.
        Default: the pool's ``extra["path"]`` when ``traits.pools_are_local`` or ``local_files=true``.
        """
        folder = str(pool.extra.get("path") or "")
        if folder and (self.traits.pools_are_local or self.options.bool_option("local_files", False)):
            return folder
        return None

    def export_disk(
        self, volume: Volume, workdir: str, progress: ProgressFn, snapshot: Snapshot | None = None
    ) -> DiskImage:
        """Make ``volume``'s guest-visible content readable on this machine; change nothing on the hypervisor.

        Return the volume's own file (``temporary=False``) or a copy written under ``workdir``
        (``temporary=True``), in any format qemu-img reads; copy only allocated data where the vendor
        allows. ``snapshot``: the content as of that snapshot of the VM that uses the volume.
        Default: :meth:`local_path` (a snapshot from a qcow2 internal snapshot), else VOLUME_DOWNLOAD
        into a sparse raw file.
        """
        from ._images import default_export

        return default_export(self, volume, workdir, progress, snapshot)

    def import_disk(
        self, pool: StoragePool, name: str, image: DiskImage, fmt: DiskFormat, workdir: str, progress: ProgressFn
    ) -> Volume:
        """Create volume ``name`` in ``pool``, in format ``fmt``, holding ``image``'s guest-visible content.

        ``image`` may be in any format (``hvkit.migration.convert_image`` converts it under ``workdir``
        when the vendor takes one format only); its size is the volume's size. Remove the volume again
        if the import fails. Default: VOLUME_CREATE, then qemu-img writes into :meth:`local_path`,
        else VOLUME_UPLOAD of the raw content.
        """
        from ._images import default_import

        return default_import(self, pool, name, image, fmt, workdir, progress)

    # -- changed-block tracking (replication) ------------------------------------------------------------
    def track_changes(self, vm: VM, checkpoint: str) -> None:
        """Start recording which blocks of ``vm``'s disks are written, from now on, under ``checkpoint``.

        Optional (replication falls back to comparing block hashes): raise Unsupported, or InvalidState when
        the VM cannot track now (e.g. it is not running)."""
        raise self._unsupported("changed-block tracking")

    def changed_extents(self, vm: VM, volume: Volume, since: str, workdir: str) -> list[tuple[int, int]]:
        """``(offset, length)`` guest ranges of ``volume`` (a disk of ``vm``) written since ``checkpoint`` began:
        a superset of what changed is fine, a block left out is not. Scratch files go under ``workdir``."""
        raise self._unsupported("changed-block tracking")

    def untrack_changes(self, vm: VM, checkpoint: str) -> None:
        """Forget ``checkpoint`` (checkpoints made after it keep recording)."""
        raise self._unsupported("changed-block tracking")

    # -- in-place patches (replication into volumes that are not files on this machine) ------------------
    def scan_volume(self, volume: Volume, digests: bool) -> VolumeScan:
        """Sum up ``volume``'s guest-visible content where it lies, without copying it here (:class:`VolumeScan`:
        its hvkit-disk-v1 checksum; with ``digests``, the BLAKE2b-128 digest of each non-zero 64 KiB block).

        Optional: replication into volumes that are not files on this machine needs it and :meth:`patch_volume`."""
        raise self._unsupported("volume scans (a checksum and block digests computed where the volume lies)")

    def patch_volume(self, volume: Volume, patch: DiskImage) -> int:
        """Write ``patch`` into ``volume`` in place; return the bytes sent to do it.

        ``patch`` is a qcow2 image (64 KiB clusters, no backing file) of the volume's guest size: its data
        clusters are written into the volume, its zero clusters make their ranges zero, and the rest of the
        volume stays as it is, whatever the volume's format. Applying a patch twice changes nothing more. The
        VM using the volume is stopped. Optional, as :meth:`scan_volume`."""
        raise self._unsupported("in-place volume patches (writing changed blocks into an existing volume)")
