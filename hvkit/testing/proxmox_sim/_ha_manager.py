"""The simulated PVE HA manager (CRM and LRMs), after pve-ha-manager's ``Manager.pm`` / ``NodeStatus.pm``.

What it models, one CRM round per API request (the simulator has no clock of its own; whoever looks
sees the rounds that would have run):

* resources: a new one enters ``request_start`` (state ``started``) or ``request_stop``; ``ignored``
  leaves the manager; ``started`` on an online node starts the VM, ``stopped``/``disabled`` stops it;
* a node that leaves the quorate partition: after ``Cluster.ha_fence_delay`` seconds (PVE: 60 s offline,
  then the CRM must take the node's agent lock, which its watchdog-fenced LRM no longer renews) its
  services go ``fence`` -> ``recovery``; recovery picks an online node allowed by the service's
  node-affinity rule (the highest priority class present; a strict rule allows no other node), the
  least loaded, moves the VM's config there (``steal_service``) and sets ``started`` (or
  ``request_stop``); without an allowed node the service stays in ``recovery``;
* a start fails (``error``) when the VM's disks are not on the node (local storage of the failed node);
* nothing happens without quorum (more than half the nodes online).
"""

from __future__ import annotations

import time
from typing import Any

from ._values import drive
from .state import DISK_KEYS_ALL, Cluster

__all__ = ["node_affinity", "status", "step"]

_ACTIVE = ("started", "request_start", "starting", "fence", "recovery")


def _quorate(c: Cluster) -> bool:
    return len([n for n in c.nodes if n not in c.node_offline]) * 2 > len(c.nodes)


def node_affinity(c: Cluster, sid: str) -> tuple[list[str], bool] | None:
    """The nodes an enabled node-affinity rule allows ``sid`` (its highest priority class first: the list
    is that class) and whether it is strict; None without such a rule."""
    for rule in c.ha_rules.values():
        if rule["type"] != "node-affinity" or rule.get("disable") or sid not in rule["resources"].split(","):
            continue
        prio: dict[str, int] = {}
        for item in rule["nodes"].split(","):
            name, _, value = item.partition(":")
            prio[name] = int(value or 0)
        online = {n: p for n, p in prio.items() if n in c.nodes and n not in c.node_offline}
        best = max(online.values(), default=None)
        return [n for n, p in online.items() if p == best], bool(rule.get("strict"))
    return None


def _recovery_node(c: Cluster, sid: str) -> str | None:
    online = [n for n in c.nodes if n not in c.node_offline]
    rule = node_affinity(c, sid)
    if rule is not None:
        allowed, strict = rule
        if allowed or strict:
            online = allowed
    if not online:
        return None
    load = {n: sum(1 for v in c.vms.values() if v.node == n and v.status == "running") for n in online}
    return min(online, key=lambda n: (load[n], n))


def _disks_on(c: Cluster, vmid: int, node: str) -> str | None:
    """None when every disk of the VM is reachable from ``node``, else the first missing volume."""
    vm = c.vms[vmid]
    for key, value in vm.config.items():
        if key not in DISK_KEYS_ALL or not value:
            continue
        d = drive(value)
        volid = d.get("file", "")
        if d.get("media") == "cdrom" or volid in ("", "none") or ":" not in volid:
            continue
        st = c.storages.get(volid.partition(":")[0])
        if st is None or not st.on(node) or not c.volume_path(node, volid).exists():
            return volid
    return None


def step(c: Cluster) -> None:
    """One CRM round, with what the LRMs do in it."""
    with c.mu:
        if not c.ha_resources and not c.ha_services:
            return
        now = time.monotonic()
        for node in c.nodes:
            if node in c.node_offline:
                c.ha_offline_since.setdefault(node, now)
            else:
                c.ha_offline_since.pop(node, None)
        if not _quorate(c):
            return
        for sid in [s for s in c.ha_services if s not in c.ha_resources or c.ha_resources[s]["state"] == "ignored"]:
            del c.ha_services[sid]  # removed, or ignored: no longer the manager's
        for sid, cd in sorted(c.ha_resources.items()):
            vmid = int(sid.partition(":")[2])
            vm = c.vms.get(vmid)
            if cd["state"] == "ignored" or vm is None:
                continue
            wanted = "started" if cd["state"] == "started" else "stopped"
            sd = c.ha_services.setdefault(
                sid, {"state": "request_start" if wanted == "started" else "request_stop", "node": vm.node}
            )
            if sd["state"] == "error":
                continue
            node = sd["node"]
            offline_for = now - c.ha_offline_since[node] if node in c.ha_offline_since else None
            if offline_for is not None:
                if sd["state"] not in ("fence", "recovery") and offline_for >= c.ha_fence_delay:
                    sd["state"] = "fence"
                if sd["state"] == "fence":  # the agent lock of the dead node is the CRM's now: fenced
                    sd["state"] = "recovery"
                if sd["state"] == "recovery":
                    target = _recovery_node(c, sid)
                    if target is None:
                        continue  # retried every round
                    vm.node = sd["node"] = target  # steal_service: the config moves to the new node
                    vm.status = vm.qmpstatus = "stopped"
                    sd["state"] = "started" if wanted == "started" else "request_stop"
                else:
                    continue
            if wanted == "started":
                if vm.status != "running":
                    missing = _disks_on(c, vmid, vm.node)
                    if missing is not None:
                        sd["state"] = "error"  # start failed: "volume '...' does not exist"
                        sd["error"] = f"volume '{missing}' does not exist"
                        continue
                    vm.status = vm.qmpstatus = "running"
                    vm.started = time.time()
                sd["state"] = "started"
            else:
                vm.status = vm.qmpstatus = "stopped"
                sd["state"] = "stopped"


def status(c: Cluster) -> list[dict[str, Any]]:
    """``GET /cluster/ha/status/current``: quorum, master, fencing, one entry per LRM and per service."""
    with c.mu:
        quorate = _quorate(c)
        online = [n for n in c.nodes if n not in c.node_offline]
        master = online[0] if online else c.nodes[0]
        stamp = int(time.time())
        when = time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(stamp))
        out: list[dict[str, Any]] = [
            {"id": "quorum", "type": "quorum", "node": master, "quorate": 1 if quorate else 0,
             "status": "OK" if quorate else f"No quorum on node '{master}'!"},
        ]  # fmt: skip
        active = bool(c.ha_resources)
        out.append({"id": "master", "type": "master", "node": master, "timestamp": stamp,
                    "status": f"{master} ({'active' if active else 'idle'}, {when})"})  # fmt: skip
        armed = "armed" if active else "standby"
        out.append({"id": "fencing", "type": "fencing", "node": master, "armed-state": armed,
                    "status": f"{armed} (CRM watchdog {'active' if active else 'standby'})"})  # fmt: skip
        for node in c.nodes:
            if node in c.node_offline:
                out.append({"id": f"lrm:{node}", "type": "lrm", "node": node,
                            "status": f"{node} (old timestamp - dead?, {when})"})  # fmt: skip
                continue
            busy = any(s["node"] == node and s["state"] in _ACTIVE for s in c.ha_services.values())
            mode = "active, watchdog active" if busy else "idle, watchdog standby"
            out.append({"id": f"lrm:{node}", "type": "lrm", "node": node, "timestamp": stamp,
                        "status": f"{node} ({mode}, {when})"})  # fmt: skip
        for sid, cd in sorted(c.ha_resources.items()):
            sd = c.ha_services.get(sid)
            vm = c.vms.get(int(sid.partition(":")[2]))
            node = sd["node"] if sd else (vm.node if vm else "---")
            entry: dict[str, Any] = {"id": f"service:{sid}", "type": "service", "sid": sid, "node": node,
                                     "request_state": cd["state"], "max_restart": cd["max_restart"],
                                     "max_relocate": cd["max_relocate"], "failback": cd.get("failback", 1)}  # fmt: skip
            if sd is not None:
                entry["crm_state"] = sd["state"]
            verbose = cd["state"] if cd["state"] in ("ignored", "disabled") else (sd["state"] if sd else "queued")
            entry["state"] = verbose
            entry["status"] = f"{sid} ({node}, {verbose})"
            out.append(entry)
        return out
