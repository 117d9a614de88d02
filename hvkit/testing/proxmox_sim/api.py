"""The API methods the simulator serves: one function per (path, method) of the PVE schema."""

from __future__ import annotations

import secrets
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .schema import parse_bool
from .state import DISK_KEYS_ALL, Cluster, PVEError, VMState, _image_info, file_checksum, mac_for, qemu_img
from .tasks import TaskContext

__all__ = ["ROUTES", "Request"]


class Request:
    def __init__(
        self, cluster: Cluster, user: str, params: dict[str, str], files: dict[str, Path] | None = None
    ) -> None:
        self.c = cluster
        self.user = user
        self.p = params
        self.files = files or {}

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.p.get(name)
        return default if value is None else bool(parse_bool(value))

    @property
    def node(self) -> str:
        return self.p["node"]

    @property
    def vmid(self) -> int:
        return int(self.p["vmid"])

    def vm(self) -> VMState:
        return self.c.vm(self.node, self.vmid)

    def task(self, kind: str, ident: str, work: Callable[[TaskContext], None]) -> str:
        return self.c.runner.start(self.node, kind, ident, self.user, work).upid


Handler = Callable[[Request], Any]
ROUTES: dict[tuple[str, str], Handler] = {}


def route(path: str, method: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        ROUTES[(path, method)] = fn
        return fn

    return deco


# -- cluster / nodes ---------------------------------------------------------------------------------
@route("/version", "GET")
def version(r: Request) -> Any:
    return {"version": "9.1.3", "release": "9.1", "repoid": "sim"}


@route("/cluster/resources", "GET")
def resources(r: Request) -> Any:
    kind = r.p.get("type")
    if kind == "sdn":
        return []
    return r.c.resources(kind)


@route("/cluster/nextid", "GET")
def nextid(r: Request) -> Any:
    if "vmid" in r.p:
        vmid = int(r.p["vmid"])
        with r.c.mu:
            if vmid in r.c.vms:
                raise PVEError(400, "Parameter verification failed.", {"vmid": f"VM {vmid} already exists\n"})
        return str(vmid)
    return str(r.c.nextid())


@route("/nodes", "GET")
def nodes(r: Request) -> Any:
    return [{k: v for k, v in e.items() if k != "type"} for e in r.c.resources("node")]


@route("/nodes/{node}/status", "GET")
def node_status(r: Request) -> Any:
    r.c.check_node(r.node)
    entry = next(e for e in r.c.resources("node") if e["node"] == r.node)
    return {
        "cpu": entry["cpu"],
        "uptime": entry["uptime"],
        "pveversion": "pve-manager/9.1.3/sim",
        "kversion": "Linux 6.17.2-1-pve",
        "cpuinfo": {
            "cpus": 16,
            "cores": 8,
            "sockets": 1,
            "model": "Simulated CPU @ 3.00GHz",
            "mhz": "3000.000",
            "hvm": "1",
        },
        "memory": {"total": entry["maxmem"], "used": entry["mem"], "free": entry["maxmem"] - entry["mem"]},
        "rootfs": {"total": 100 * 1024**3, "used": 10 * 1024**3},
        "loadavg": ["0.10", "0.05", "0.01"],
    }


@route("/nodes/{node}/network", "GET")
def node_network(r: Request) -> Any:
    r.c.check_node(r.node)
    kind = r.p.get("type")
    if kind not in (None, "bridge", "any_bridge", "any_local_bridge"):
        return []
    return [
        {
            "iface": b,
            "type": "bridge",
            "active": 1,
            "autostart": 1,
            "bridge_ports": "eth0" if b == "vmbr0" else "",
            "families": ["inet"],
            "method": "manual",
        }
        for b in r.c.bridges
    ]


def _rrd(r: Request, cpu: float) -> list[dict[str, Any]]:
    now = int(time.time()) // 60 * 60
    return [
        {
            "time": now - 60 * i,
            "cpu": cpu,
            "maxcpu": 1,
            "mem": 256 * 1024**2,
            "maxmem": 1024**3,
            "netin": 100.0,
            "netout": 50.0,
            "diskread": 10.0,
            "diskwrite": 5.0,
        }
        for i in range(70, -1, -1)
    ]


@route("/nodes/{node}/rrddata", "GET")
def node_rrddata(r: Request) -> Any:
    r.c.check_node(r.node)
    return _rrd(r, 0.03)


@route("/nodes/{node}/qemu/{vmid}/rrddata", "GET")
def vm_rrddata(r: Request) -> Any:
    vm = r.vm()
    return _rrd(r, 0.05 if vm.status == "running" else 0.0)


# -- storage -----------------------------------------------------------------------------------------
def _storage_entry(r: Request, sid: str) -> dict[str, Any]:
    st = r.c.storage(r.node, sid)
    used = r.c.used_bytes(r.node, st)
    return {
        "storage": st.id,
        "type": st.type,
        "content": ",".join(sorted(st.content)),
        "shared": 1 if st.shared else 0,
        "active": 1,
        "enabled": 1,
        "total": st.capacity,
        "used": used,
        "avail": st.capacity - used,
        "used_fraction": used / st.capacity,
        "format": st.formats[0],
        "formats": list(st.formats),
    }


@route("/nodes/{node}/storage", "GET")
def storage_list(r: Request) -> Any:
    r.c.check_node(r.node)
    out = [_storage_entry(r, sid) for sid, st in r.c.storages.items() if st.on(r.node or "")]
    if "content" in r.p:
        out = [e for e in out if set(r.p["content"].split(",")) & set(e["content"].split(","))]
    for e in out:
        e.pop("formats")
        e.pop("format")
    return out


@route("/nodes/{node}/storage/{storage}/status", "GET")
def storage_status(r: Request) -> Any:
    entry = _storage_entry(r, r.p["storage"])
    entry["format"] = [{f: 1 for f in entry.pop("formats")}, entry["format"]]
    return entry


@route("/nodes/{node}/storage/{storage}/content", "GET")
def content_list(r: Request) -> Any:
    st = r.c.storage(r.node, r.p["storage"])
    out = r.c.volumes(r.node, st)
    if "content" in r.p:
        out = [v for v in out if v["content"] == r.p["content"]]
    if "vmid" in r.p:
        out = [v for v in out if v.get("vmid") == int(r.p["vmid"])]
    return out


def _volid(r: Request) -> str:
    volume = r.p["volume"]
    return volume if ":" in volume else f"{r.p['storage']}:{volume}"


@route("/nodes/{node}/storage/{storage}/content", "POST")
def content_alloc(r: Request) -> Any:
    r.c.storage(r.node, r.p["storage"])
    vmid = int(r.p["vmid"])
    name = r.p["filename"]
    if not name.startswith(f"vm-{vmid}-") and not name.startswith(f"base-{vmid}-"):
        raise PVEError(500, f"illegal name '{name}' - should be 'vm-{vmid}-*'")
    fmt = r.p.get("format")
    st = r.c.storages[r.p["storage"]]
    if st.file_based and fmt is None and "." in name:
        fmt = name.rsplit(".", 1)[1]
    if st.file_based and not name.endswith(f".{fmt or st.formats[0]}"):
        name = f"{name}.{fmt or st.formats[0]}"
    size_text = r.p["size"]
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    size = int(float(size_text[:-1]) * units[size_text[-1]]) if size_text[-1:] in units else int(size_text) * 1024
    return r.c.alloc(r.node, st.id, vmid, size, fmt, name=name)


@route("/nodes/{node}/storage/{storage}/content/{volume}", "GET")
def content_get(r: Request) -> Any:
    volid = _volid(r)
    path = r.c.volume_path(r.node, volid)
    if not path.exists():
        raise PVEError(500, f"volume '{volid}' does not exist")
    info = _image_info(path)
    return {
        "path": str(path),
        "size": info["virtual-size"],
        "used": info.get("actual-size", 0),
        "format": info["format"],
    }


@route("/nodes/{node}/storage/{storage}/content/{volume}", "DELETE")
def content_delete(r: Request) -> Any:
    volid = _volid(r)
    path = r.c.volume_path(r.node, volid)
    if not path.exists():
        raise PVEError(500, f"volume '{volid}' does not exist")
    with r.c.mu:
        for vm in r.c.vms.values():
            if vm.node == r.node or r.c.storages[volid.split(":")[0]].shared:
                for disk in r.c.vm_disks(vm).values():
                    if disk.get("file") == volid:
                        raise PVEError(500, f"unable to delete '{volid}' - volume is still in use (VM {vm.vmid})")

    def work(ctx: TaskContext) -> None:
        ctx.sleep(0.5)
        r.c.free_volume(r.node, volid)

    return r.task("imgdel", volid, work)


@route("/nodes/{node}/storage/{storage}/upload", "POST")
def upload(r: Request) -> Any:
    st = r.c.storage(r.node, r.p["storage"])
    content = r.p["content"]
    if content not in st.content:
        raise PVEError(500, f"storage '{st.id}' does not support '{content}' content")
    tmp = r.files.get("filename")
    if tmp is None:
        raise PVEError(
            400, "Parameter verification failed.", {"filename": "property is missing and it is not optional\n"}
        )
    filename = r.p["filename"]
    allowed = {
        "iso": (".iso", ".img"),
        "vztmpl": (".tar.gz", ".tar.xz", ".tar.zst"),
        "import": (".ova", ".qcow2", ".raw", ".vmdk", ".img"),
    }
    if not filename.endswith(allowed[content]) or "/" in filename:
        tmp.unlink(missing_ok=True)
        raise PVEError(500, f"invalid filename or wrong extension '{filename}'")
    target = r.c.storage_dir(st, r.node) / content / filename
    claimed = r.c.root.parent / "upload-work" / tmp.name  # the task outlives the request that brought the file
    claimed.parent.mkdir(exist_ok=True)
    tmp.replace(claimed)
    tmp = claimed

    def work(ctx: TaskContext) -> None:
        try:
            ctx.log(f"starting file import from: {tmp}")
            if "checksum" in r.p:
                algo = r.p.get("checksum-algorithm")
                if algo is None:
                    raise PVEError(500, "'checksum-algorithm' is required when 'checksum' is set")
                got = file_checksum(tmp, algo)
                if got.lower() != r.p["checksum"].lower():
                    raise PVEError(500, f"checksum mismatch: got '{got}' != expect '{r.p['checksum']}'")
                ctx.log("calculating checksum...OK, checksum verified")
            if content == "import" and not filename.endswith(".ova"):
                info = _image_info(tmp)
                if info.get("backing-filename"):
                    raise PVEError(500, "image has a backing file, refusing to import")
            target.parent.mkdir(parents=True, exist_ok=True)
            ctx.sleep(0.5)
            tmp.replace(target)
            ctx.log(f"target file: {target}")
        finally:
            tmp.unlink(missing_ok=True)

    return r.task("imgcopy", "", work)


# -- tasks -------------------------------------------------------------------------------------------
def _task(r: Request) -> Any:
    r.c.check_node(r.node)
    task = r.c.runner.get(urllib.parse.unquote(r.p["upid"]))
    if task is None or task.node != r.node:
        raise PVEError(500, f"no such task '{r.p['upid']}'")
    return task


@route("/nodes/{node}/tasks/{upid}", "DELETE")
def task_stop(r: Request) -> Any:
    """Stop a running task: its worker ends at its next step and undoes its work, as PVE's does on SIGTERM."""
    _task(r).stop.set()
    return None


@route("/nodes/{node}/tasks/{upid}/status", "GET")
def task_status(r: Request) -> Any:
    return _task(r).status()


@route("/nodes/{node}/tasks/{upid}/log", "GET")
def task_log(r: Request) -> Any:
    task = _task(r)
    start = int(r.p.get("start", 0))
    limit = int(r.p.get("limit", 50))
    lines = list(task.log)
    return [{"n": i + 1, "t": line} for i, line in enumerate(lines) if start <= i < start + limit] or [
        {"n": 1, "t": "no content"}
    ]


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
                vm.config.setdefault("smbios1", f"uuid={_uuid(vmid)}")
                vm.config.setdefault("vmgenid", _uuid(vmid + 7))
                vm.config.setdefault("meta", "creation-qemu=9.2.0,ctime=" + str(int(time.time())))
                ctx.sleep()
                vm.config.pop("lock", None)
        except BaseException:
            r.c.destroy_disks(vm)
            with r.c.mu:
                r.c.vms.pop(vmid, None)
            raise
        if r.flag("start"):
            _power_on(vm)

    return r.task("qmcreate", str(vmid), work)


def _uuid(seed: int) -> str:
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
    cfg["digest"] = _digest(vm.config)
    return cfg


def _digest(cfg: dict[str, str]) -> str:
    import hashlib

    return hashlib.sha1(repr(sorted(cfg.items())).encode()).hexdigest()


def _update_config(r: Request, ctx: TaskContext | None) -> None:
    vm = r.vm()
    with r.c.config_lock(vm.vmid):
        r.c.check_lock(vm, r.flag("skiplock"))
        if "digest" in r.p and r.p["digest"] != _digest(vm.config):
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
    entry["agent"] = 1 if _agent_enabled(vm) else 0
    if vm.status == "running":
        entry["pid"] = 10000 + vm.vmid
        entry["running-qemu"] = "9.2.0"
    if vm.config.get("lock"):
        entry["lock"] = vm.config["lock"]
    return entry


def _agent_enabled(vm: VMState) -> bool:
    value = vm.config.get("agent", "0").split(",")[0].replace("enabled=", "")
    return bool(parse_bool(value))


def _power_on(vm: VMState) -> None:
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
        _power_on(vm)

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


def _running(vm: VMState) -> None:
    if vm.status != "running":
        raise PVEError(500, f"VM {vm.vmid} not running")


@route("/nodes/{node}/qemu/{vmid}/status/reboot", "POST")
def qemu_reboot(r: Request) -> Any:
    def work(ctx: TaskContext, vm: VMState) -> None:
        _running(vm)
        if vm.ignore_acpi:
            raise PVEError(500, "VM quit/powerdown failed - got timeout")
        ctx.sleep()
        vm.started = time.time()

    return _power_task(r, "qmreboot", work)


@route("/nodes/{node}/qemu/{vmid}/status/reset", "POST")
def qemu_reset(r: Request) -> Any:
    def work(ctx: TaskContext, vm: VMState) -> None:
        _running(vm)
        vm.started = time.time()
        vm.qmpstatus = "running"

    return _power_task(r, "qmreset", work)


@route("/nodes/{node}/qemu/{vmid}/status/suspend", "POST")
def qemu_suspend(r: Request) -> Any:
    todisk = r.flag("todisk")

    def work(ctx: TaskContext, vm: VMState) -> None:
        _running(vm)
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
        _running(vm)
        vm.qmpstatus = "running"

    vm = r.vm()
    if vm.config.get("lock") == "suspended" or vm.status != "running":
        raise PVEError(500, f"VM {vm.vmid} not running")
    return _power_task(r, "qmresume", work, check_lock=False)


# -- clone, template, migrate, move disk ------------------------------------------------------------------
def _disk_items(c: Cluster, vm: VMState, *, cloudinit: bool = False) -> list[tuple[str, dict[str, str]]]:
    return [
        (k, d)
        for k, d in c.vm_disks(vm).items()
        if not k.startswith("unused")
        and ":" in d.get("file", "")
        and (d.get("media") != "cdrom" or (cloudinit and "cloudinit" in d.get("file", "")))
    ]


@route("/nodes/{node}/qemu/{vmid}/clone", "POST")
def qemu_clone(r: Request) -> Any:
    src = r.vm()
    newid = int(r.p["newid"])
    target = r.p.get("target", r.node)
    r.c.check_node(target)
    is_template = src.config.get("template") == "1"
    full = r.flag("full", default=not is_template)
    if not is_template and not full:
        raise PVEError(500, "Linked clone feature is only available for templates")
    storage = r.p.get("storage")
    if storage is not None and not full:
        raise PVEError(400, "Parameter verification failed.", {"storage": "option is only allowed for full clones\n"})
    disks = _disk_items(r.c, src)
    if target != r.node:
        for _, d in disks:
            st, _ = r.c.parse_volid(d["file"])
            if not st.shared and storage is None:
                raise PVEError(500, f"can't clone VM to node '{target}' (VM uses local storage)")
    if not is_template:
        r.c.check_lock(src)
    with r.c.mu:
        if newid in r.c.vms:
            raise PVEError(500, f"unable to create VM {newid}: config file already exists")
        new = VMState(newid, target, {"lock": "clone"})
        r.c.vms[newid] = new

    def work(ctx: TaskContext) -> None:
        allocated: list[tuple[str, str]] = []
        try:
            # PVE takes the source's config lock while it reads the config and allocates the new volumes;
            # a non-template source is marked ``lock: clone`` for the whole copy.
            with r.c.config_lock(src.vmid):
                if not is_template:
                    r.c.check_lock(src)
                    src.config["lock"] = "clone"
                cfg = {
                    k: v
                    for k, v in src.config.items()
                    if k not in ("template", "lock", "parent", "vmstate", "meta", "smbios1", "vmgenid")
                    and not k.startswith("unused")
                }
                ctx.sleep(0.3)
            cfg["name"] = r.p.get("name", f"Copy-of-VM-{cfg.get('name', src.vmid)}")
            for key in [k for k in cfg if k.startswith("net")]:
                model_mac, _, rest = cfg[key].partition(",")
                model = model_mac.split("=")[0]
                cfg[key] = f"{model}={mac_for(newid, int(key[3:]))}" + (f",{rest}" if rest else "")
            for key, d in disks:
                st, name = r.c.parse_volid(d["file"])
                src_path = r.c.volume_path(src.node, d["file"])
                size = int(_image_info(src_path)["virtual-size"])
                if full:
                    sid = storage or st.id
                    fmt = r.p.get("format") if r.c.storages[sid].file_based else None
                    volid = r.c.alloc(
                        target,
                        sid,
                        newid,
                        size,
                        fmt
                        or (
                            _image_info(src_path)["format"]
                            if r.c.storages[sid].file_based
                            and _image_info(src_path)["format"] in r.c.storages[sid].formats
                            else None
                        ),
                    )
                    allocated.append((target, volid))
                    ctx.log(f"create full clone of drive {key} ({d['file']})")
                    dst_path = r.c.volume_path(target, volid)
                    qemu_img("convert", "-q", "-O", _image_info(dst_path)["format"], str(src_path), str(dst_path))
                    ctx.progress(key, size, size)
                else:
                    ctx.log(f"create linked clone of drive {key} ({d['file']})")
                    base_name = name.split("/")[-1]
                    if st.file_based:
                        volid = f"{st.id}:{src.vmid}/{base_name}/{newid}/vm-{newid}-disk-{len(allocated)}.qcow2"
                        dst_path = r.c.volume_path(target, volid)
                        dst_path.parent.mkdir(parents=True, exist_ok=True)
                        qemu_img(
                            "create",
                            "-q",
                            "-f",
                            "qcow2",
                            "-b",
                            str(src_path),
                            "-F",
                            _image_info(src_path)["format"],
                            str(dst_path),
                        )
                    else:
                        with r.c.storage_lock(st.id):
                            volid = f"{st.id}:{base_name}/vm-{newid}-disk-{len(allocated)}"
                            dst_path = r.c.volume_path(target, volid)
                            qemu_img("create", "-q", "-f", "qcow2", "-b", str(src_path), "-F", "raw", str(dst_path))
                    allocated.append((target, volid))
                d2 = dict(d)
                d2["file"] = volid
                cfg[key] = ",".join([volid, *(f"{k}={v}" for k, v in d2.items() if k != "file")])
                ctx.sleep(0.7 / max(1, len(disks)))
            for key, d in list(r.c.vm_disks(src).items()):
                if "cloudinit" in d.get("file", ""):
                    sid = storage or d["file"].split(":")[0]
                    volid = r.c.alloc(
                        target,
                        sid,
                        newid,
                        4 * 1024 * 1024,
                        None,
                        name=f"vm-{newid}-cloudinit" + (".qcow2" if r.c.storages[sid].file_based else ""),
                    )
                    allocated.append((target, volid))
                    cfg[key] = f"{volid},media=cdrom"
            if "description" in r.p:
                cfg["description"] = r.p["description"]
            cfg["smbios1"] = f"uuid={_uuid(newid)}"
            new.config = cfg
        except BaseException:
            for node, volid in allocated:
                r.c.free_volume(node, volid)
            with r.c.mu:
                r.c.vms.pop(newid, None)
            raise
        finally:
            if not is_template and src.config.get("lock") == "clone":
                src.config.pop("lock", None)

    return r.task("qmclone", str(src.vmid), work)


@route("/nodes/{node}/qemu/{vmid}/template", "POST")
def qemu_template(r: Request) -> Any:
    vm = r.vm()
    r.c.check_lock(vm)
    if vm.status == "running":
        raise PVEError(500, "you can't convert a VM to template if VM is running")

    def work(ctx: TaskContext) -> None:
        with r.c.config_lock(vm.vmid):
            for key, d in _disk_items(r.c, vm):
                file = d["file"]
                old = r.c.volume_path(vm.node, file)
                new_file = file.replace(f"vm-{vm.vmid}-disk", f"base-{vm.vmid}-disk")
                newp = r.c.volume_path(vm.node, new_file)
                old.rename(newp)
                vm.config[key] = vm.config[key].replace(file, new_file)
            vm.config["template"] = "1"

    return r.task("qmtemplate", str(vm.vmid), work)


@route("/nodes/{node}/qemu/{vmid}/migrate", "POST")
def qemu_migrate(r: Request) -> Any:
    vm = r.vm()
    target = r.p["target"]
    r.c.check_node(target)
    if target == vm.node:
        raise PVEError(400, "Parameter verification failed.", {"target": "target is local node.\n"})
    r.c.check_lock(vm)
    online = r.flag("online")
    if vm.status == "running" and not online:
        raise PVEError(500, "can't migrate running VM without --online")
    local = [(k, d) for k, d in _disk_items(r.c, vm, cloudinit=True) if not r.c.parse_volid(d["file"])[0].shared]
    if any(d.get("media") != "cdrom" for _, d in local) and not r.flag("with-local-disks"):
        raise PVEError(500, f"can't migrate local disk '{local[0][1]['file']}': use --with-local-disks option")
    pairs = r.p.get("targetstorage", "")
    mapping: dict[str, str] = {}
    default_target: str | None = None
    for pair in [p for p in pairs.split(",") if p]:
        if ":" in pair:
            a, b = pair.split(":", 1)
            mapping[a] = b
        else:
            default_target = pair

    def work(ctx: TaskContext) -> None:
        with r.c.config_lock(vm.vmid):
            vm.config["lock"] = "migrate"
        moved: list[tuple[str, str]] = []
        try:
            ctx.log(f"starting migration of VM {vm.vmid} to node '{target}'")
            new_cfg = dict(vm.config)
            for key, d in local:
                st, _ = r.c.parse_volid(d["file"])
                sid = mapping.get(st.id, default_target or st.id)
                src_path = r.c.volume_path(vm.node, d["file"])
                info = _image_info(src_path)
                fmt = info["format"] if info["format"] in r.c.storages[sid].formats else None
                name = (
                    (f"vm-{vm.vmid}-cloudinit" + (".qcow2" if r.c.storages[sid].file_based else ""))
                    if "cloudinit" in d["file"]
                    else None
                )
                volid = r.c.alloc(target, sid, vm.vmid, int(info["virtual-size"]), fmt, name=name)
                moved.append((target, volid))
                dst = r.c.volume_path(target, volid)
                qemu_img("convert", "-q", "-O", _image_info(dst)["format"], str(src_path), str(dst))
                ctx.progress(f"drive-{key}", int(info["virtual-size"]), int(info["virtual-size"]))
                new_cfg[key] = new_cfg[key].replace(d["file"], volid, 1)
                ctx.sleep(0.5 / max(1, len(local)))
            ctx.sleep(0.5)
            old_node = vm.node
            for _, d in local:
                r.c.free_volume(old_node, d["file"])
            new_cfg.pop("lock", None)
            with r.c.mu:
                vm.config = new_cfg
                vm.node = target
            ctx.log("migration finished successfully")
        except BaseException:
            for node, volid in moved:
                r.c.free_volume(node, volid)
            vm.config.pop("lock", None)
            raise

    return r.task("qmigrate", str(vm.vmid), work)


@route("/nodes/{node}/qemu/{vmid}/move_disk", "POST")
def qemu_move_disk(r: Request) -> Any:
    vm = r.vm()
    disk = r.p["disk"]
    if disk not in vm.config:
        raise PVEError(500, f"disk '{disk}' does not exist")
    if "storage" not in r.p:
        raise PVEError(
            400, "Parameter verification failed.", {"storage": "property is missing and it is not optional\n"}
        )
    r.c.check_lock(vm)

    def work(ctx: TaskContext) -> None:
        with r.c.config_lock(vm.vmid):
            d = dict(r.c.vm_disks(vm)[disk])
            src_path = r.c.volume_path(vm.node, d["file"])
            info = _image_info(src_path)
            sid = r.p["storage"]
            fmt = r.p.get("format") or (info["format"] if info["format"] in r.c.storages[sid].formats else None)
            volid = r.c.alloc(vm.node, sid, vm.vmid, int(info["virtual-size"]), fmt)
            try:  # PVE frees the new volume when the copy fails
                dst = r.c.volume_path(vm.node, volid)
                qemu_img("convert", "-q", "-O", _image_info(dst)["format"], str(src_path), str(dst))
                ctx.progress(f"drive-{disk}", int(info["virtual-size"]), int(info["virtual-size"]))
                ctx.check()
            except BaseException:
                r.c.free_volume(vm.node, volid)
                raise
            old = d["file"]
            vm.config[disk] = vm.config[disk].replace(old, volid, 1)
            if r.flag("delete"):
                try:
                    r.c.free_volume(vm.node, old)
                except PVEError as exc:  # PVE warns and keeps it (a base its linked clones still use)
                    ctx.log(f"WARN: {exc.message}")
                    ctx.task.warnings += 1
            else:
                n = 0
                while f"unused{n}" in vm.config:
                    n += 1
                vm.config[f"unused{n}"] = old

    return r.task("qmmove", str(vm.vmid), work)


# -- snapshots --------------------------------------------------------------------------------------------
@route("/nodes/{node}/qemu/{vmid}/snapshot", "GET")
def snapshot_list(r: Request) -> Any:
    vm = r.vm()
    out: list[dict[str, Any]] = []
    for name, snap in vm.snapshots.items():
        entry = {"name": name, "description": snap.get("description", ""), "snaptime": snap["snaptime"]}
        if snap.get("parent"):
            entry["parent"] = snap["parent"]
        if snap.get("vmstate"):
            entry["vmstate"] = 1
        out.append(entry)
    current: dict[str, Any] = {
        "name": "current",
        "digest": _digest(vm.config),
        "description": "You are here!",
        "running": 1 if vm.status == "running" else 0,
    }
    if vm.config.get("parent"):
        current["parent"] = vm.config["parent"]
    out.append(current)
    return out


@route("/nodes/{node}/qemu/{vmid}/snapshot", "POST")
def snapshot_create(r: Request) -> Any:
    vm = r.vm()
    name = r.p["snapname"]
    if name == "current":
        raise PVEError(500, "invalid snapshot name 'current'")
    if name in vm.snapshots:
        raise PVEError(500, f"snapshot name '{name}' already used")
    r.c.check_lock(vm)
    vmstate = r.flag("vmstate")

    def work(ctx: TaskContext) -> None:
        with r.c.config_lock(vm.vmid):
            r.c.check_lock(vm)
            vm.config["lock"] = "snapshot"
        try:
            ctx.sleep()
            snap: dict[str, Any] = {k: v for k, v in vm.config.items() if k not in ("lock", "parent")}
            snap.update({"snaptime": int(time.time()), "description": r.p.get("description", "")})
            if vm.config.get("parent"):
                snap["parent"] = vm.config["parent"]
            if vmstate and vm.status == "running":
                snap["vmstate"] = f"local-lvm:vm-{vm.vmid}-state-{name}"
                snap["running"] = "1"
            vm.snapshots[name] = snap
            vm.config["parent"] = name
        finally:
            vm.config.pop("lock", None)

    return r.task("qmsnapshot", str(vm.vmid), work)


@route("/nodes/{node}/qemu/{vmid}/snapshot/{snapname}", "DELETE")
def snapshot_delete(r: Request) -> Any:
    vm = r.vm()
    name = r.p["snapname"]
    if name not in vm.snapshots:
        raise PVEError(500, f"snapshot '{name}' does not exist")
    if not r.flag("force"):
        r.c.check_lock(vm)

    def work(ctx: TaskContext) -> None:
        with r.c.config_lock(vm.vmid):
            ctx.sleep()
            snap = vm.snapshots.pop(name)
            parent = snap.get("parent")
            for child in (*vm.snapshots.values(), vm.config):  # children (and the current state) move up
                if child.get("parent") == name:
                    if parent:
                        child["parent"] = parent
                    else:
                        child.pop("parent", None)

    return r.task("qmdelsnapshot", str(vm.vmid), work)


@route("/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback", "POST")
def snapshot_rollback(r: Request) -> Any:
    vm = r.vm()
    name = r.p["snapname"]
    if name not in vm.snapshots:
        raise PVEError(500, f"snapshot '{name}' does not exist")
    r.c.check_lock(vm)

    def work(ctx: TaskContext) -> None:
        with r.c.config_lock(vm.vmid):
            ctx.sleep()
            snap = vm.snapshots[name]
            cfg = {
                k: v for k, v in snap.items() if k not in ("snaptime", "description", "vmstate", "running", "parent")
            }
            cfg["parent"] = name
            vm.config = cfg
            if snap.get("vmstate"):
                _power_on(vm)
            else:
                vm.status = vm.qmpstatus = "stopped"
            if r.flag("start") and vm.status != "running":
                _power_on(vm)

    return r.task("qmrollback", str(vm.vmid), work)


# -- console, agent -------------------------------------------------------------------------------------
@route("/nodes/{node}/qemu/{vmid}/vncproxy", "POST")
def vncproxy(r: Request) -> Any:
    vm = r.vm()
    _running(vm)
    port = 5900 + vm.vmid % 100
    upid = r.task("vncproxy", str(vm.vmid), lambda ctx: ctx.sleep(0.1))
    data: dict[str, Any] = {
        "port": str(port),
        "ticket": "PVEVNC:" + secrets.token_hex(16),
        "user": r.user,
        "upid": upid,
        "cert": "-----BEGIN CERTIFICATE-----\n(simulated)\n-----END CERTIFICATE-----\n",
    }
    if r.flag("generate-password"):
        data["password"] = secrets.token_urlsafe(6)[:8]
    return data


@route("/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces", "GET")
def agent_interfaces(r: Request) -> Any:
    vm = r.vm()
    if not _agent_enabled(vm):
        raise PVEError(500, "No QEMU guest agent configured")
    if vm.status != "running" or vm.qmpstatus != "running":
        raise PVEError(500, "QEMU guest agent is not running")
    ifaces: list[dict[str, Any]] = [
        {
            "name": "lo",
            "hardware-address": "00:00:00:00:00:00",
            "ip-addresses": [
                {"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8},
                {"ip-address": "::1", "ip-address-type": "ipv6", "prefix": 128},
            ],
        }
    ]
    for key in sorted(k for k in vm.config if k.startswith("net")):
        idx = int(key[3:])
        mac = vm.config[key].split(",")[0].split("=")[1].lower()
        ip = f"10.{idx}.{vm.vmid // 250 % 250}.{vm.vmid % 250 + 2}"
        ifaces.append(
            {
                "name": f"eth{idx}",
                "hardware-address": mac,
                "ip-addresses": [
                    {"ip-address": ip, "ip-address-type": "ipv4", "prefix": 24},
                    {"ip-address": f"fe80::{vm.vmid:x}:{idx}", "ip-address-type": "ipv6", "prefix": 64},
                ],
                "statistics": {"rx-bytes": vm.netin, "tx-bytes": vm.netout},
            }
        )
    return {"result": ifaces}
