"""vSphere HA: which VMs the HA of their cluster restarts when their host fails (one property read of the
clusters, whatever the number of VMs), so that fleet recovery leaves them to it."""

from __future__ import annotations

from typing import Any

from pyVmomi import vim

from ...models import VM

__all__ = ["ha_policy"]


def _priority(settings: Any) -> str | None:
    value = getattr(settings, "restartPriority", None) if settings is not None else None
    return str(value) if value else None


def ha_policy(session: Any, vms: list[VM]) -> dict[str, str]:
    """VM id -> what vSphere HA does when its host fails, for VMs on hosts of clusters with HA on and a
    restart priority other than ``disabled`` (the cluster's default, or the VM's own override)."""
    if not vms or not session.is_vcenter:
        return {}
    clusters = session.pc.collect(session.dc, {vim.ClusterComputeResource: ["name", "host", "configurationEx"]})
    by_host: dict[str, tuple[str, str, dict[str, str]]] = {}
    for _obj, props in clusters:
        config = props.get("configurationEx")
        das = getattr(config, "dasConfig", None)
        if das is None or not das.enabled:
            continue
        default = _priority(das.defaultVmSettings) or "medium"
        overrides: dict[str, str] = {}
        for entry in getattr(config, "dasVmConfig", None) or []:
            prio = _priority(entry.dasSettings) or (str(entry.restartPriority) if entry.restartPriority else None)
            if prio:
                overrides[entry.key._moId] = prio
        for host in props.get("host") or []:
            by_host[host._moId] = (str(props.get("name", "")), default, overrides)
    out: dict[str, str] = {}
    for vm in vms:
        found = by_host.get(str(vm.extra.get("host_id") or ""))
        if found is None:
            continue
        cluster, default, overrides = found
        prio = overrides.get(vm.id, default)
        if prio == "disabled":
            continue
        out[vm.id] = f"vSphere HA of cluster {cluster} restarts it on another host (restart priority {prio})"
    return out
