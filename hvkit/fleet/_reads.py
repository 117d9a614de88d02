"""What the fleet reads from its members beyond the inventory: host and VM metrics, snapshots, whole VMs.

Each read runs in the fleet's thread pool (``run``: one task per member, or per VM); a member that
fails to answer adds nothing, as if it had nothing to report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ..capabilities import Capability
from ..hypervisor import Hypervisor
from ..models import VM, HostMetrics, PowerState, Snapshot, VMMetrics
from ._build import key
from ._inventory import Inventory

__all__ = ["Run", "host_metrics", "read_vms", "snapshots", "vm_metrics"]

Run = Callable[[Sequence[Any], Callable[[Any], Any]], list[tuple[Any, BaseException | None]]]


def _members_with(inv: Inventory, hvs: Mapping[str, Hypervisor], capability: Capability) -> list[str]:
    return [m.label for m in inv.members if capability in m.capabilities and m.label in hvs]


def host_metrics(hvs: Mapping[str, Hypervisor], run: Run, inv: Inventory) -> dict[tuple[str, str], HostMetrics]:
    """Each host's metrics, by (member label, host id), from the members that offer them."""
    labels = _members_with(inv, hvs, Capability.HOST_METRICS)
    out: dict[tuple[str, str], HostMetrics] = {}
    for label, (res, _exc) in zip(labels, run(labels, lambda lb: hvs[lb].hosts.metrics()), strict=True):
        for m in res or []:
            out[(label, m.host)] = m
    return out


def vm_metrics(hvs: Mapping[str, Hypervisor], run: Run, inv: Inventory) -> dict[str, VMMetrics]:
    """Each running VM's metrics, by fleet key, from the members that offer them."""
    labels = _members_with(inv, hvs, Capability.VM_METRICS)
    running = {lb: [v for v in inv.vms if v.hypervisor == lb and v.power_state is PowerState.RUNNING] for lb in labels}
    out: dict[str, VMMetrics] = {}
    results = run(labels, lambda lb: hvs[lb].vms.metrics(running[lb]) if running[lb] else [])
    for label, (res, _exc) in zip(labels, results, strict=True):
        for m in res or []:
            out[key(label, m.vm)] = m
    return out


def snapshots(hvs: Mapping[str, Hypervisor], run: Run, inv: Inventory) -> dict[tuple[str, str], list[Snapshot]]:
    """The snapshots of each VM that has any, by (member label, VM id); templates are left out."""
    labels = _members_with(inv, hvs, Capability.SNAPSHOT)
    groups = [(lb, [v for v in inv.vms if v.hypervisor == lb and not v.template]) for lb in labels]
    out: dict[tuple[str, str], list[Snapshot]] = {}
    # one bulk read per member (snapshots.list_many), the members read concurrently
    for (label, _vms), (res, _exc) in zip(
        groups, run(groups, lambda g: hvs[g[0]].snapshots.list_many(g[1])), strict=True
    ):
        for vm_id, snaps in (res or {}).items():
            if snaps:
                out[(label, vm_id)] = snaps
    return out


def read_vms(hvs: Mapping[str, Hypervisor], run: Run, keys: list[tuple[str, str]]) -> dict[tuple[str, str], VM]:
    """The whole records (disks included) of the VMs named by (member label, VM id); those gone are left out."""
    results = run(keys, lambda k: attrs.evolve(hvs[k[0]].vms.get(k[1]), hypervisor=k[0]))
    return {k: vm for k, (vm, _exc) in zip(keys, results, strict=True) if vm is not None}
