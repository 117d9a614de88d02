"""Restart a VM of a failed Proxmox VE node on another node, through Proxmox's own HA manager.

The API has no call that moves a VM off a node that is down (the documented manual way moves its
configuration file inside ``/etc/pve`` on a quorate node). Proxmox's HA manager does exactly that after
it fenced the node, so the VM is handed to it, restricted to the chosen node:

1. ``POST /cluster/ha/resources`` ``sid=vm:ID state=ignored`` (the manager does not act on it yet);
2. ``POST /cluster/ha/rules`` a strict node-affinity rule: the VM may run on the chosen node only;
3. ``PUT /cluster/ha/resources/vm:ID state=started``: the manager fences the failed node (once it has
   been offline 60 s and its agent lock expired), moves the VM's configuration to the chosen node and
   starts it there;
4. once the VM runs there, the resource and the rule are removed again (the VM keeps running, and is
   no more an HA resource than before). Whatever happens, they are removed at the end, known by the
   VM's resource id (which was no HA resource before) and the rule's id made for this call.

Needs Proxmox VE 9 (HA rules; 8.x has HA groups instead, and the rule's POST fails there, removing the
resource again). The VM keeps its id (vmid), name, configuration and disks; its node changes. Fencing: for a node whose
HA agent held no resources before the failure, Proxmox counts the node fenced as soon as it takes the
agent lock, without any watchdog reset having happened, so the node must really be off (powered off,
or cut off from the storage), as fleet recovery requires anyway.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from typing import Any

from ...driver import Task, TaskControl, ThreadSource
from ...errors import BackendError, HvkitError, InvalidSpec, InvalidState, NotFound
from ...models import VM
from ._errors import translate
from ._vms import get_vm

__all__ = ["recover_vm"]

_STEPS = {"fence": (30, "Proxmox HA fences the failed node"), "recovery": (60, "Proxmox HA recovers the VM"),
          "started": (90, "Proxmox HA starts the VM")}  # fmt: skip


def _service(session: Any, sid: str) -> dict[str, Any]:
    with translate():
        entries = list(session.api.cluster.ha.status.current.get())
    return next((e for e in entries if e.get("id") == f"service:{sid}"), {})


def _check(session: Any, vm: VM, host: str) -> tuple[int, str]:
    """The vmid and its (failed) node; InvalidState/NotFound before anything changes."""
    if not isinstance(host, str) or not host:
        raise InvalidSpec(f"expected a node name, got {host!r}")
    if not str(vm.id).isdigit():
        raise InvalidSpec(f"expected a Proxmox VM id (vmid), got {vm.id!r}")
    vmid = int(vm.id)
    nodes = {str(e["node"]): str(e.get("status", "")) for e in session.resources("node")}
    entry = next((e for e in session.resources("vm") if int(e.get("vmid", -1)) == vmid), None)
    if entry is None:
        raise NotFound(f"no VM {vmid} on this Proxmox cluster")
    node = str(entry["node"])
    if nodes.get(node) == "online":
        raise InvalidState(
            f"VM {vm.name!r}: its node {node!r} is online; migrate the VM instead (Proxmox HA recovers a VM "
            "only from a node the cluster sees offline)"
        )
    if host not in nodes:
        raise NotFound(f"no node {host!r} in this Proxmox cluster")
    if nodes[host] != "online":
        raise InvalidState(f"node {host!r} is not online")
    with translate():
        status = list(session.api.cluster.ha.status.current.get())
        resources = list(session.api.cluster.ha.resources.get(type="vm"))
    quorum: dict[str, Any] = next((e for e in status if e.get("type") == "quorum"), {})
    if not quorum.get("quorate"):
        raise InvalidState("the Proxmox cluster has no quorum, so its HA manager cannot recover anything")
    for res in resources:
        if res.get("sid") == f"vm:{vmid}":
            raise InvalidState(
                f"VM {vm.name!r} is already a Proxmox HA resource (state {res.get('state')}); set its state to "
                "started and Proxmox HA recovers it"
            )
    return vmid, node


def recover_vm(session: Any, vm: VM, host: str) -> Task:
    """Start ``vm``, whose node the cluster sees offline, on node ``host`` (see the module's text)."""
    vmid, failed = _check(session, vm, host)
    sid = f"vm:{vmid}"
    rule_id = f"hvkit_recover_{vmid}_{secrets.token_hex(3)}"
    comment = f"hvkit fleet recovery of {vm.name} from {failed} to {host}; removed once it runs"
    ha = session.api.cluster.ha

    def work(control: TaskControl) -> Any:
        made: list[str] = []
        try:
            with translate():
                ha.resources.post(sid=sid, state="ignored", comment=comment)
                made.append("resource")
                ha.rules.post(type="node-affinity", rule=rule_id, resources=sid, nodes=host, strict=1,
                              comment=comment)  # fmt: skip
                made.append("rule")
                ha.resources(sid).put(state="started")
            control.progress(10, f"handed to Proxmox HA, restricted to node {host}")
            interval = 0.05
            while True:
                control.check()
                entry = _service(session, sid)
                crm, at = str(entry.get("crm_state", "")), str(entry.get("node", ""))
                if crm == "error":
                    raise BackendError(
                        f"Proxmox HA could not start VM {vm.name!r} on {at or host!r} (service {sid} in error "
                        "state: see the HA log, journalctl -u pve-ha-lrm on that node)"
                    )
                if crm in _STEPS:
                    control.progress(*_STEPS[crm])
                if crm == "started" and at == host:
                    with translate():
                        now = session.api.nodes(host).qemu(vmid).status.current.get()
                    if now.get("status") == "running":
                        break
                control.sleep(interval)
                interval = min(interval * 1.5, 2.0)
        except BaseException as exc:
            _remove(ha, sid, rule_id, made)
            if isinstance(exc, HvkitError):
                raise _with_text(exc, f"{exc}; {_where(session, vmid, failed)}") from exc
            raise
        _remove(ha, sid, rule_id, made)
        return get_vm(session, str(vmid))

    return Task.of(ThreadSource("vms.recover", work, kind="proxmox"), vm.name)


def _remove(ha: Any, sid: str, rule_id: str, made: list[str]) -> None:
    """Remove the HA resource and rule this call made (deleting the resource with purge drops the rule)."""
    if "resource" in made:
        for attempt in range(3):
            try:
                with translate():
                    ha.resources(sid).delete()
                break
            except HvkitError:
                time.sleep(0.2 * (attempt + 1))
    if "rule" in made:
        with contextlib.suppress(HvkitError), translate():  # gone already when the purge dropped it
            ha.rules(rule_id).delete()


def _with_text(exc: HvkitError, text: str) -> HvkitError:
    try:
        return type(exc)(text)
    except TypeError:  # an error class with other arguments
        return BackendError(text)


def _where(session: Any, vmid: int, failed: str) -> str:
    try:
        entry: dict[str, Any] = next((e for e in session.resources("vm") if int(e.get("vmid", -1)) == vmid), {})
    except HvkitError:
        return "where the VM is now could not be read"
    node = entry.get("node", "?")
    if node == failed:
        return f"the VM is still on {failed}, which was not changed; its HA resource and rule were removed"
    return f"Proxmox HA had moved the VM to {node} ({entry.get('status', '?')}); its HA resource and rule were removed"
