"""Restart after a host failure: plan where the VMs of a down host start again, then start them there.

:func:`plan_recovery` is pure: from the inventory it picks, for each VM the failed host ran, a surviving
host of the same hypervisor that reaches all its disks, has room (CPU and memory, with the fleet's
overcommit ratios) and keeps the affinity rules; the most important VMs first (tag
``restart-priority=high|medium|low`` or a number; ``never`` opts out). VMs the vendor's own HA protects
(vSphere HA, Proxmox HA resources; read from the backend's ``ha_policy``) are reported with what that HA
will do, and left to it. :func:`run_recovery` starts each VM through the backend's ``recover_vm`` and
goes on after a failure, so one VM that cannot start does not keep the others down.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ..backend import Backend
from ..errors import HvkitError, InvalidSpec, InvalidState, Unsupported
from ..models import VM, Host, PowerState, StoragePool
from ._build import CONSUMING, reaches
from ._rules import Rule, resolve_rules

if TYPE_CHECKING:
    from ..hypervisor import Hypervisor

__all__ = [
    "Left",
    "RecoveryPlan",
    "RecoveryResult",
    "Restart",
    "plan_recovery",
    "priority_of",
    "recover",
    "run_recovery",
]

PRIORITY_TAG = "restart-priority"
# vm.extra key a backend sets when it read a VM of a down host's disks from elsewhere (say, shared storage
# listings): its value says from where; disks on the down host's own storage are then not among them
DISKS_FROM = "disks_from"
_NAMED = {"high": 3, "medium": 2, "low": 1}
_NOT_RUNNING = frozenset({PowerState.STOPPED, PowerState.SUSPENDED})


@attrs.frozen
class Restart:
    """One VM to start again: from the failed host to ``target``."""

    hypervisor: str
    vm: str
    vm_name: str
    source: str
    target: str
    target_name: str
    priority: int
    warning: str = ""  # what could not be checked (disks read from shared storage only, say)


@attrs.frozen
class Left:
    """A VM of the failed host that is not restarted by hvkit, and why (or what the vendor's HA will do)."""

    hypervisor: str
    vm: str
    vm_name: str
    reason: str


@attrs.frozen
class RecoveryPlan:
    host: str  # the failed host, as HYPERVISOR:HOST
    restarts: tuple[Restart, ...]
    left: tuple[Left, ...]  # cannot be restarted, or need not be
    vendor_ha: tuple[Left, ...]  # the vendor's own HA restarts these; hvkit leaves them alone

    def __str__(self) -> str:
        lines = [f"recovery of {self.host}: {len(self.restarts)} VM(s) to restart"]
        lines += [
            f"  restart {r.vm_name} on {r.target_name} (priority {r.priority})"
            + (f"; warning: {r.warning}" if r.warning else "")
            for r in self.restarts
        ]
        lines += [f"  vendor HA: {x.vm_name}: {x.reason}" for x in self.vendor_ha]
        lines += [f"  not restarted: {x.vm_name}: {x.reason}" for x in self.left]
        return "\n".join(lines)


@attrs.frozen
class RecoveryResult:
    plan: RecoveryPlan
    restarted: tuple[Restart, ...]
    failed: tuple[Left, ...]  # planned restarts that did not start, with the error

    @property
    def ok(self) -> bool:
        return not self.failed and not self.plan.left


def priority_of(vm: VM) -> int | None:
    """The ``restart-priority`` tag: high=3, medium=2 (the default), low=1, a number, or None for ``never``."""
    for tag in vm.tags:
        name, sep, value = tag.partition("=")
        if sep and name == PRIORITY_TAG:
            value = value.strip().lower()
            if value in ("never", "disabled", "off"):
                return None
            if value in _NAMED:
                return _NAMED[value]
            try:
                return int(value)
            except ValueError:
                raise InvalidSpec(
                    f"VM {vm.name!r}: tag {tag!r}: a priority is high, medium, low, never or a number"
                ) from None
    return _NAMED["medium"]


def _pool_of(ref: str, pools: Sequence[StoragePool], host_names: Collection[str]) -> StoragePool | None:
    """The pool a disk names: by id, else by name, preferring the one on the VM's own host (a name such as
    Proxmox's ``local`` repeats on every node); None when unknown or ambiguous."""
    for p in pools:
        if p.id == ref:
            return p
    named = [p for p in pools if p.name == ref]
    own = [p for p in named if p.host in host_names or not p.hosts.isdisjoint(host_names)]
    if own:
        return own[0]
    # a pool local to another host cannot hold this VM's disks (a KVM peer's "default" is not this one's)
    named = [p for p in named if p.shared or p.hosts or p.host is None]
    return named[0] if len(named) == 1 else None


def _positive(what: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidSpec(f"{what} must be a number > 0, got {value!r}")
    return float(value)


def plan_recovery(
    failed: Host,
    hosts: Iterable[Host],
    vms: Iterable[VM],
    pools: Iterable[StoragePool],
    rules: Iterable[Rule] = (),
    *,
    vendor_ha: Mapping[str, str] | None = None,
    unread: Collection[str] = (),
    cpu_overcommit: float = 4.0,
    memory_overcommit: float = 1.0,
) -> RecoveryPlan:
    """Where each VM of ``failed`` (a host of one hypervisor) starts again; pure, no I/O.

    ``vendor_ha``: VM id -> what the vendor's HA does with it (those are left to it). ``unread``: ids of
    VMs whose disks could not be read (the listing had none and the VM's own read failed): their storage
    reach is unknown, so they are not restarted.
    """
    cpu_ratio = _positive("cpu_overcommit", cpu_overcommit)
    mem_ratio = _positive("memory_overcommit", memory_overcommit)
    member = failed.hypervisor
    failed_names = {failed.id, failed.name}
    ha = dict(vendor_ha or {})
    vm_list = list(vms)
    member_pools = [p for p in pools if p.hypervisor == member]
    survivors = [h for h in hosts if h.hypervisor == member and h.id != failed.id and h.connected and not h.maintenance]
    load: dict[str, list[float]] = {h.id: [0.0, 0.0] for h in survivors}
    names_of = {h.id: {h.id, h.name} for h in survivors}
    where: dict[str, str] = {}  # VM id -> host id, for the rules
    host_id = {n: h.id for h in survivors for n in (h.id, h.name)}
    for vm in vm_list:
        if vm.hypervisor != member or vm.template or vm.host is None:
            continue
        hid = host_id.get(vm.host)
        if hid is not None and vm.power_state in CONSUMING:
            load[hid][0] += vm.cpus
            load[hid][1] += vm.memory_mib
            where[vm.id] = hid
    aff, anti = resolve_rules(rules, vm_list, "host")
    groups = {"aff": [{v.id for v in g if v.hypervisor == member} for g in aff],
              "anti": [{v.id for v in g if v.hypervisor == member} for g in anti]}  # fmt: skip

    victims = [v for v in vm_list if v.hypervisor == member and v.host in failed_names and not v.template]
    restarts: list[Restart] = []
    left: list[Left] = []
    handled: list[Left] = []
    ranked: list[tuple[int, VM]] = []

    def leave(vm: VM, reason: str) -> None:
        left.append(Left(str(member), vm.id, vm.name, reason))

    for vm in victims:
        if vm.id in ha:
            handled.append(Left(str(member), vm.id, vm.name, ha[vm.id]))
            continue
        if vm.power_state in _NOT_RUNNING:
            leave(vm, f"it was {vm.power_state.value} before the failure")
            continue
        prio = priority_of(vm)
        if prio is None:
            leave(vm, f"tagged {PRIORITY_TAG}=never")
            continue
        ranked.append((prio, vm))
    ranked.sort(key=lambda pv: (-pv[0], -pv[1].memory_mib, -pv[1].cpus, pv[1].name))

    for prio, vm in ranked:
        if vm.id in unread:
            leave(vm, "its disks could not be read (its host is down), so whether other hosts reach them is unknown")
            continue
        partial = vm.extra.get(DISKS_FROM)  # the backend found only the disks it could see elsewhere
        if partial and not vm.disks:
            leave(
                vm,
                f"no disk of it was found (disks read from: {partial}), so they are on the failed host's own storage",
            )
            continue
        pools_of = [_pool_of(d.pool or "", member_pools, failed_names) for d in vm.disks]
        if any(p is None for p in pools_of) and vm.disks:
            unknown = sorted({d.pool or "?" for d, p in zip(vm.disks, pools_of, strict=True) if p is None})
            if all(any(p.name == n for p in member_pools) for n in unknown):  # other hosts' local pools
                leave(vm, f"its disks are on storage no surviving host reaches ({', '.join(unknown)}: host-local)")
            else:
                leave(vm, f"its disks are in unknown pool(s) {', '.join(unknown)}")
            continue
        reach = [h for h in survivors if all(p is not None and reaches(p, names_of[h.id]) for p in pools_of)]
        if not reach:
            why = ", ".join(sorted({p.name for p in pools_of if p is not None}))
            left.append(
                Left(str(member), vm.id, vm.name, f"its disks are on storage no surviving host reaches ({why})")
            )
            continue
        must = {where[o] for g in groups["aff"] if vm.id in g for o in g if o != vm.id and o in where}
        avoid = {where[o] for g in groups["anti"] if vm.id in g for o in g if o != vm.id and o in where}
        if len(must) > 1:
            leave(vm, "its affinity partners run on different hosts")
            continue
        candidates = [h for h in reach if (not must or h.id in must) and h.id not in avoid]
        if not candidates:
            rule = "affinity" if must else "anti-affinity"
            left.append(
                Left(str(member), vm.id, vm.name, f"no surviving host that reaches its disks keeps its {rule} rule")
            )
            continue
        best: tuple[float, Host] | None = None
        for h in candidates:
            cap = (h.cpu_threads * cpu_ratio, h.memory_mib * mem_ratio)
            after = (load[h.id][0] + vm.cpus, load[h.id][1] + vm.memory_mib)
            if after[0] > cap[0] + 1e-9 or after[1] > cap[1] + 1e-9:
                continue
            ratio = max(after[0] / cap[0] if cap[0] else 1.0, after[1] / cap[1] if cap[1] else 1.0)
            if best is None or ratio < best[0]:
                best = (ratio, h)
        if best is None:
            most = max(candidates, key=lambda h: h.memory_mib * mem_ratio - load[h.id][1])
            free = int(most.memory_mib * mem_ratio - load[most.id][1])
            leave(vm, f"no surviving host has room for {vm.cpus} vCPU and {vm.memory_mib} MiB "
                      f"(the most free memory: {free} MiB on {most.name})")  # fmt: skip
            continue
        target = best[1]
        load[target.id][0] += vm.cpus
        load[target.id][1] += vm.memory_mib
        where[vm.id] = target.id
        notes = []
        if partial:
            notes.append(
                f"disks read from: {partial}. A disk on the failed host's own storage cannot be seen; with one, "
                "the start fails"
            )
        if not vm.cpus or not vm.memory_mib:
            notes.append(
                "its vCPUs, memory and state before the failure are unknown (the host's last figures are gone): "
                "room for it was not checked, and it may have been stopped"
            )
        warning = "; ".join(notes)
        restarts.append(Restart(str(member), vm.id, vm.name, failed.id, target.id, target.name, prio, warning))
    return RecoveryPlan(f"{member}:{failed.name}", tuple(restarts), tuple(left), tuple(handled))


def run_recovery(
    hv: Hypervisor,
    plan: RecoveryPlan,
    vms: Mapping[str, VM],
    *,
    timeout: float | None = None,
    progress: Callable[[Restart, str], None] | None = None,
) -> RecoveryResult:
    """Start each planned VM on its target through the backend's ``recover_vm``; go on after a failure."""
    recover = hv.backend.recover_vm
    done: list[Restart] = []
    failed: list[Left] = []
    for r in plan.restarts:
        vm = vms[r.vm]
        if progress is not None:
            progress(r, "starting")
        try:
            hv.run("vms.recover", vm.name, _call(recover, vm, r.target), wait=True, timeout=timeout)
        except HvkitError as exc:
            failed.append(Left(r.hypervisor, r.vm, r.vm_name, f"restart on {r.target_name} failed: {exc}"))
            if progress is not None:
                progress(r, "failed")
            continue
        done.append(r)
        if progress is not None:
            progress(r, "started")
    return RecoveryResult(plan, tuple(done), tuple(failed))


def _call(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: fn(*args)


def vendor_ha(hv: Hypervisor, vms: Sequence[VM]) -> dict[str, str]:
    """What the vendor's own HA will do with ``vms`` (the backend's ``ha_policy``; none where it has none)."""
    if not vms:
        return {}
    found: dict[str, str] = hv.call("fleet.recover", hv.backend.ha_policy, list(vms))
    return found


def recover(
    fleet: Any,
    host: str,
    *,
    rules: Iterable[Rule] | None = None,
    tag_rules: bool = True,
    assume_down: bool = False,
    dry_run: bool = False,
    cpu_overcommit: float = 4.0,
    memory_overcommit: float = 1.0,
    timeout: float | None = None,
    progress: Callable[[Restart, str], None] | None = None,
) -> RecoveryResult:
    """:meth:`hvkit.fleet.Fleet.recover`: read the fleet again, plan, and (unless ``dry_run``) restart."""
    inv = fleet.refresh()
    ((label, host_id),) = fleet._evacuate([host])  # the one host named (InvalidSpec if unknown or ambiguous)
    failed = next(h for h in inv.hosts if h.hypervisor == label and h.id == host_id)
    if failed.connected and not assume_down:
        raise InvalidState(
            f"host {failed.name!r} of {label} is up (connected); recover only a host that is down, or pass "
            "assume_down=True once it is fenced (powered off), so no VM runs twice"
        )
    hv: Hypervisor = fleet.hypervisor(label)
    names = {failed.id, failed.name}
    victims = [v for v in inv.vms if v.hypervisor == label and v.host in names and not v.template]
    unread = [(label, v.id) for v in victims if not v.disks]
    detail = fleet._read_vms(unread) if unread else {}
    missing = {vm_id for _, vm_id in unread if (label, vm_id) not in detail}
    victims = [detail.get((label, v.id), v) for v in victims]
    by_id = {v.id: v for v in victims}
    vms = [by_id.get(v.id, v) if v.hypervisor == label else v for v in inv.vms]
    chosen = fleet._rules(rules, tag_rules)
    plan = plan_recovery(
        failed,
        inv.hosts,
        vms,
        inv.pools,
        chosen,
        vendor_ha=vendor_ha(hv, victims),
        unread=missing,
        cpu_overcommit=cpu_overcommit,
        memory_overcommit=memory_overcommit,
    )
    if dry_run or not plan.restarts:
        return RecoveryResult(plan, (), ())
    if type(hv.backend).recover_vm is Backend.recover_vm:
        raise Unsupported(hv.kind, "fleet.recover", "the backend cannot start a VM of a down host on another host")
    try:
        return run_recovery(hv, plan, by_id, timeout=timeout, progress=progress)
    finally:
        fleet._inventory = None
