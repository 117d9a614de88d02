"""SimBackend: an in-process reference hypervisor, the embedded default (``sim://`` / ``sim://NAME``).

Volumes are real image files made with qemu-img; snapshots really keep and restore disk data;
tasks take time and report progress; faults can be injected (``hv.backend.faults``).
CPU, memory, disk and network counters come from a load model (``VMSpec.extra["sim.load"]``, 0..1).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ..._images import _qemuimg as qi
from ..._rollback import Rollback
from ...backend import Backend, Event, ProgressFn
from ...capabilities import Capability
from ...driver import Traits
from ...errors import AlreadyExists, InvalidSpec, InvalidState, NotFound, Timeout
from ...models import (
    VM,
    Console,
    Disk,
    DiskBus,
    DiskFormat,
    Firmware,
    GuestOS,
    Host,
    HostMetrics,
    Network,
    Nic,
    NicModel,
    PowerState,
    Snapshot,
    StoragePool,
    VMMetrics,
    VMSpec,
    Volume,
)
from ...tasks import Task
from ._portability import PORTABILITY_NOTES
from ._tasks import start_task
from ._world import World, world_for

__all__ = ["SimBackend"]

CHUNK = 1024 * 1024
_EXT = {"vpc": "vhd"}


def _now() -> float:
    return time.time()


class SimBackend(Backend):
    kind = "sim"
    capabilities = frozenset(Capability)
    portability_notes = PORTABILITY_NOTES
    traits = Traits(disk_export=True, disk_import=True)  # every bus and NIC model; disks are local files

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        self.task_delay = options.float_option("task_delay", 0.02, low=0, high=3600)  # checked before a world opens
        self.world: World = world_for(options)

    @property
    def faults(self) -> Any:
        return self.world.faults

    @property
    def version(self) -> str:
        return "hvkit-sim 1.0"

    def connect(self) -> None:
        self.world.faults.check("connect")

    # -- helpers ------------------------------------------------------------------------------------
    def _enter(self, operation: str) -> None:
        self.world.faults.check(operation)

    def _task(self, operation: str, target: str, effect: Callable[[], Any]) -> Task:
        return start_task(operation, target, self.world.faults.duration(operation, self.task_delay), effect)

    def _vm(self, vm_id: str) -> dict[str, Any]:
        try:
            return self.world.vms[vm_id]
        except KeyError:
            raise NotFound(f"no VM {vm_id!r} on sim://{self.world.name}") from None

    def _changed(self, vm: dict[str, Any] | None = None, event: str | None = None) -> None:
        self.world.save()
        if vm is not None and event is not None:
            self._log(vm, f"{event} ({vm['state']})")
            self.world.emit(vm, event)

    def _log(self, vm: dict[str, Any], line: str) -> None:
        path = self.world.root / "console" / f"{vm['id']}.log"
        path.parent.mkdir(exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} {vm['name']}: {line}\n")

    def _volume_model(self, v: dict[str, Any]) -> Volume:
        path = Path(v["path"])
        allocation = path.stat().st_blocks * 512 if path.exists() else 0
        return Volume(
            v["id"],
            v["name"],
            v["pool"],
            v["capacity"],
            allocation,
            DiskFormat(v["format"]),
            str(path),
            v.get("backing"),
        )

    def _vm_model(self, vm: dict[str, Any]) -> VM:
        disks = []
        for d in vm["disks"]:
            v = self.world.volumes.get(d["volume"])
            disks.append(
                Disk(
                    d["name"],
                    v["capacity"] if v else 0,
                    DiskFormat(v["format"]) if v else None,
                    DiskBus(d["bus"]),
                    v["pool"] if v else None,
                    d["volume"],
                    v["path"] if v else None,
                )
            )
        nics = [Nic(n["mac"], n["network"], NicModel(n["model"]), n["name"]) for n in vm["nics"]]
        return VM(
            vm["id"],
            vm["name"],
            PowerState(vm["state"]),
            vm["cpus"],
            vm["memory_mib"],
            vm["uuid"],
            disks,
            nics,
            vm["host"],
            Firmware(vm["firmware"]),
            GuestOS(vm["guest_os"]),
            vm["notes"],
            tags=frozenset(vm["tags"]),
            ip_addresses=tuple(vm["ips"]),
            template=vm["template"],
            state_since=dt.datetime.fromtimestamp(vm["state_since"], dt.UTC),
            extra={"sim.load": vm["load"]},
        )

    def _set_state(self, vm: dict[str, Any], state: PowerState, event: str) -> None:
        if vm["state"] == PowerState.RUNNING.value and state is not PowerState.RUNNING:
            vm["run_seconds"] += _now() - vm["state_since"]
        vm["state"] = state.value
        vm["state_since"] = _now()
        if state in (PowerState.STOPPED, PowerState.SUSPENDED, PowerState.CRASHED):
            vm["ips"] = []
        self._changed(vm, event)

    # -- inventory ----------------------------------------------------------------------------------
    def list_hosts(self) -> list[Host]:
        self._enter("list_hosts")
        with self.world.lock:
            usage = self._host_usage()
            return [
                Host(
                    h["id"],
                    h["name"],
                    h["sockets"],
                    h["cores"],
                    h["threads"],
                    h["memory_mib"],
                    "sim",
                    self.version,
                    "sim-cpu",
                    2400,
                    usage[h["id"]][0],
                    usage[h["id"]][1],
                    h["maintenance"],
                    True,
                )
                for h in self.world.hosts.values()
            ]

    def _host_usage(self) -> dict[str, tuple[float, int]]:
        usage = {h: [0.0, 0] for h in self.world.hosts}
        for vm in self.world.vms.values():
            if vm["state"] in (PowerState.RUNNING.value, PowerState.PAUSED.value) and vm["host"] in usage:
                load = vm["load"] if vm["state"] == PowerState.RUNNING.value else 0.0
                usage[vm["host"]][0] += vm["cpus"] * load
                usage[vm["host"]][1] += vm["memory_mib"]
        return {h: (min(1.0, u[0] / self.world.hosts[h]["threads"]), int(u[1])) for h, u in usage.items()}

    def list_pools(self) -> list[StoragePool]:
        self._enter("list_pools")
        with self.world.lock:
            used: dict[str, int] = {}
            for v in self.world.volumes.values():
                used[v["pool"]] = used.get(v["pool"], 0) + v["capacity"]
            return [
                StoragePool(
                    p["id"],
                    p["name"],
                    p["capacity"],
                    p["capacity"] - used.get(p["id"], 0),
                    p["shared"],
                    frozenset(DiskFormat(f) for f in p["formats"]),
                    p["type"],
                    None,
                    True,
                    extra={"path": str(self.world.pool_dir(p["id"]))},
                )
                for p in self.world.pools.values()
            ]

    def list_networks(self) -> list[Network]:
        self._enter("list_networks")
        with self.world.lock:
            return [
                Network(
                    n["id"],
                    n["name"],
                    n["type"],
                    n["bridge"],
                    n.get("vlan"),
                    True,
                    None,
                    extra={"subnet": n["subnet"] + ".0/24"},
                )
                for n in self.world.networks.values()
            ]

    def list_vms(self, detail: bool = False) -> list[VM]:
        """Every VM in full (the model is in memory: ``detail`` changes nothing)."""
        self._enter("list_vms")
        with self.world.lock:
            return [self._vm_model(vm) for vm in self.world.vms.values()]

    def get_vm(self, ref: str) -> VM:
        self._enter("get_vm")
        with self.world.lock:
            if ref in self.world.vms:
                return self._vm_model(self.world.vms[ref])
            for vm in self.world.vms.values():
                if ref in (vm["name"], vm["uuid"]):
                    return self._vm_model(vm)
        raise NotFound(f"no VM {ref!r} on sim://{self.world.name}")

    # -- create / delete ----------------------------------------------------------------------------
    def create_vm(self, spec: VMSpec) -> Task:
        self._enter("create_vm")
        return self._task("create_vm", spec.name, lambda: self._create(spec))

    def _create(self, spec: VMSpec) -> VM:
        w = self.world
        with w.lock, Rollback() as undo:
            if any(vm["name"] == spec.name for vm in w.vms.values()):
                raise AlreadyExists(f"a VM named {spec.name!r} exists already")
            vm_id = w.next_id("vm")
            disks = []
            for i, d in enumerate(spec.disks):
                name = d.name or f"disk{i}"
                if d.volume is not None:
                    if d.volume not in w.volumes:
                        raise NotFound(f"no volume {d.volume!r}")
                    volume_id = d.volume
                else:
                    assert d.pool is not None and d.format is not None  # filled in by the core
                    vol = self._new_volume(d.pool, f"{vm_id}-{name}", d.size_bytes, d.format)
                    undo.push(functools.partial(self._remove_volume, vol), f"delete {vol['id']}")
                    volume_id = vol["id"]
                disks.append({"name": name, "volume": volume_id, "bus": d.bus.value})
            w.faults.check("create_vm", stage="define")
            nics = []
            used_macs = {n["mac"] for vm in w.vms.values() for n in vm["nics"]}
            for i, n in enumerate(spec.nics):
                mac = n.mac or self._new_mac(used_macs)
                if n.mac and n.mac in used_macs:
                    raise AlreadyExists(f"MAC address {n.mac} is used by another VM")
                used_macs.add(mac)
                nics.append({"mac": mac, "network": n.network, "model": n.model.value, "name": f"nic{i}"})
            host = (spec.host and self._host_id(spec.host)) or self._least_loaded_host()
            load = float(spec.extra.get("sim.load", 0.5))
            if not 0.0 <= load <= 1.0:
                raise InvalidSpec(f"sim.load must be between 0 and 1, got {load}")
            ci = spec.cloud_init
            vm = {
                "id": vm_id,
                "name": spec.name,
                "uuid": str(uuid.uuid4()),
                "state": PowerState.STOPPED.value,
                "cpus": spec.cpus,
                "memory_mib": spec.memory_mib,
                "disks": disks,
                "nics": nics,
                "host": host,
                "firmware": spec.firmware.value,
                "guest_os": spec.guest_os.value,
                "notes": spec.notes,
                "tags": sorted(spec.tags),
                "template": bool(spec.extra.get("template", False)),
                "ips": [],
                "load": load,
                "snapshots": {},
                "current": None,
                "state_since": _now(),
                "run_seconds": 0.0,
                "cloud_init": None
                if ci is None
                else {
                    "hostname": ci.hostname,
                    "username": ci.username,
                    "ssh_keys": len(ci.ssh_keys),
                    "password_set": ci.password is not None,
                },
            }
            w.vms[vm_id] = vm
            self._changed(vm, "defined")
            return self._vm_model(vm)

    def _new_mac(self, used: set[str]) -> str:
        while True:
            mac = "52:54:00:" + ":".join(f"{b:02x}" for b in os.urandom(3))
            if mac not in used:
                return mac

    def _host_id(self, ref: str) -> str:
        for h in self.world.hosts.values():
            if ref in (h["id"], h["name"]):
                return str(h["id"])
        raise NotFound(f"no host {ref!r}")

    def _least_loaded_host(self) -> str:
        usage = self._host_usage()
        candidates = [h for h in self.world.hosts.values() if not h["maintenance"]] or list(self.world.hosts.values())
        return str(min(candidates, key=lambda h: (usage[h["id"]][1] / h["memory_mib"], h["id"]))["id"])

    def delete_vm(self, vm: VM, keep_disks: bool) -> Task:
        self._enter("delete_vm")

        def effect() -> None:
            with self.world.lock:
                rec = self._vm(vm.id)
                own = [d["volume"] for d in rec["disks"]]
                # the bases it moved off at linked clones, and the volumes only its snapshots still use
                kept = [*rec.get("bases", ()), *(v for s in rec["snapshots"].values() for v in s["files"])]
                own += [v for v in dict.fromkeys(kept) if v not in own]
                clones = [
                    v["id"] for v in self.world.volumes.values() if v.get("backing") in own and v["id"] not in own
                ]
                if clones and not keep_disks:
                    raise InvalidState(
                        f"VM {rec['name']!r} has linked clones using its disks ({', '.join(clones)}); delete them first"
                    )
                for snap in list(rec["snapshots"].values()):
                    self._drop_snapshot_data(rec, snap)
                if not keep_disks:
                    for vol_id in own:
                        shared = [
                            o["name"]
                            for o in self.world.vms.values()
                            if o["id"] != rec["id"] and any(d["volume"] == vol_id for d in o["disks"])
                        ]
                        if not shared and vol_id in self.world.volumes:
                            self._remove_volume(self.world.volumes[vol_id])
                del self.world.vms[rec["id"]]
                self._changed(rec, "undefined")

        return self._task("delete_vm", vm.name, effect)

    # -- power ----------------------------------------------------------------------------------------
    def _power(
        self,
        operation: str,
        vm: VM,
        allowed: set[PowerState],
        target: PowerState,
        event: str,
        extra: Callable[[dict[str, Any]], None] | None = None,
    ) -> Task:
        self._enter(operation)

        def effect() -> VM:
            with self.world.lock:
                rec = self._vm(vm.id)
                if PowerState(rec["state"]) not in allowed:
                    raise InvalidState(f"VM {rec['name']!r} is {rec['state']}")
                if extra is not None:
                    extra(rec)
                self._set_state(rec, target, event)
                return self._vm_model(rec)

        return self._task(operation, vm.name, effect)

    def start_vm(self, vm: VM) -> Task:
        def boot(rec: dict[str, Any]) -> None:
            host = self.world.hosts[rec["host"]]
            if host["maintenance"]:
                raise InvalidState(f"host {host['name']!r} is in maintenance mode")
            used = self._host_usage()[rec["host"]][1]
            if used + rec["memory_mib"] > host["memory_mib"]:
                raise InvalidState(
                    f"host {host['name']!r} has {host['memory_mib'] - used} MiB free; "
                    f"VM {rec['name']!r} needs {rec['memory_mib']}"
                )
            if rec.get("cloud_init") and rec["state"] == PowerState.STOPPED.value:
                self._log(rec, f"cloud-init: hostname {rec['cloud_init']['hostname'] or rec['name']}")
            rec["ips"] = self._lease(rec)

        return self._power(
            "start_vm",
            vm,
            {PowerState.STOPPED, PowerState.SUSPENDED, PowerState.CRASHED},
            PowerState.RUNNING,
            "started",
            boot,
        )

    def _lease(self, rec: dict[str, Any]) -> list[str]:
        ips = []
        taken = {ip for vm in self.world.vms.values() for ip in vm["ips"]}
        for nic in rec["nics"]:
            subnet = self.world.networks[nic["network"]]["subnet"] if nic["network"] in self.world.networks else None
            if subnet is None:
                continue
            for last in range(100, 255):
                ip = f"{subnet}.{last}"
                if ip not in taken:
                    taken.add(ip)
                    ips.append(ip)
                    break
        return ips

    def stop_vm(self, vm: VM, force: bool, timeout: float) -> Task:
        if not force:
            with self.world.lock:
                rec = self._vm(vm.id)
                if (rec["load"] >= 0 and rec.get("ignore_acpi")) or vm.extra.get("sim.ignore_acpi"):
                    self._enter("stop_vm")
                    time.sleep(timeout)
                    raise Timeout(
                        f"VM {vm.name!r} did not shut down within {timeout:g} s (the guest ignored the request)"
                    )
        return self._power(
            "stop_vm",
            vm,
            {PowerState.RUNNING, PowerState.PAUSED, PowerState.CRASHED, PowerState.SUSPENDED, PowerState.UNKNOWN},
            PowerState.STOPPED,
            "stopped",
        )

    def reboot_vm(self, vm: VM, force: bool) -> Task:
        return self._power("reboot_vm", vm, {PowerState.RUNNING}, PowerState.RUNNING, "rebooted")

    def pause_vm(self, vm: VM) -> Task:
        return self._power("pause_vm", vm, {PowerState.RUNNING}, PowerState.PAUSED, "paused")

    def resume_vm(self, vm: VM) -> Task:
        return self._power("resume_vm", vm, {PowerState.PAUSED}, PowerState.RUNNING, "resumed")

    def suspend_vm(self, vm: VM) -> Task:
        return self._power("suspend_vm", vm, {PowerState.RUNNING, PowerState.PAUSED}, PowerState.SUSPENDED, "suspended")

    def set_guest_ignores_shutdown(self, vm: VM, ignore: bool = True) -> None:
        """Make the simulated guest ignore graceful shutdown requests (for timeout tests)."""
        with self.world.lock:
            self._vm(vm.id)["ignore_acpi"] = ignore

    def crash(self, vm: VM) -> None:
        """Simulate a guest crash."""
        with self.world.lock:
            rec = self._vm(vm.id)
            self._set_state(rec, PowerState.CRASHED, "crashed")

    def set_maintenance(self, host: str, on: bool = True) -> None:
        with self.world.lock:
            self.world.hosts[self._host_id(host)]["maintenance"] = on
            self.world.save()

    # -- change ---------------------------------------------------------------------------------------
    def reconfigure_vm(self, vm: VM, cpus: int | None, memory_mib: int | None) -> Task:
        self._enter("reconfigure_vm")

        def effect() -> VM:
            with self.world.lock:
                rec = self._vm(vm.id)
                if rec["state"] not in (PowerState.STOPPED.value, PowerState.CRASHED.value):
                    if (cpus or rec["cpus"]) < rec["cpus"] or (memory_mib or rec["memory_mib"]) < rec["memory_mib"]:
                        raise InvalidState(
                            f"VM {rec['name']!r} is {rec['state']}: CPUs and memory can only grow while it runs"
                        )
                    host = self.world.hosts[rec["host"]]
                    if cpus and cpus > host["threads"]:
                        raise InvalidState(f"host {host['name']!r} has {host['threads']} CPUs; {cpus} asked")
                rec["cpus"] = cpus or rec["cpus"]
                rec["memory_mib"] = memory_mib or rec["memory_mib"]
                self._changed(rec, "reconfigured")
                return self._vm_model(rec)

        return self._task("reconfigure_vm", vm.name, effect)

    def mark_template(self, vm: VM) -> Task:
        self._enter("mark_template")

        def effect() -> VM:
            with self.world.lock:
                rec = self._vm(vm.id)
                rec["template"] = True
                self._changed(rec, "templated")
                return self._vm_model(rec)

        return self._task("mark_template", vm.name, effect)

    def clone_vm(self, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> Task:
        self._enter("clone_vm")

        def effect() -> VM:
            w = self.world
            with w.lock, Rollback() as undo:
                src = self._vm(vm.id)
                if src["state"] not in (PowerState.STOPPED.value, PowerState.SUSPENDED.value) and not linked:
                    pass  # a running VM clones crash-consistently, as on most vendors
                if any(o["name"] == name for o in w.vms.values()):
                    raise AlreadyExists(f"a VM named {name!r} exists already")
                new_id = w.next_id("vm")
                disks = []
                for d in src["disks"]:
                    sv = w.volumes[d["volume"]]
                    target_pool = pool or sv["pool"]
                    if linked:
                        vol = self._new_volume(
                            target_pool, f"{new_id}-{d['name']}", sv["capacity"], DiskFormat.QCOW2, backing=sv
                        )
                        undo.push(functools.partial(self._remove_volume, vol), f"delete {vol['id']}")
                    else:
                        vol = self._copy_volume(sv, target_pool, f"{new_id}-{d['name']}", undo)
                    disks.append({**d, "volume": vol["id"]})
                w.faults.check("clone_vm", stage="define")
                used = {n["mac"] for o in w.vms.values() for n in o["nics"]}
                nics = []
                for n in src["nics"]:
                    mac = self._new_mac(used)
                    used.add(mac)
                    nics.append({**n, "mac": mac})
                rec = {
                    **{k: v for k, v in src.items() if k not in ("snapshots", "current", "bases")},
                    "id": new_id,
                    "name": name,
                    "uuid": str(uuid.uuid4()),
                    "state": PowerState.STOPPED.value,
                    "disks": disks,
                    "nics": nics,
                    "host": host or src["host"],
                    "ips": [],
                    "snapshots": {},
                    "current": None,
                    "template": False,
                    "state_since": _now(),
                    "run_seconds": 0.0,
                }
                if linked:
                    self._move_onto_overlays(src, undo)
                w.vms[new_id] = rec
                self._changed(rec, "defined")
                return self._vm_model(rec)

        return self._task("clone_vm", name, effect)

    def _move_onto_overlays(self, rec: dict[str, Any], undo: Rollback) -> None:
        """After a linked clone: the source writes into its own new overlay; the shared base never changes again.

        The bases it moved off stay the source's (``rec["bases"]``): deleted with it once no clone needs them.
        """
        token = uuid.uuid4().hex[:6]
        moves = []
        for d in rec["disks"]:
            base = self.world.volumes[d["volume"]]
            overlay = self._new_volume(
                base["pool"], f"{rec['id']}-{d['name']}-{token}", base["capacity"], DiskFormat.QCOW2, backing=base
            )
            undo.push(functools.partial(self._remove_volume, overlay), f"delete {overlay['id']}")
            moves.append((d, base["id"], overlay["id"]))
        for d, base_id, overlay_id in moves:
            d["volume"] = overlay_id
            rec.setdefault("bases", []).append(base_id)

    def migrate_vm(self, vm: VM, host: str | None, pool: str | None, live: bool) -> Task:
        self._enter("migrate_vm")

        def effect() -> VM:
            w = self.world
            with w.lock:
                rec = self._vm(vm.id)
                running = rec["state"] in (PowerState.RUNNING.value, PowerState.PAUSED.value)
                if running and not live:
                    raise InvalidState(f"VM {rec['name']!r} is {rec['state']}; pass live=True or stop it")
                if host is not None:
                    target = w.hosts[self._host_id(host)]
                    if target["maintenance"]:
                        raise InvalidState(f"host {target['name']!r} is in maintenance mode")
                    if running:
                        used = self._host_usage()[target["id"]][1]
                        if used + rec["memory_mib"] > target["memory_mib"]:
                            raise InvalidState(
                                f"host {target['name']!r} has {target['memory_mib'] - used} MiB free; "
                                f"VM {rec['name']!r} needs {rec['memory_mib']}"
                            )
                if pool is not None:
                    self._move_disks(rec, pool)
                if host is not None:
                    rec["host"] = target["id"]
                self._changed(rec, "migrated")
                return self._vm_model(rec)

        return self._task("migrate_vm", vm.name, effect)

    def _move_disks(self, rec: dict[str, Any], pool: str) -> None:
        """Copy the VM's disks into ``pool``, then switch to the copies and drop the originals.

        Refuses disks that back linked clones (their clones would lose their base). A failure at any step
        removes the copies made so far and leaves the VM on its original disks.
        """
        w = self.world
        todo = [(d, w.volumes[d["volume"]]) for d in rec["disks"] if w.volumes[d["volume"]]["pool"] != pool]
        for _, sv in todo:
            users = [v["id"] for v in w.volumes.values() if v.get("backing") == sv["id"]]
            if users:
                raise InvalidState(
                    f"volume {sv['name']!r} of VM {rec['name']!r} backs linked clones ({', '.join(users)}); "
                    "moving it would break them: delete or fully clone them first"
                )
        with Rollback() as undo:
            copies = [(d, sv, self._copy_volume(sv, pool, sv["name"], undo)) for d, sv in todo]
            w.faults.check("migrate_vm", stage="switch")
        for d, _, nv in copies:
            d["volume"] = nv["id"]
        for _, sv, _ in copies:
            kept = any(
                sv["id"] in (*(d["volume"] for d in o["disks"]), *o.get("bases", ()))
                or any(sv["id"] in snap["files"] for snap in o["snapshots"].values())
                for o in w.vms.values()
            )
            if not kept:  # still used by another disk, as a base, or by a snapshot: it stays
                self._remove_volume(sv)

    # -- observe ----------------------------------------------------------------------------------------
    def console(self, vm: VM) -> Console:
        self._enter("console")
        path = self.world.root / "console" / f"{vm.id}.log"
        return Console("log", None, None, url=path.as_uri())

    def guest_ips(self, vm: VM) -> list[str]:
        self._enter("guest_ips")
        with self.world.lock:
            return list(self._vm(vm.id)["ips"])

    def vm_metrics(self, vms: list[VM]) -> list[VMMetrics]:
        self._enter("vm_metrics")
        now = dt.datetime.now(dt.UTC)
        out = []
        with self.world.lock:
            for vm in vms:
                rec = self._vm(vm.id)
                running = rec["state"] == PowerState.RUNNING.value
                seconds = rec["run_seconds"] + (_now() - rec["state_since"] if running else 0.0)
                busy = seconds * rec["load"]
                out.append(
                    VMMetrics(
                        rec["id"],
                        now,
                        int(busy * rec["cpus"] * 1e9),
                        rec["load"] if running else 0.0,
                        int(rec["memory_mib"] * (0.3 + 0.6 * rec["load"])) if running else 0,
                        int(busy * 2 * CHUNK),
                        int(busy * CHUNK),
                        int(busy * 4 * CHUNK),
                        int(busy * CHUNK),
                    )
                )
        return out

    def host_metrics(self, hosts: list[Host]) -> list[HostMetrics]:
        self._enter("host_metrics")
        now = dt.datetime.now(dt.UTC)
        with self.world.lock:
            usage = self._host_usage()
            return [HostMetrics(h.id, now, usage[h.id][0], usage[h.id][1]) for h in hosts]

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        self.world.listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self.world.listeners:
                self.world.listeners.remove(callback)

        return unsubscribe

    # -- snapshots --------------------------------------------------------------------------------------
    def list_snapshots(self, vm: VM) -> list[Snapshot]:
        self._enter("list_snapshots")
        with self.world.lock:
            rec = self._vm(vm.id)
            return [self._snap_model(rec, s) for s in rec["snapshots"].values()]

    def list_snapshots_many(self, vms: list[VM]) -> dict[str, list[Snapshot]]:
        self._enter("list_snapshots")
        with self.world.lock:
            recs = [self._vm(vm.id) for vm in vms]
            return {rec["id"]: [self._snap_model(rec, s) for s in rec["snapshots"].values()] for rec in recs}

    def _snap_model(self, rec: dict[str, Any], s: dict[str, Any]) -> Snapshot:
        created = dt.datetime.fromtimestamp(s["created"], dt.UTC)
        return Snapshot(
            s["id"],
            s["name"],
            rec["id"],
            s["parent"],
            created,
            s["description"],
            s["memory"],
            rec["current"] == s["id"],
        )

    def create_snapshot(self, vm: VM, name: str, description: str, memory: bool, quiesce: bool) -> Task:
        self._enter("create_snapshot")

        def effect() -> Snapshot:
            w = self.world
            with w.lock, Rollback() as undo:
                rec = self._vm(vm.id)
                snap_id = w.next_id("snap")
                files: dict[str, str] = {}
                for d in rec["disks"]:
                    v = w.volumes[d["volume"]]
                    if v["format"] == "qcow2":
                        qi.qemu_img("snapshot", "-c", snap_id, v["path"])
                        undo.push(functools.partial(qi.qemu_img, "snapshot", "-d", snap_id, v["path"]))
                        files[v["id"]] = ""
                    else:
                        copy = w.root / "snapshots" / f"{snap_id}-{Path(v['path']).name}"
                        copy.parent.mkdir(exist_ok=True)
                        qi.convert(Path(v["path"]), v["format"], copy, v["format"])
                        undo.push(functools.partial(copy.unlink, missing_ok=True))
                        files[v["id"]] = str(copy)
                snap = {
                    "id": snap_id,
                    "name": name,
                    "parent": rec["current"],
                    "created": _now(),
                    "description": description,
                    "memory": memory,
                    "files": files,
                    "slots": {d["volume"]: d["name"] for d in rec["disks"]},
                    "state": rec["state"] if memory else PowerState.STOPPED.value,
                    "cpus": rec["cpus"],
                    "memory_mib": rec["memory_mib"],
                }
                rec["snapshots"][snap_id] = snap
                rec["current"] = snap_id
                self._changed(rec, "snapshot-created")
                return self._snap_model(rec, snap)

        return self._task("create_snapshot", vm.name, effect)

    def revert_snapshot(self, vm: VM, snapshot: Snapshot) -> Task:
        self._enter("revert_snapshot")

        def effect() -> None:
            w = self.world
            with w.lock:
                rec = self._vm(vm.id)
                snap = rec["snapshots"][snapshot.id]
                for vol_id in list(snap["files"]):
                    self._revert_disk(rec, snap, vol_id)
                rec["cpus"], rec["memory_mib"] = snap["cpus"], snap["memory_mib"]
                rec["current"] = snap["id"]
                if rec["state"] != snap["state"]:
                    if snap["state"] == PowerState.RUNNING.value:
                        rec["ips"] = self._lease(rec)
                    self._set_state(rec, PowerState(snap["state"]), "reverted")
                else:
                    self._changed(rec, "reverted")

        return self._task("revert_snapshot", vm.name, effect)

    def _revert_disk(self, rec: dict[str, Any], snap: dict[str, Any], vol_id: str) -> None:
        """Put one disk back to ``snap``. A volume that backs others (a base the VM moved off when it was
        linked-cloned) is never written: the snapshot is restored into a private copy the disk moves onto."""
        w = self.world
        v = w.volumes[vol_id]
        copy = snap["files"][vol_id]
        slot = snap.get("slots", {}).get(vol_id)
        disk = next((d for d in rec["disks"] if d["name"] == slot or d["volume"] == vol_id), None)
        if disk is None:
            raise InvalidState(f"VM {rec['name']!r} no longer has the disk snapshot {snap['name']!r} was taken of")
        if any(o.get("backing") == vol_id for o in w.volumes.values()):
            name = f"{rec['id']}-{disk['name']}-{uuid.uuid4().hex[:6]}"
            if copy:
                target = self._new_volume(v["pool"], name, v["capacity"], DiskFormat(v["format"]))
                qi.convert(Path(copy), v["format"], Path(target["path"]), v["format"])
            else:
                ext = _EXT.get(v["format"], v["format"])
                path = w.pool_dir(v["pool"]) / f"{name}.{ext}"
                shutil.copyfile(v["path"], path)  # the image with its internal snapshots
                target = {**v, "id": f"{v['pool']}/{path.name}", "name": path.name, "path": str(path)}
                w.volumes[target["id"]] = target
                qi.qemu_img("snapshot", "-a", snap["id"], str(path))
            snap["files"] = {(target["id"] if k == vol_id else k): val for k, val in snap["files"].items()}
            snap.setdefault("slots", {})[target["id"]] = disk["name"]
        else:
            target = v
            if copy:
                qi.convert(Path(copy), v["format"], Path(v["path"]), v["format"])
            else:
                qi.qemu_img("snapshot", "-a", snap["id"], v["path"])
        previous, disk["volume"] = disk["volume"], target["id"]
        if previous != target["id"]:
            self._drop_if_unused(previous)

    def _drop_if_unused(self, vol_id: str) -> None:
        """Remove a VM-private volume no disk, overlay, base list or snapshot refers to any more."""
        w = self.world
        referenced = any(o.get("backing") == vol_id for o in w.volumes.values()) or any(
            vol_id in (d["volume"] for d in vm["disks"])
            or vol_id in vm.get("bases", ())
            or any(vol_id in s["files"] for s in vm["snapshots"].values())
            for vm in w.vms.values()
        )
        if not referenced and vol_id in w.volumes:
            self._remove_volume(w.volumes[vol_id])

    def delete_snapshot(self, vm: VM, snapshot: Snapshot, children: bool) -> Task:
        self._enter("delete_snapshot")

        def effect() -> None:
            with self.world.lock:
                rec = self._vm(vm.id)
                snaps = rec["snapshots"]
                target = snaps[snapshot.id]
                doomed = [target]
                if children:
                    frontier = [target["id"]]
                    while frontier:
                        kids = [s for s in snaps.values() if s["parent"] in frontier]
                        doomed += kids
                        frontier = [k["id"] for k in kids]
                for s in doomed:
                    self._drop_snapshot_data(rec, s)
                    del snaps[s["id"]]
                for s in snaps.values():
                    if s["parent"] == target["id"]:
                        s["parent"] = target["parent"]
                if rec["current"] not in snaps:
                    rec["current"] = target["parent"]
                self._changed(rec, "snapshot-deleted")

        return self._task("delete_snapshot", vm.name, effect)

    def _drop_snapshot_data(self, rec: dict[str, Any], snap: dict[str, Any]) -> None:
        for vol_id, copy in snap["files"].items():
            if copy:
                Path(copy).unlink(missing_ok=True)
            elif vol_id in self.world.volumes:
                qi.qemu_img("snapshot", "-d", snap["id"], self.world.volumes[vol_id]["path"])

    # -- volumes ------------------------------------------------------------------------------------------
    def _new_volume(
        self, pool: str, name: str, size: int, fmt: DiskFormat, backing: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        w = self.world
        if pool not in w.pools:
            raise NotFound(f"no storage pool {pool!r}")
        if fmt.value not in w.pools[pool]["formats"]:
            raise InvalidSpec(f"pool {pool!r} does not take {fmt.value} volumes")
        vol_id = f"{pool}/{name}.{_EXT.get(fmt.value, fmt.value)}"
        if vol_id in w.volumes:
            raise AlreadyExists(f"volume {vol_id!r} exists")
        path = w.pool_dir(pool) / vol_id.split("/", 1)[1]
        try:
            if backing is not None:
                qi.create(path, fmt.value, size, backing=Path(backing["path"]), backing_fmt=backing["format"])
            else:
                qi.create(path, fmt.value, size)
        except BaseException:
            path.unlink(missing_ok=True)  # a half-written image is nobody's
            raise
        vol = {
            "id": vol_id,
            "name": path.name,
            "pool": pool,
            "format": fmt.value,
            "capacity": size,
            "path": str(path),
            "backing": backing["id"] if backing else None,
        }
        w.volumes[vol_id] = vol
        w.save()
        return vol

    def _copy_volume(self, src: dict[str, Any], pool: str, name: str, undo: Rollback) -> dict[str, Any]:
        """A full (flattened) copy of ``src`` in ``pool``; ``undo`` removes it if a later step fails."""
        fmt = DiskFormat(src["format"])
        if fmt.value not in self.world.pools[pool]["formats"]:
            fmt = DiskFormat.QCOW2 if "qcow2" in self.world.pools[pool]["formats"] else DiskFormat.RAW
        base = name.rsplit(".", 1)[0]
        vol = self._new_volume(pool, base, src["capacity"], fmt)
        undo.push(functools.partial(self._remove_volume, vol), f"delete {vol['id']}")
        qi.convert(Path(src["path"]), src["format"], Path(vol["path"]), fmt.value)
        return vol

    def _remove_volume(self, vol: dict[str, Any]) -> None:
        Path(vol["path"]).unlink(missing_ok=True)
        self.world.volumes.pop(vol["id"], None)
        self.world.save()

    def list_volumes(self, pool: StoragePool) -> list[Volume]:
        self._enter("list_volumes")
        with self.world.lock:
            return [self._volume_model(v) for v in self.world.volumes.values() if v["pool"] == pool.id]

    def get_volume(self, ref: str) -> Volume:
        self._enter("get_volume")
        with self.world.lock:
            if ref not in self.world.volumes:
                raise NotFound(f"no volume {ref!r} on sim://{self.world.name}")
            return self._volume_model(self.world.volumes[ref])

    def local_path(self, volume: Volume) -> str | None:
        """The volume's image file: sim volumes are files on this machine (read and written in place by
        migrations). ``local_files=false`` turns it off (the volume streams are used instead)."""
        if not self.options.bool_option("local_files", True):
            return None
        with self.world.lock:
            v = self.world.volumes.get(volume.id)
            path = v["path"] if v else None
        return path if path and Path(path).is_file() else None

    def create_volume(self, pool: StoragePool, name: str, size_bytes: int, fmt: DiskFormat) -> Volume:
        self._enter("create_volume")
        with self.world.lock:
            base = name.rsplit(".", 1)[0] if name.endswith("." + _EXT.get(fmt.value, fmt.value)) else name
            return self._volume_model(self._new_volume(pool.id, base, size_bytes, fmt))

    def delete_volume(self, volume: Volume) -> None:
        self._enter("delete_volume")
        with self.world.lock:
            if any(v.get("backing") == volume.id for v in self.world.volumes.values()):
                raise InvalidState(f"volume {volume.name!r} backs linked clones; delete them first")
            self._remove_volume(self.world.volumes[volume.id])

    def upload_volume(self, volume: Volume, source: IO[bytes], size: int, progress: ProgressFn) -> None:
        self._enter("upload_volume")
        with self.world.lock:
            v = self.world.volumes[volume.id]
        with tempfile.TemporaryDirectory(dir=self.world.root) as tmp:
            raw = Path(tmp) / "upload.raw"
            with raw.open("wb") as out:
                out.truncate(v["capacity"])
                done = 0
                while done < size:
                    chunk = source.read(min(CHUNK, size - done))
                    if not chunk:
                        raise InvalidSpec(f"the upload stream ended after {done} of {size} bytes")
                    if chunk.count(0) == len(chunk):
                        out.seek(len(chunk), os.SEEK_CUR)  # keep holes holes
                    else:
                        out.write(chunk)
                    done += len(chunk)
                    progress(done, size)
            with self.world.lock:
                qi.convert(raw, "raw", Path(v["path"]), v["format"], existing=True)

    def download_volume(self, volume: Volume, sink: IO[bytes], progress: ProgressFn) -> int:
        self._enter("download_volume")
        with self.world.lock:
            v = self.world.volumes[volume.id]
        with tempfile.TemporaryDirectory(dir=self.world.root) as tmp:
            raw = Path(tmp) / "download.raw"
            qi.convert(Path(v["path"]), v["format"], raw, "raw")
            total = raw.stat().st_size
            done = 0
            with raw.open("rb") as src:
                while chunk := src.read(CHUNK):
                    sink.write(chunk)
                    done += len(chunk)
                    progress(done, total)
        return done
