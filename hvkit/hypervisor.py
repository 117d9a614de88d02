"""The user-facing Hypervisor and its managers (vms, hosts, pools, volumes, networks, snapshots).

Everything shared by every backend lives here, once: capability and state checks, validation against
the inventory before any change, waiting on tasks, clean-up of failed creates, and the safety net that
keeps vendor exceptions and secrets from leaking out.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import attrs

from .backend import Backend, Event, ProgressFn
from .capabilities import Capability
from .errors import AlreadyExists, BackendError, HvkitError, InvalidSpec, InvalidState, NotFound, Unsupported
from .models import (
    VM,
    Console,
    DiskFormat,
    DiskSpec,
    Host,
    HostMetrics,
    Network,
    PowerState,
    Snapshot,
    StoragePool,
    VMMetrics,
    VMSpec,
    Volume,
)
from .models.spec import check_name, check_sizing
from .tasks import ProgressCallback, Task

__all__ = ["Hypervisor"]

log = logging.getLogger("hvkit")
T = TypeVar("T")
VMRef = VM | str
_STARTABLE = {PowerState.STOPPED, PowerState.SUSPENDED, PowerState.CRASHED}
_OFF = {PowerState.STOPPED, PowerState.SUSPENDED, PowerState.CRASHED}
DEFAULT_TASK_TIMEOUT = 1800.0


class Hypervisor:
    """One connection to one hypervisor (a host, a cluster or a vCenter). Use as a context manager."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend  # the driver, for vendor-only features; not part of the common API
        self.task_timeout = float(backend.options.option("task_timeout", DEFAULT_TASK_TIMEOUT))
        self.hosts = HostManager(self)
        self.pools = PoolManager(self)
        self.volumes = VolumeManager(self)
        self.networks = NetworkManager(self)
        self.vms = VMManager(self)
        self.snapshots = SnapshotManager(self)

    # -- identity ----------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.backend.kind

    @property
    def url(self) -> str:
        return str(self.backend.options.url)

    @property
    def version(self) -> str:
        with self.translating("version"):
            return self.backend.version

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset(self.backend.capabilities)

    def supports(self, capability: Capability) -> bool:
        return capability in self.backend.capabilities

    def __repr__(self) -> str:
        return f"<Hypervisor {self.kind} {self.url}>"

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Hypervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shared machinery --------------------------------------------------------------------------
    def require(self, capability: Capability, operation: str) -> None:
        if capability not in self.backend.capabilities:
            raise Unsupported(self.kind, operation)

    @contextlib.contextmanager
    def translating(self, operation: str) -> Iterator[None]:
        """Run a backend call: vendor exceptions become hvkit errors, secrets are scrubbed."""
        try:
            with self.backend.errors():
                yield
        except HvkitError as exc:
            scrubbed = self._scrub(str(exc))
            if scrubbed == str(exc):
                raise
            clean = copy.copy(exc)
            clean.args = (scrubbed,)
            raise clean from exc.__cause__
        except Exception as exc:
            raise BackendError(
                f"{operation} failed on {self.kind}: {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from exc

    def _scrub(self, text: str) -> str:
        opts = self.backend.options
        for secret in (opts.password, opts.token):
            if secret and len(secret) >= 3:
                text = text.replace(secret, "***")
        return text

    def call(self, operation: str, fn: Callable[..., T], *args: Any) -> T:
        with self.translating(operation):
            return fn(*args)

    def run(
        self,
        operation: str,
        target: str,
        fn: Callable[[], Any],
        *,
        wait: bool,
        timeout: float | None,
        progress: ProgressCallback | None = None,
        then: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Run a changing backend call; wait for its Task; return ``then(result)`` or a Task."""
        if not wait:
            return Task.in_thread(
                operation,
                target,
                lambda: self.run(operation, target, fn, wait=True, timeout=timeout, progress=progress, then=then),
            )
        with self.translating(operation):
            result = fn()
            if isinstance(result, Task):
                result = result.wait(self.task_timeout if timeout is None else timeout, progress)
        return then(result) if then is not None else result


class _Manager:
    def __init__(self, hv: Hypervisor) -> None:
        self._hv = hv
        self._b = hv.backend


class HostManager(_Manager):
    def list(self) -> list[Host]:
        return self._hv.call("hosts.list", self._b.list_hosts)

    def get(self, ref: Host | str) -> Host:
        found: Host = _find(self.list(), ref, "host")
        return found

    def metrics(self, hosts: Iterable[Host | str] | None = None) -> builtins.list[HostMetrics]:
        self._hv.require(Capability.HOST_METRICS, "hosts.metrics")
        chosen = self.list() if hosts is None else [self.get(h) for h in hosts]
        return self._hv.call("hosts.metrics", self._b.host_metrics, chosen)


class PoolManager(_Manager):
    def list(self) -> list[StoragePool]:
        return self._hv.call("pools.list", self._b.list_pools)

    def get(self, ref: StoragePool | str) -> StoragePool:
        found: StoragePool = _find(self.list(), ref, "storage pool")
        return found


class NetworkManager(_Manager):
    def list(self) -> list[Network]:
        return self._hv.call("networks.list", self._b.list_networks)

    def get(self, ref: Network | str) -> Network:
        found: Network = _find(self.list(), ref, "network")
        return found


class VolumeManager(_Manager):
    def list(self, pool: StoragePool | str | None = None) -> list[Volume]:
        pools = self._hv.pools.list() if pool is None else [self._hv.pools.get(pool)]
        return [v for p in pools for v in self._hv.call("volumes.list", self._b.list_volumes, p)]

    def get(self, ref: Volume | str) -> Volume:
        ref_id = _ref_text(ref, Volume, "volume")
        vol: Volume = self._hv.call("volumes.get", self._b.get_volume, ref_id)
        return vol

    def create(
        self, pool: StoragePool | str, name: str, size_gib: float, *, format: DiskFormat | str | None = None
    ) -> Volume:
        """Create an empty volume of ``size_gib`` in ``pool`` (format: the pool's preferred one)."""
        self._hv.require(Capability.VOLUME_CREATE, "volumes.create")
        check_name("volume name", name)
        if isinstance(size_gib, bool) or not isinstance(size_gib, int | float) or size_gib <= 0:
            raise InvalidSpec(f"volume size_gib must be a positive number, got {size_gib!r}")
        fmt = _format(format)
        target = self._hv.pools.get(pool)
        fmt = _pick_format(target, fmt)
        if any(v.name == name for v in self.list(target)):
            raise AlreadyExists(f"volume {name!r} exists in pool {target.name!r}")
        size = -(-int(size_gib * 1024**3) // 1024**2) * 1024**2
        if size > target.free_bytes and fmt is DiskFormat.RAW:
            raise InvalidSpec(f"pool {target.name!r} has {target.free_bytes} bytes free; {size} asked")
        vol: Volume = self._hv.run(
            "volumes.create", name, lambda: self._b.create_volume(target, name, size, fmt), wait=True, timeout=None
        )
        return vol

    def delete(self, volume: Volume | str) -> None:
        """Delete a volume; refuses one that a VM uses (delete the VM, or detach it, first)."""
        self._hv.require(Capability.VOLUME_DELETE, "volumes.delete")
        vol = self.get(volume)
        users = [vm.name for vm in self._hv.vms.list() if any(d.volume == vol.id for d in vm.disks)]
        if users:
            raise InvalidState(f"volume {vol.name!r} is used by VM(s) {', '.join(users)}")
        self._hv.run("volumes.delete", vol.id, lambda: self._b.delete_volume(vol), wait=True, timeout=None)

    def upload(
        self, volume: Volume | str, source: str | os.PathLike[str] | IO[bytes], *, progress: ProgressFn | None = None
    ) -> Volume:
        """Write raw content (a path or a binary stream) into a volume, as the guest will see it."""
        self._hv.require(Capability.VOLUME_UPLOAD, "volumes.upload")
        if isinstance(source, str | os.PathLike) and not Path(source).is_file():
            raise InvalidSpec(f"{source} is not a file")
        vol = self.get(volume)
        with _open(source, "rb") as (stream, size):
            if size is None:
                raise InvalidSpec("upload needs a file or a seekable stream, to know its size")
            if size > vol.capacity_bytes:
                raise InvalidSpec(f"{size} bytes do not fit volume {vol.name!r} of {vol.capacity_bytes} bytes")
            self._hv.run(
                "volumes.upload",
                vol.id,
                lambda: self._b.upload_volume(vol, stream, size, progress or _noop),
                wait=True,
                timeout=None,
            )
        return self.get(vol.id)

    def download(
        self, volume: Volume | str, dest: str | os.PathLike[str] | IO[bytes], *, progress: ProgressFn | None = None
    ) -> int:
        """Write a volume's raw content to a path or a binary stream; return the byte count."""
        self._hv.require(Capability.VOLUME_DOWNLOAD, "volumes.download")
        vol = self.get(volume)
        with _open(dest, "wb") as (stream, _):
            count: int = self._hv.run(
                "volumes.download",
                vol.id,
                lambda: self._b.download_volume(vol, stream, progress or _noop),
                wait=True,
                timeout=None,
            )
        return count


class VMManager(_Manager):
    def list(self) -> list[VM]:
        return self._hv.call("vms.list", self._b.list_vms)

    def get(self, ref: VMRef) -> VM:
        """Read a VM again, by VM value, id or name; NotFound if absent."""
        text = _ref_text(ref, VM, "VM")
        return self._hv.call("vms.get", self._b.get_vm, text)

    def _state(self, ref: VMRef, operation: str, allowed: set[PowerState], hint: str) -> VM:
        vm = self.get(ref)
        if vm.power_state not in allowed:
            raise InvalidState(f"cannot {operation} VM {vm.name!r}: it is {vm.power_state.value}{hint}")
        return vm

    def _reread(self, vm_id: str) -> Callable[[Any], VM]:
        return lambda result: (
            result if isinstance(result, VM) else self.get(result if isinstance(result, str) else vm_id)
        )

    # -- create / delete -----------------------------------------------------------------------------
    def create(
        self, spec: VMSpec, *, wait: bool = True, timeout: float | None = None, progress: ProgressCallback | None = None
    ) -> Any:
        """Create a stopped VM. Everything the spec names is checked before anything is created."""
        self._hv.require(Capability.VM_CREATE, "vms.create")
        if not isinstance(spec, VMSpec):
            raise InvalidSpec(f"vms.create takes a VMSpec, got {type(spec).__name__}")
        resolved = self._check_spec(spec)

        def create() -> VM:
            try:
                result = self._b.create_vm(resolved)
                if isinstance(result, Task):
                    result = result.wait(self._hv.task_timeout if timeout is None else timeout, progress)
            except BaseException:
                self._remove_leftover(spec.name)
                raise
            return self._reread(spec.name)(result)

        return self._hv.run("vms.create", spec.name, create, wait=wait, timeout=timeout, progress=progress)

    def _check_spec(self, spec: VMSpec) -> VMSpec:
        hv = self._hv
        if spec.firmware.value == "uefi":
            hv.require(Capability.UEFI, "vms.create with UEFI firmware")
        if spec.cloud_init is not None:
            hv.require(Capability.CLOUD_INIT, "vms.create with cloud_init")
        if any(vm.name == spec.name for vm in self.list()):
            raise AlreadyExists(f"a VM named {spec.name!r} exists already on {hv.kind}")
        if spec.host is not None:
            hv.hosts.get(spec.host)
        networks = hv.networks.list() if spec.nics else []
        for nic in spec.nics:
            _find(networks, nic.network, "network")
        if not spec.disks:
            return spec
        pools = hv.pools.list()
        disks: builtins.list[DiskSpec] = []
        for disk in spec.disks:
            if disk.volume is not None:
                hv.volumes.get(disk.volume)
                disks.append(disk)
                continue
            pool = _find(pools, disk.pool, "storage pool") if disk.pool else _default_pool(pools)
            fmt = _pick_format(pool, disk.format)
            disks.append(attrs.evolve(disk, pool=pool.name, format=fmt))
        return attrs.evolve(spec, disks=disks)

    def _remove_leftover(self, name: str) -> None:
        """After a failed create: remove the half-made VM, which did not exist before."""
        try:
            with self._hv.translating("vms.create clean-up"):
                vm = self._b.get_vm(name)
                result = self._b.delete_vm(vm, False)
                if isinstance(result, Task):
                    result.wait(self._hv.task_timeout)
            log.warning("removed the partly created VM %r after a failed create", name)
        except NotFound:
            pass
        except HvkitError as exc:
            log.error("could not remove the partly created VM %r: %s", name, exc)

    def delete(
        self,
        vm: VMRef,
        *,
        keep_disks: bool = False,
        force: bool = False,
        wait: bool = True,
        timeout: float | None = None,
    ) -> Any:
        """Delete a stopped VM and its disks (``keep_disks=True`` keeps them); ``force`` powers it off first."""
        self._hv.require(Capability.VM_DELETE, "vms.delete")
        cur = self.get(vm)
        if cur.power_state not in _OFF:
            if not force:
                raise InvalidState(
                    f"cannot delete VM {cur.name!r}: it is {cur.power_state.value} (stop it, or pass force=True)"
                )
            self.stop(cur, force=True)
            cur = self.get(cur.id)
        return self._hv.run(
            "vms.delete",
            cur.name,
            lambda: self._b.delete_vm(cur, keep_disks),
            wait=wait,
            timeout=timeout,
            then=lambda _: None,
        )

    # -- power -----------------------------------------------------------------------------------------
    def start(self, vm: VMRef, *, wait: bool = True, timeout: float | None = None) -> Any:
        """Power on (a suspended VM resumes from its saved state)."""
        self._hv.require(Capability.VM_POWER, "vms.start")
        cur = self._state(vm, "start", _STARTABLE, " (a paused VM is resumed with vms.resume)")
        if cur.template:
            raise InvalidState(f"VM {cur.name!r} is a template; templates never start (clone it)")
        return self._hv.run(
            "vms.start", cur.name, lambda: self._b.start_vm(cur), wait=wait, timeout=timeout, then=self._reread(cur.id)
        )

    def stop(self, vm: VMRef, *, force: bool = False, timeout: float = 120.0, wait: bool = True) -> Any:
        """Shut down through the guest within ``timeout`` s (Timeout if it does not); ``force`` powers off."""
        self._hv.require(Capability.VM_POWER, "vms.stop")
        if not timeout > 0:
            raise InvalidSpec(f"stop timeout must be > 0 seconds, got {timeout}")
        allowed = {PowerState.RUNNING, PowerState.PAUSED, PowerState.STARTING, PowerState.STOPPING, PowerState.CRASHED}
        if force:
            allowed |= {PowerState.SUSPENDED, PowerState.UNKNOWN}
        cur = self._state(vm, "stop", allowed, "" if force else " (force=True discards a suspended state)")
        return self._hv.run(
            "vms.stop",
            cur.name,
            lambda: self._b.stop_vm(cur, force, timeout),
            wait=wait,
            timeout=None,
            then=self._reread(cur.id),
        )

    def reboot(self, vm: VMRef, *, force: bool = False, wait: bool = True, timeout: float | None = None) -> Any:
        self._hv.require(Capability.VM_POWER, "vms.reboot")
        cur = self._state(vm, "reboot", {PowerState.RUNNING}, "")
        return self._hv.run(
            "vms.reboot",
            cur.name,
            lambda: self._b.reboot_vm(cur, force),
            wait=wait,
            timeout=timeout,
            then=self._reread(cur.id),
        )

    def pause(self, vm: VMRef, *, wait: bool = True, timeout: float | None = None) -> Any:
        self._hv.require(Capability.VM_PAUSE, "vms.pause")
        cur = self._state(vm, "pause", {PowerState.RUNNING}, "")
        return self._hv.run(
            "vms.pause", cur.name, lambda: self._b.pause_vm(cur), wait=wait, timeout=timeout, then=self._reread(cur.id)
        )

    def resume(self, vm: VMRef, *, wait: bool = True, timeout: float | None = None) -> Any:
        """Resume a paused VM (a suspended one is started with vms.start)."""
        self._hv.require(Capability.VM_PAUSE, "vms.resume")
        cur = self._state(vm, "resume", {PowerState.PAUSED}, " (a suspended VM is resumed with vms.start)")
        return self._hv.run(
            "vms.resume",
            cur.name,
            lambda: self._b.resume_vm(cur),
            wait=wait,
            timeout=timeout,
            then=self._reread(cur.id),
        )

    def suspend(self, vm: VMRef, *, wait: bool = True, timeout: float | None = None) -> Any:
        """Save the VM's memory to disk and stop it; vms.start resumes it."""
        self._hv.require(Capability.VM_SUSPEND, "vms.suspend")
        cur = self._state(vm, "suspend", {PowerState.RUNNING, PowerState.PAUSED}, "")
        return self._hv.run(
            "vms.suspend",
            cur.name,
            lambda: self._b.suspend_vm(cur),
            wait=wait,
            timeout=timeout,
            then=self._reread(cur.id),
        )

    # -- change ----------------------------------------------------------------------------------------
    def reconfigure(
        self,
        vm: VMRef,
        *,
        cpus: int | None = None,
        memory_mib: int | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> Any:
        """Change CPUs and/or memory; a running VM needs VM_RECONFIGURE_LIVE."""
        self._hv.require(Capability.VM_RECONFIGURE, "vms.reconfigure")
        if cpus is None and memory_mib is None:
            raise InvalidSpec("reconfigure needs cpus and/or memory_mib")
        check_sizing(cpus, memory_mib)
        cur = self.get(vm)
        if cur.power_state not in _OFF and Capability.VM_RECONFIGURE_LIVE not in self._hv.capabilities:
            raise InvalidState(
                f"VM {cur.name!r} is {cur.power_state.value}; "
                f"the {self._hv.kind} backend changes CPUs and memory only while stopped"
            )
        return self._hv.run(
            "vms.reconfigure",
            cur.name,
            lambda: self._b.reconfigure_vm(cur, cpus, memory_mib),
            wait=wait,
            timeout=timeout,
            then=self._reread(cur.id),
        )

    def mark_template(self, vm: VMRef, *, wait: bool = True, timeout: float | None = None) -> Any:
        """Turn a stopped VM into a template: a source for (linked) clones that never starts."""
        self._hv.require(Capability.VM_TEMPLATE, "vms.mark_template")
        cur = self._state(vm, "mark as template", _OFF, "")
        if cur.template:
            raise InvalidState(f"VM {cur.name!r} is a template already")
        return self._hv.run(
            "vms.mark_template", cur.name, lambda: self._b.mark_template(cur), wait=wait, timeout=timeout,
            then=self._reread(cur.id),
        )

    def clone(
        self,
        vm: VMRef,
        name: str,
        *,
        linked: bool = False,
        host: str | None = None,
        pool: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> Any:
        """Clone into a new stopped VM; ``linked=True`` shares the source's disks copy-on-write."""
        self._hv.require(Capability.VM_CLONE, "vms.clone")
        if linked:
            self._hv.require(Capability.VM_LINKED_CLONE, "vms.clone(linked=True)")
        check_name("clone name", name)
        src = self.get(vm)
        if any(v.name == name for v in self.list()):
            raise AlreadyExists(f"a VM named {name!r} exists already on {self._hv.kind}")
        if host is not None:
            host = self._hv.hosts.get(host).id
        if pool is not None:
            pool = self._hv.pools.get(pool).name

        def clone() -> VM:
            try:
                result = self._b.clone_vm(src, name, linked, host, pool)
                if isinstance(result, Task):
                    result = result.wait(self._hv.task_timeout if timeout is None else timeout, progress)
            except BaseException:
                self._remove_leftover(name)
                raise
            return self._reread(name)(result)

        return self._hv.run("vms.clone", name, clone, wait=wait, timeout=timeout, progress=progress)

    def migrate(
        self,
        vm: VMRef,
        *,
        host: str | None = None,
        pool: str | None = None,
        live: bool = True,
        wait: bool = True,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> Any:
        """Move a VM to another host (live if running) and/or its disks to another pool."""
        if host is not None:
            self._hv.require(Capability.VM_MIGRATE, "vms.migrate")
        if pool is not None:
            self._hv.require(Capability.VM_STORAGE_MIGRATE, "vms.migrate(pool=...)")
        if host is None and pool is None:
            raise InvalidSpec("migrate needs a target host and/or pool")
        cur = self.get(vm)
        if host is not None:
            target = self._hv.hosts.get(host)
            if target.maintenance:
                raise InvalidState(f"host {target.name!r} is in maintenance mode")
            if target.id == cur.host or target.name == cur.host:
                raise InvalidSpec(f"VM {cur.name!r} is on host {target.name!r} already")
            host = target.id
        if pool is not None:
            pool = self._hv.pools.get(pool).name
        return self._hv.run(
            "vms.migrate",
            cur.name,
            lambda: self._b.migrate_vm(cur, host, pool, live),
            wait=wait,
            timeout=timeout,
            progress=progress,
            then=self._reread(cur.id),
        )

    # -- observe ---------------------------------------------------------------------------------------
    def console(self, vm: VMRef) -> Console:
        self._hv.require(Capability.VM_CONSOLE, "vms.console")
        cur = self._state(vm, "open a console on", {PowerState.RUNNING, PowerState.PAUSED}, "")
        return self._hv.call("vms.console", self._b.console, cur)

    def guest_ips(self, vm: VMRef) -> builtins.list[str]:
        self._hv.require(Capability.VM_GUEST_IPS, "vms.guest_ips")
        return self._hv.call("vms.guest_ips", self._b.guest_ips, self.get(vm))

    def metrics(self, vms: Iterable[VMRef] | None = None) -> builtins.list[VMMetrics]:
        """Counters for the given VMs (default: all), read in bulk."""
        self._hv.require(Capability.VM_METRICS, "vms.metrics")
        chosen = self.list() if vms is None else [v if isinstance(v, VM) else self.get(v) for v in vms]
        return self._hv.call("vms.metrics", self._b.vm_metrics, chosen)

    def watch(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` on lifecycle events; returns a function that stops watching."""
        self._hv.require(Capability.VM_EVENTS, "vms.watch")
        return self._hv.call("vms.watch", self._b.subscribe, callback)


class SnapshotManager(_Manager):
    def list(self, vm: VMRef) -> list[Snapshot]:
        """Every snapshot of a VM; ``parent`` links make the tree."""
        self._hv.require(Capability.SNAPSHOT, "snapshots.list")
        return self._hv.call("snapshots.list", self._b.list_snapshots, self._hv.vms.get(vm))

    def get(self, vm: VMRef, ref: str) -> Snapshot:
        found: Snapshot = _find(self.list(vm), ref, "snapshot")
        return found

    def create(
        self,
        vm: VMRef,
        name: str,
        *,
        description: str = "",
        memory: bool = False,
        quiesce: bool = False,
        wait: bool = True,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> Any:
        self._hv.require(Capability.SNAPSHOT, "snapshots.create")
        if memory:
            self._hv.require(Capability.SNAPSHOT_MEMORY, "snapshots.create(memory=True)")
        check_name("snapshot name", name)
        cur = self._hv.vms.get(vm)
        if memory and cur.power_state is not PowerState.RUNNING:
            raise InvalidState(f"a memory snapshot needs a running VM; {cur.name!r} is {cur.power_state.value}")
        existing = self._hv.call("snapshots.list", self._b.list_snapshots, cur)
        if any(s.name == name for s in existing):
            raise AlreadyExists(f"VM {cur.name!r} has a snapshot named {name!r} already")

        def found(result: Any) -> Snapshot:
            if isinstance(result, Snapshot):
                return result
            return self.get(cur.id, name)

        return self._hv.run(
            "snapshots.create",
            cur.name,
            lambda: self._b.create_snapshot(cur, name, description, memory, quiesce),
            wait=wait,
            timeout=timeout,
            progress=progress,
            then=found,
        )

    def revert(self, snapshot: Snapshot, *, wait: bool = True, timeout: float | None = None) -> Any:
        """Return the VM to the snapshot (its power state too, where the snapshot kept memory)."""
        self._hv.require(Capability.SNAPSHOT, "snapshots.revert")
        snap, cur = self._resolve(snapshot)
        return self._hv.run(
            "snapshots.revert",
            cur.name,
            lambda: self._b.revert_snapshot(cur, snap),
            wait=wait,
            timeout=timeout,
            then=lambda _: self._hv.vms.get(cur.id),
        )

    def delete(
        self, snapshot: Snapshot, *, children: bool = False, wait: bool = True, timeout: float | None = None
    ) -> Any:
        """Delete a snapshot (its data merges into its children); ``children=True`` removes the subtree."""
        self._hv.require(Capability.SNAPSHOT, "snapshots.delete")
        snap, cur = self._resolve(snapshot)
        return self._hv.run(
            "snapshots.delete",
            cur.name,
            lambda: self._b.delete_snapshot(cur, snap, children),
            wait=wait,
            timeout=timeout,
            then=lambda _: None,
        )

    def _resolve(self, snapshot: Snapshot) -> tuple[Snapshot, VM]:
        if not isinstance(snapshot, Snapshot):
            raise InvalidSpec(f"expected a Snapshot (from snapshots.list or create), got {type(snapshot).__name__}")
        cur = self._hv.vms.get(snapshot.vm)
        return self.get(cur.id, snapshot.id), cur


# -- helpers ---------------------------------------------------------------------------------------------
def _ref_text(ref: object, model: type, what: str) -> str:
    if isinstance(ref, model):
        return str(ref.id)  # type: ignore[attr-defined]
    if isinstance(ref, str) and ref:
        return ref
    raise InvalidSpec(f"expected a {what} or its id or name, got {ref!r}")


def _find(items: list[Any], ref: object, what: str) -> Any:
    """Find by model value, id, then name; NotFound lists what exists."""
    text = ref if isinstance(ref, str) else getattr(ref, "id", None)
    if not isinstance(text, str) or not text:
        raise InvalidSpec(f"expected a {what} or its id or name, got {ref!r}")
    for item in items:
        if item.id == text:
            return item
    for item in items:
        if item.name == text:
            return item
    names = ", ".join(sorted(i.name for i in items)[:20]) or "none"
    raise NotFound(f"no {what} {text!r} (there are: {names})")


def _default_pool(pools: list[StoragePool]) -> StoragePool:
    for pool in pools:
        if pool.name == "default":
            return pool
    active = [p for p in pools if p.active]
    if not active:
        raise InvalidSpec("the disk names no pool and the hypervisor has no active storage pool")
    return max(active, key=lambda p: p.free_bytes)


def _format(value: DiskFormat | str | None) -> DiskFormat | None:
    if value is None or isinstance(value, DiskFormat):
        return value
    try:
        return DiskFormat(value)
    except ValueError:
        raise InvalidSpec(f"unknown disk format {value!r} (one of: {', '.join(f.value for f in DiskFormat)})") from None


def _pick_format(pool: StoragePool, wanted: DiskFormat | None) -> DiskFormat:
    if not pool.formats:
        return wanted or DiskFormat.RAW
    if wanted is None:
        return DiskFormat.QCOW2 if DiskFormat.QCOW2 in pool.formats else sorted(pool.formats, key=lambda f: f.value)[0]
    if wanted not in pool.formats:
        ok = ", ".join(sorted(f.value for f in pool.formats))
        raise InvalidSpec(f"pool {pool.name!r} does not take {wanted.value} disks (it takes: {ok})")
    return wanted


def _noop(done: int, total: int) -> None:
    return None


@contextlib.contextmanager
def _open(target: str | os.PathLike[str] | IO[bytes], mode: str) -> Iterator[tuple[IO[bytes], int | None]]:
    if isinstance(target, str | os.PathLike):
        path = Path(target)
        if mode == "rb" and not path.is_file():
            raise InvalidSpec(f"{path} is not a file")
        with open(path, mode) as stream:  # noqa: PTH123
            yield stream, (path.stat().st_size if mode == "rb" else None)
        return
    size = None
    if mode == "rb" and target.seekable():
        here = target.tell()
        size = target.seek(0, os.SEEK_END) - here
        target.seek(here)
    yield target, size
