"""Proxmox VE's own HA: which VMs its HA manager protects (``/cluster/ha/resources``) and what it does with
them when their node fails, so that fleet recovery leaves them to it."""

from __future__ import annotations

from typing import Any

from ...models import VM
from ._errors import translate

__all__ = ["ha_policy"]

# what the HA manager does with a resource of each requested state when its node is fenced
_ACTION = {
    "started": "Proxmox HA fences node {node} and starts it on another node",
    "stopped": "Proxmox HA fences node {node} and moves it, stopped, to another node",
}


def ha_policy(session: Any, vms: list[VM]) -> dict[str, str]:
    """VM id -> what Proxmox HA does when its node fails; VMs in state ``disabled`` or ``ignored`` (or not
    HA resources) are not the HA manager's to recover and are left out."""
    wanted = {f"vm:{vm.id}": vm for vm in vms}
    if not wanted:
        return {}
    with translate():
        resources = list(session.api.cluster.ha.resources.get(type="vm"))
    out: dict[str, str] = {}
    for res in resources:
        vm = wanted.get(str(res.get("sid", "")))
        action = _ACTION.get(str(res.get("state", "started")))
        if vm is None or action is None:
            continue
        text = action.format(node=vm.host or "?")
        details = [f"group {res['group']}"] if res.get("group") else []
        details.append(f"max_restart {res.get('max_restart', 1)}, max_relocate {res.get('max_relocate', 1)}")
        out[vm.id] = f"{text} ({'; '.join(details)})"
    return out
