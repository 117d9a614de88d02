"""The simulated PVE API: snapshots, the VNC proxy and the guest agent."""

from __future__ import annotations

import secrets
import time
from typing import Any

from ._api_qemu import agent_enabled, config_digest, power_on, require_running
from ._request import Request, route
from .state import PVEError
from .tasks import TaskContext


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
        "digest": config_digest(vm.config),
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
                power_on(vm)
            else:
                vm.status = vm.qmpstatus = "stopped"
            if r.flag("start") and vm.status != "running":
                power_on(vm)

    return r.task("qmrollback", str(vm.vmid), work)


# -- console, agent -------------------------------------------------------------------------------------
@route("/nodes/{node}/qemu/{vmid}/vncproxy", "POST")
def vncproxy(r: Request) -> Any:
    vm = r.vm()
    require_running(vm)
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
    if not agent_enabled(vm):
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
