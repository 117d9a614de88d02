"""Sim host failure: mark a host down (its VMs read UNKNOWN, the host ``connected=False``), restart a VM of
a down host on another host, and the sim's own HA (VMs tagged ``sim-ha``), which recovery leaves alone."""

from __future__ import annotations

from typing import Any

from ...driver import Task
from ...errors import InsufficientCapacity, InvalidState
from ...models import VM, PowerState
from ._session import SimSession

__all__ = ["HA_TAG", "ha_policy", "recover_vm", "set_host_down"]

HA_TAG = "sim-ha"


def set_host_down(session: SimSession, host: str, down: bool = True) -> None:
    """Mark ``host`` down (unreachable: its VMs are not running anywhere) or up again."""
    with session.world.lock:
        session.world.hosts[session.host_id(host)]["down"] = down
        session.world.save()


def host_down(session: SimSession, host_id: str | None) -> bool:
    return bool(session.world.hosts.get(host_id or "", {}).get("down"))


def recover_vm(session: SimSession, vm: VM, host: str) -> Task:
    """Start ``vm``, whose host is down, on ``host`` (sim pools are shared: every host reaches its disks)."""
    session.enter("recover_vm")

    def effect() -> VM:
        w = session.world
        with w.lock:
            rec: dict[str, Any] = session.vm(vm.id)
            if not host_down(session, rec["host"]):
                raise InvalidState(f"VM {rec['name']!r}: its host {rec['host']!r} is up; migrate it instead")
            target = w.hosts[session.host_id(host)]
            if target.get("down") or target["maintenance"]:
                raise InvalidState(f"host {target['name']!r} is down or in maintenance mode")
            used = session.host_usage()[target["id"]][1]
            if used + rec["memory_mib"] > target["memory_mib"]:
                raise InsufficientCapacity(
                    f"host {target['name']!r} has {target['memory_mib'] - used} MiB free; "
                    f"VM {rec['name']!r} needs {rec['memory_mib']}"
                )
            rec["host"] = target["id"]
            session.set_state(rec, PowerState.RUNNING, "started")
            return session.vm_model(rec)

    return session.task("recover_vm", vm.name, effect)


def ha_policy(session: SimSession, vms: list[VM]) -> dict[str, str]:
    """VMs tagged ``sim-ha`` are the sim's own HA's: it restarts them (so recovery must not)."""
    return {vm.id: "the sim's HA restarts it on a surviving host (tag sim-ha)" for vm in vms if HA_TAG in vm.tags}
