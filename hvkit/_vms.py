"""hv.vms: create, power, change, clone, migrate and observe VMs."""

from __future__ import annotations

import builtins
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ._managers import Manager
from ._resolve import default_pool, find, pick_format, ref_text
from .backend import Event
from .capabilities import Capability
from .errors import AlreadyExists, HvkitError, InvalidSpec, InvalidState, NotFound
from .models import VM, Console, DiskSpec, PowerState, VMMetrics, VMSpec
from .models._checks import check_number
from .models.spec import check_name, check_sizing
from .tasks import ProgressCallback, Task

__all__ = ["VMManager", "VMRef"]

log = logging.getLogger("hvkit")
VMRef = VM | str
_STARTABLE = {PowerState.STOPPED, PowerState.SUSPENDED, PowerState.CRASHED}
_OFF = {PowerState.STOPPED, PowerState.SUSPENDED, PowerState.CRASHED}


class VMManager(Manager):
    def list(self, *, detail: bool = False) -> list[VM]:
        """Every VM, from one bulk read: name, power state, CPUs, memory, host, IPs, template flag.

        ``detail=True`` adds devices (disks with their pools and backing, NICs) and notes, read in bulk where
        the vendor allows; ``vms.get`` reads one VM in full. ``vm.extra["detail"]`` says what a VM carries.
        """
        if not detail:
            return self._hv.call("vms.list", self._b.list_vms)
        if "detail" in inspect.signature(self._b.list_vms).parameters:
            return self._hv.call("vms.list", self._b.list_vms, True)
        # a backend written before the detail knob: read each VM in full
        return [self.get(vm.id) for vm in self._hv.call("vms.list", self._b.list_vms)]

    def get(self, ref: VMRef) -> VM:
        """Read a VM again, by VM value, id or name; NotFound if absent."""
        text = ref_text(ref, VM, "VM")
        return self._hv.call("vms.get", self._b.get_vm, text)

    def _state(self, ref: VMRef, operation: str, allowed: set[PowerState], hint: str) -> VM:
        vm = self.get(ref)
        if vm.power_state not in allowed:
            raise InvalidState(f"cannot {operation} VM {vm.name!r}: it is {vm.power_state.value}{hint}")
        return vm

    def _apply(
        self,
        operation: str,
        cur: VM,
        call: Callable[[], Any],
        wait: bool,
        timeout: float | None,
        progress: ProgressCallback | None = None,
    ) -> Any:
        """Run a change of ``cur``; return the VM read again (or a Task with ``wait=False``)."""
        return self._hv.run(
            operation, cur.name, call, wait=wait, timeout=timeout, progress=progress, then=self._reread(cur.id)
        )

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
        if any(getattr(d, "image", None) is not None for d in spec.disks):  # copies of images: hvkit.images
            return self._hv.images.create_vm(spec, wait=wait, timeout=timeout, progress=progress)
        resolved = self._check_spec(spec)

        return self._hv.run(
            "vms.create",
            spec.name,
            lambda: self._b.create_vm(resolved),
            wait=wait,
            timeout=timeout,
            progress=progress,
            then=self._reread(spec.name),
            undo=self._remove_made("vms.create"),
        )

    def _check_limits(self, **asked: Any) -> None:
        """InvalidSpec naming each limit the backend declares (``traits.limits``) that ``asked`` breaks."""
        problems = self._b.traits.limits.problems(self._hv.kind, **asked)
        if problems:
            raise InvalidSpec("; ".join(problems))

    def _check_spec(self, spec: VMSpec) -> VMSpec:
        hv = self._hv
        self._check_limits(
            name=spec.name, cpus=spec.cpus, memory_mib=spec.memory_mib, buses=[d.bus for d in spec.disks]
        )
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
            find(networks, nic.network, "network")
        if not spec.disks:
            return spec
        pools = hv.pools.list()
        disks: builtins.list[DiskSpec] = []
        for disk in spec.disks:
            if disk.volume is not None:
                hv.volumes.get(disk.volume)
                disks.append(disk)
                continue
            pool = find(pools, disk.pool, "storage pool") if disk.pool else default_pool(pools)
            fmt = pick_format(pool, disk.format)
            disks.append(attrs.evolve(disk, pool=pool.name, format=fmt))
        return attrs.evolve(spec, disks=disks)

    def _remove_made(self, operation: str) -> Callable[[Any], None]:
        """Undo for a create or clone that finished after its caller gave up: delete the VM it made.

        The VM is known by the id in the backend's result (a VM, or its id), never by a name: a lookup
        that lands on any other VM (e.g. one *named* like that id) removes nothing.
        """

        def undo(result: Any) -> None:
            vm_id = result.id if isinstance(result, VM) else result if isinstance(result, str) else None
            if not vm_id:
                raise HvkitError(f"{operation} returned no VM id to remove ({type(result).__name__})")
            self._delete_by_id(vm_id, operation)

        return undo

    def _delete_by_id(self, vm_id: str, operation: str) -> None:
        with self._hv.translating(f"{operation} clean-up"):
            try:
                vm = self._b.get_vm(vm_id)
            except NotFound:
                return
            if vm.id != vm_id:
                return  # only a VM named like the id: not ours
            if vm.power_state not in _OFF:
                result = self._b.stop_vm(vm, True, 60.0)
                if isinstance(result, Task):
                    result.wait(self._hv.task_timeout)
            result = self._b.delete_vm(vm, False)
            if isinstance(result, Task):
                result.wait(self._hv.task_timeout)
        log.warning("removed VM %s, made by a %s that had timed out", vm_id, operation)

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
        return self._apply("vms.start", cur, lambda: self._b.start_vm(cur), wait, timeout)

    def stop(self, vm: VMRef, *, force: bool = False, timeout: float = 120.0, wait: bool = True) -> Any:
        """Shut down through the guest within ``timeout`` s (Timeout if it does not); ``force`` powers off."""
        self._hv.require(Capability.VM_POWER, "vms.stop")
        if check_number("stop timeout", timeout, 0.0, 10 * 365 * 86400.0, low_text="0 seconds") == 0:
            raise InvalidSpec("stop timeout must be > 0 seconds, got 0")
        allowed = {PowerState.RUNNING, PowerState.PAUSED, PowerState.STARTING, PowerState.STOPPING, PowerState.CRASHED}
        if force:
            allowed |= {PowerState.SUSPENDED, PowerState.UNKNOWN}
        cur = self._state(vm, "stop", allowed, "" if force else " (force=True discards a suspended state)")
        return self._apply("vms.stop", cur, lambda: self._b.stop_vm(cur, force, timeout), wait, None)

    def reboot(self, vm: VMRef, *, force: bool = False, wait: bool = True, timeout: float | None = None) -> Any:
        self._hv.require(Capability.VM_POWER, "vms.reboot")
        cur = self._state(vm, "reboot", {PowerState.RUNNING}, "")
        return self._apply("vms.reboot", cur, lambda: self._b.reboot_vm(cur, force), wait, timeout)

    def pause(self, vm: VMRef, *, wait: bool = True, timeout: float | None = None) -> Any:
        self._hv.require(Capability.VM_PAUSE, "vms.pause")
        cur = self._state(vm, "pause", {PowerState.RUNNING}, "")
        return self._apply("vms.pause", cur, lambda: self._b.pause_vm(cur), wait, timeout)

    def resume(self, vm: VMRef, *, wait: bool = True, timeout: float | None = None) -> Any:
        """Resume a paused VM (a suspended one is started with vms.start)."""
        self._hv.require(Capability.VM_PAUSE, "vms.resume")
        cur = self._state(vm, "resume", {PowerState.PAUSED}, " (a suspended VM is resumed with vms.start)")
        return self._apply("vms.resume", cur, lambda: self._b.resume_vm(cur), wait, timeout)

    def suspend(self, vm: VMRef, *, wait: bool = True, timeout: float | None = None) -> Any:
        """Save the VM's memory to disk and stop it; vms.start resumes it."""
        self._hv.require(Capability.VM_SUSPEND, "vms.suspend")
        cur = self._state(vm, "suspend", {PowerState.RUNNING, PowerState.PAUSED}, "")
        return self._apply("vms.suspend", cur, lambda: self._b.suspend_vm(cur), wait, timeout)

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
        self._check_limits(cpus=cpus, memory_mib=memory_mib)
        cur = self.get(vm)
        if cur.power_state not in _OFF and Capability.VM_RECONFIGURE_LIVE not in self._hv.capabilities:
            raise InvalidState(
                f"VM {cur.name!r} is {cur.power_state.value}; "
                f"the {self._hv.kind} backend changes CPUs and memory only while stopped"
            )
        return self._apply("vms.reconfigure", cur, lambda: self._b.reconfigure_vm(cur, cpus, memory_mib), wait, timeout)

    def mark_template(self, vm: VMRef, *, wait: bool = True, timeout: float | None = None) -> Any:
        """Turn a stopped VM into a template: a source for (linked) clones that never starts."""
        self._hv.require(Capability.VM_TEMPLATE, "vms.mark_template")
        cur = self._state(vm, "mark as template", _OFF, "")
        if cur.template:
            raise InvalidState(f"VM {cur.name!r} is a template already")
        return self._apply("vms.mark_template", cur, lambda: self._b.mark_template(cur), wait, timeout)

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
        self._check_limits(name=name)
        src = self.get(vm)
        if any(v.name == name for v in self.list()):
            raise AlreadyExists(f"a VM named {name!r} exists already on {self._hv.kind}")
        if host is not None:
            host = self._hv.hosts.get(host).id
        if pool is not None:
            pool = self._hv.pools.get(pool).name

        return self._hv.run(
            "vms.clone",
            name,
            lambda: self._b.clone_vm(src, name, linked, host, pool),
            wait=wait,
            timeout=timeout,
            progress=progress,
            then=self._reread(name),
            undo=self._remove_made("vms.clone"),
        )

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
        return self._apply(
            "vms.migrate", cur, lambda: self._b.migrate_vm(cur, host, pool, live), wait, timeout, progress
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
