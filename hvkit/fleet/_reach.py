"""Storage reach where the inventory lists no disks: read the VMs a plan moves, then plan again.

Some backends list VMs without their disks in one request (Proxmox's ``/cluster/resources``); their
configurations are one request per VM. The fleet plans with what it has, reads the VMs the plan would
move whose disks it does not know (on members whose storage does not reach every host), and plans
again with their disks, so that :func:`._build.host_problem` limits each one to the hosts that reach
its storage. It stops when a plan moves no VM it has not read; each round reads at least one more VM,
so only VMs some plan wanted to move are read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping

from ..models import VM, Host, StoragePool
from ._plan import PlacementPlan

__all__ = ["partial_reach", "plan_with_disks"]

VmKey = tuple[str, str]  # (member label, VM id)


def partial_reach(hosts: Iterable[Host], pools: Iterable[StoragePool]) -> set[str]:
    """Members with a pool that some of their hosts cannot reach (host-local, or mounted on some hosts)."""
    names: dict[str, set[str]] = {}
    for h in hosts:
        names.setdefault(str(h.hypervisor), set()).update((h.id, h.name))
    out = set()
    for p in pools:
        label = str(p.hypervisor)
        if not p.shared or (p.hosts and not names.get(label, set()) <= set(p.hosts)):
            out.add(label)
    return out


def plan_with_disks(
    make: Callable[[], PlacementPlan],
    vms: Iterable[VM],
    members: set[str],
    detail: MutableMapping[VmKey, VM],
    read: Callable[[list[VmKey]], dict[VmKey, VM]],
) -> PlacementPlan:
    """``make()`` a plan (it reads ``detail`` for VMs known in full); read the VMs it moves on ``members``
    whose disks are unknown, store them in ``detail`` and plan again, until no such VM moves."""
    listed = {(str(v.hypervisor), v.id): v for v in vms}
    while True:
        plan = make()
        todo = []
        for m in plan.moves:
            k = (str(m.hypervisor), str(m.vm))
            vm = listed.get(k)
            if m.hypervisor in members and k not in detail and vm is not None and not vm.disks:
                todo.append(k)
        if not todo:
            return plan
        found = read(todo)
        for k in todo:
            detail[k] = found.get(k, listed[k])  # a VM that could not be read counts as read: no loop
