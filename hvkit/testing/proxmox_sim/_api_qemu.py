"""The simulated PVE API: QEMU VMs: list, create, delete, config, power."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ._request import Request, route
from ._values import mac_for
from .schema import parse_bool
from .state import DISK_KEYS_ALL, Cluster, PVEError, VMState
from .tasks import TaskContext


# -- QEMU ----------------------------------------------------------------------------------------------
def _vm_list_entry(c: Cluster, vm: VMState) -> dict[str, Any]:
    entry = next(e for e in c.resources("vm") if e["vmid"] == vm.vmid)
    return {k: v for k, v in entry.items() if k not in ("id", "type", "node")}


@route("/nodes/{node}/qemu", "GET")
def qemu_list(r: Request) -> Any:
    r.c.check_node(r.node)
    return [
        {k: v for k, v in e.items() if k not in ("id", "type", "node")}
        for e in r.c.resources("vm")
        if e["node"] == r.node
    ]


_NOT_CONFIG = {
    "node",
    "vmid",
    "start",
    "storage",
    "pool",
    "force",
    "unique",
    "archive",
    "bwlimit",
    "live-restore",
    "digest",
    "delete",
    "skiplock",
    "revert",
    "background_delay",
    "import-working-storage",
    "ha-managed",
}


@route("/nodes/{node}/qemu", "POST")
def qemu_create(r: Request) -> Any:
    r.c.check_node(r.node)
    vmid = r.vmid
    if "archive" in r.p:
        raise PVEError(501, "restore from backup archives is not simulated")
    with r.c.mu:
        if vmid in r.c.vms:
            other = r.c.vms[vmid]
            raise PVEError(500, f"unable to create VM {vmid} - VM {vmid} already exists on node '{other.node}'")
        vm = VMState(vmid, r.node, {})
        vm.config["lock"] = "create"
        r.c.vms[vmid] = vm
    params = {k: v for k, v in r.p.items() if k not in _NOT_CONFIG}

    def work(ctx: TaskContext) -> None:
        try:
            with r.c.config_lock(vmid):
                nics = {k: v for k, v in params.items() if k.startswith("net")}
                for key, value in nics.items():
                    if "macaddr" not in value and "=" not in value.split(",")[0]:
                        model, _, rest = value.partition(",")
                        params[key] = f"{model}={mac_for(vmid, int(key[3:]))}" + (f",{rest}" if rest else "")
                r.c.apply_config(ctx, vm, params, creating=True)
                vm.config.setdefault("smbios1", f"uuid={smbios_uuid(vmid)}")
                vm.config.setdefault("vmgenid", smbios_uuid(vmid + 7))
                vm.config.setdefault("meta", "creation-qemu=9.2.0,ctime=" + str(int(time.time())))
                ctx.sleep()
                vm.config.pop("lock", None)
        except BaseException:
            r.c.destroy_disks(vm)
            with r.c.mu:
                r.c.vms.pop(vmid, None)
            raise
        if r.flag("start"):
            power_on(vm)

    return r.task("qmcreate", str(vmid), work)


def smbios_uuid(seed: int) -> str:
    import uuid

    return str(uuid.UUID(int=(seed * 0x9E3779B97F4A7C15) % (1 << 128), version=4))


@route("/nodes/{node}/qemu/{vmid}", "DELETE")
def qemu_delete(r: Request) -> Any:
    vm = r.vm()
    r.c.check_lock(vm, r.flag("skiplock"))
    if vm.status == "running":
        raise PVEError(500, f"VM {vm.vmid} is running - destroy failed")
    if vm.config.get("protection") == "1":
        raise PVEError(500, "can't remove VM - protection mode enabled")

    def work(ctx: TaskContext) -> None:
        with r.c.config_lock(vm.vmid):
            r.c.check_lock(vm, r.flag("skiplock"))
            vm.config["lock"] = "destroyed"
            ctx.sleep()
            r.c.destroy_disks(vm)
            for snap in vm.snapshots.values():
                for key in DISK_KEYS_ALL:
                    snap.get(key)
            with r.c.mu:
                r.c.vms.pop(vm.vmid, None)

    return r.task("qmdestroy", str(vm.vmid), work)


@route("/nodes/{node}/qemu/{vmid}/config", "GET")
def qemu_config(r: Request) -> Any:
    vm = r.vm()
    cfg: dict[str, Any] = dict(vm.config)
    for key in ("cores", "sockets", "template", "agent"):
        if key in cfg and cfg[key].isdigit():
            cfg[key] = int(cfg[key])
    if "memory" in cfg and cfg["memory"].isdigit():
        pass
    cfg["digest"] = config_digest(vm.config)
    return cfg


def config_digest(cfg: dict[str, str]) -> str:
    import hashlib

    return hashlib.sha1(repr(sorted(cfg.items())).encode()).hexdigest()


def _update_config(r: Request, ctx: TaskContext | None) -> None:
    vm = r.vm()
    with r.c.config_lock(vm.vmid):
        r.c.check_lock(vm, r.flag("skiplock"))
        if "digest" in r.p and r.p["digest"] != config_digest(vm.config):
            raise PVEError(500, "detected modified configuration - file changed by other user? Try again.")
        params = {k: v for k, v in r.p.items() if k not in _NOT_CONFIG}
        deletes = [d for d in r.p.get("delete", "").replace(";", ",").split(",") if d]
        both = set(deletes) & set(params)
        if both:
            raise PVEError(
                400, "Parameter verification failed.", {k: "cannot set and delete the same option\n" for k in both}
            )
        if vm.status == "running":
            for key in ("cores", "sockets", "memory"):
                if key in params:
                    vm.config.setdefault("pending", "")
        r.c.apply_config(ctx, vm, params, creating=False)
        for key in deletes:
            vm.config.pop(key, None)


@route("/nodes/{node}/qemu/{vmid}/config", "PUT")
def qemu_config_put(r: Request) -> Any:
    _update_config(r, None)
    return None


@route("/nodes/{node}/qemu/{vmid}/config", "POST")
def qemu_config_post(r: Request) -> Any:
    r.vm()
    return r.task("qmconfig", r.p["vmid"], lambda ctx: _update_config(r, ctx))


@route("/nodes/{node}/qemu/{vmid}/status/current", "GET")
def qemu_status(r: Request) -> Any:
    vm = r.vm()
    entry = _vm_list_entry(r.c, vm)
    entry["qmpstatus"] = vm.qmpstatus if vm.status == "running" else "stopped"
    entry["agent"] = 1 if agent_enabled(vm) else 0
    if vm.status == "running":
        entry["pid"] = 10000 + vm.vmid
        entry["running-qemu"] = "9.2.0"
    if vm.config.get("lock"):
        entry["lock"] = vm.config["lock"]
    return entry


def agent_enabled(vm: VMState) -> bool:
    value = vm.config.get("agent", "0").split(",")[0].replace("enabled=", "")
    return bool(parse_bool(value))


def power_on(vm: VMState) -> None:
    vm.status = "running"
    vm.qmpstatus = "running"
    vm.started = time.time()
    vm.netin += 1500
    vm.diskread += 4096


def _power_task(r: Request, kind: str, work: Callable[[TaskContext, VMState], None], *, check_lock: bool = True) -> str:
    vm = r.vm()
    if check_lock:
        r.c.check_lock(vm, r.flag("skiplock"))

    def run(ctx: TaskContext) -> None:
        with r.c.config_lock(vm.vmid):
            work(ctx, vm)

    return r.task(kind, str(vm.vmid), run)


@route("/nodes/{node}/qemu/{vmid}/status/start", "POST")
def qemu_start(r: Request) -> Any:
    vm = r.vm()
    if vm.config.get("lock") == "suspended":
        pass
    elif vm.config.get("lock"):
        raise PVEError(500, f"VM is locked ({vm.config['lock']})")
    if vm.config.get("template") == "1":
        raise PVEError(500, "you can't start a vm if it's a template")
    if vm.status == "running":
        raise PVEError(500, f"VM {vm.vmid} already running")

    def work(ctx: TaskContext, vm: VMState) -> None:
        if vm.config.get("lock") == "suspended":
            ctx.log("resuming suspended VM")
            vm.config.pop("lock", None)
            vm.config.pop("vmstate", None)
        ctx.sleep()
        power_on(vm)

    return _power_task(r, "qmstart", work, check_lock=False)


@route("/nodes/{node}/qemu/{vmid}/status/stop", "POST")
def qemu_stop(r: Request) -> Any:
    def work(ctx: TaskContext, vm: VMState) -> None:
        ctx.sleep(0.5)
        vm.status = vm.qmpstatus = "stopped"
        if vm.config.get("lock") == "suspended":
            vm.config.pop("lock", None)
            vm.config.pop("vmstate", None)

    vm = r.vm()
    if vm.config.get("lock") not in (None, "suspended"):
        r.c.check_lock(vm, r.flag("skiplock"))
    return _power_task(r, "qmstop", work, check_lock=False)


@route("/nodes/{node}/qemu/{vmid}/status/shutdown", "POST")
def qemu_shutdown(r: Request) -> Any:
    timeout = int(r.p.get("timeout", 180))
    force = r.flag("forceStop")

    def work(ctx: TaskContext, vm: VMState) -> None:
        if vm.status != "running":
            raise PVEError(500, f"VM {vm.vmid} not running")
        if vm.ignore_acpi or vm.qmpstatus == "paused":
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            if not force:
                raise PVEError(500, "VM quit/powerdown failed - got timeout")
            ctx.log("VM still running - terminating now with SIGTERM")
        else:
            ctx.sleep()
        vm.status = vm.qmpstatus = "stopped"

    return _power_task(r, "qmshutdown", work)


def require_running(vm: VMState) -> None:
    if vm.status != "running":
        raise PVEError(500, f"VM {vm.vmid} not running")


@route("/nodes/{node}/qemu/{vmid}/status/reboot", "POST")
def qemu_reboot(r: Request) -> Any:
    def work(ctx: TaskContext, vm: VMState) -> None:
        require_running(vm)
        if vm.ignore_acpi:
            raise PVEError(500, "VM quit/powerdown failed - got timeout")
        ctx.sleep()
        vm.started = time.time()

    return _power_task(r, "qmreboot", work)


@route("/nodes/{node}/qemu/{vmid}/status/reset", "POST")
def qemu_reset(r: Request) -> Any:
    def work(ctx: TaskContext, vm: VMState) -> None:
        require_running(vm)
        vm.started = time.time()
        vm.qmpstatus = "running"

    return _power_task(r, "qmreset", work)


@route("/nodes/{node}/qemu/{vmid}/status/suspend", "POST")
def qemu_suspend(r: Request) -> Any:
    todisk = r.flag("todisk")

    def work(ctx: TaskContext, vm: VMState) -> None:
        require_running(vm)
        ctx.sleep()
        if todisk:
            ctx.log("suspend vm to disk")
            vm.config["lock"] = "suspended"
            vm.config["vmstate"] = f"{r.p.get('statestorage', 'local-lvm')}:vm-{vm.vmid}-state-suspend"
            vm.status = vm.qmpstatus = "stopped"
        else:
            vm.qmpstatus = "paused"

    return _power_task(r, "qmsuspend", work)


@route("/nodes/{node}/qemu/{vmid}/status/resume", "POST")
def qemu_resume(r: Request) -> Any:
    def work(ctx: TaskContext, vm: VMState) -> None:
        require_running(vm)
        vm.qmpstatus = "running"

    vm = r.vm()
    if vm.config.get("lock") == "suspended" or vm.status != "running":
        raise PVEError(500, f"VM {vm.vmid} not running")
    return _power_task(r, "qmresume", work, check_lock=False)
