"""Inventory -> placement Problem (hosts and running VMs, or pools and VM disks). No I/O."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Protocol, TypeVar

import attrs

from ..capabilities import Capability
from ..errors import InvalidSpec
from ..models import VM, Host, PowerState, StoragePool, VMMetrics
from ._plan import Bin, Item, PlacementPlan, Problem
from ._rules import Rule, resolve_rules

__all__ = ["CONSUMING", "Built", "by_ref", "host_problem", "storage_problem"]

MIB = 1024 * 1024
CONSUMING = frozenset(
    {PowerState.RUNNING, PowerState.PAUSED, PowerState.STARTING, PowerState.STOPPING, PowerState.MIGRATING}
)
LIVE = frozenset({PowerState.RUNNING, PowerState.PAUSED})
DEMANDS = ("allocated", "measured")


@attrs.frozen
class Ref:
    hypervisor: str
    id: str
    name: str

    @property
    def names(self) -> frozenset[str]:
        return frozenset((self.id, self.name))


@attrs.frozen
class Built:
    """A Problem and what its keys stand for."""

    problem: Problem
    bins: Mapping[str, Ref]
    items: Mapping[str, Ref]
    kind: str  # host | pool

    def dress(self, plan: PlacementPlan) -> PlacementPlan:
        """Fill each move with its hypervisor, VM and host/pool names."""
        moves = []
        for m in plan.moves:
            vm, src, dst = self.items[m.item], self.bins[m.source], self.bins[m.target]
            moves.append(
                attrs.evolve(
                    m,
                    kind=self.kind,
                    hypervisor=vm.hypervisor,
                    vm=vm.id,
                    vm_name=vm.name,
                    source=src.id,
                    target=dst.id,
                    source_name=src.name,
                    target_name=dst.name,
                )
            )
        return attrs.evolve(plan, moves=tuple(moves))


def key(hypervisor: str | None, ident: str) -> str:
    return f"{hypervisor}#{ident}"


def _positive(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidSpec(f"{what} must be a number > 0, got {value!r}")
    return float(value)


def _host_of(vm: VM, hosts: Mapping[tuple[str | None, str], Host]) -> Host | None:
    if vm.host is None:
        return None
    return hosts.get((vm.hypervisor, vm.host))


def _vm_groups(groups: list[list[VM]], present: Collection[str]) -> list[frozenset[str]]:
    out = []
    for g in groups:
        keys = frozenset(key(v.hypervisor, v.id) for v in g) & frozenset(present)
        if len(keys) >= 2:
            out.append(keys)
    return out


def reaches(pool: StoragePool, names: Collection[str]) -> bool:
    """Whether a host known by ``names`` (its id and name) reaches ``pool``."""
    if pool.hosts:
        return not pool.hosts.isdisjoint(names)
    return pool.shared or pool.host is None or pool.host in names


class _Named(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def hypervisor(self) -> str | None: ...


T = TypeVar("T", bound=_Named)


def by_ref(items: Iterable[T]) -> dict[tuple[str | None, str], T]:
    """Hosts or pools by (hypervisor, id) and (hypervisor, name), the way VMs name them; an id wins over
    another object's equal name."""
    out: dict[tuple[str | None, str], T] = {}
    listed = list(items)
    for it in listed:
        out[(it.hypervisor, it.name)] = it
    for it in listed:
        out[(it.hypervisor, it.id)] = it
    return out


def _hosts_reaching(pools: Collection[StoragePool], host_refs: Mapping[str, Ref]) -> frozenset[str]:
    """The keys of the hosts that reach every one of ``pools``."""
    return frozenset(
        k
        for k, ref in host_refs.items()
        if all(p.hypervisor == ref.hypervisor and reaches(p, ref.names) for p in pools)
    )


def host_problem(
    hosts: Iterable[Host],
    vms: Iterable[VM],
    pools: Iterable[StoragePool],
    capabilities: Mapping[str, frozenset[Capability]],
    rules: Iterable[Rule] = (),
    *,
    demand: str = "allocated",
    cpu_overcommit: float = 4.0,
    memory_overcommit: float = 1.0,
    metrics: Mapping[str, VMMetrics] | None = None,
    evacuate: Collection[tuple[str, str]] = (),
) -> Built:
    """Hosts become bins (CPU, memory); VMs that hold a host's resources become items.

    ``demand="allocated"``: vCPUs against threads x ``cpu_overcommit`` and memory against physical
    memory x ``memory_overcommit``. ``"measured"``: CPU in use (usage x vCPUs) against threads and
    memory in use against physical memory, from ``metrics`` (VM id keyed by ``HYPERVISOR#ID``), falling
    back to the allocation where a VM has no measurement. ``evacuate``: (hypervisor, host id) pairs to
    treat as in maintenance. Only running or paused VMs on hypervisors with live migration can move.
    """
    if demand not in DEMANDS:
        raise InvalidSpec(f"demand must be one of {', '.join(DEMANDS)}, got {demand!r}")
    cpu_ratio = _positive("cpu_overcommit", cpu_overcommit) if demand == "allocated" else 1.0
    mem_ratio = _positive("memory_overcommit", memory_overcommit) if demand == "allocated" else 1.0
    host_list = [h for h in hosts if h.connected]
    hosts_by_ref = by_ref(host_list)
    pool_list = list(pools)
    local_pools = {(p.hypervisor, r) for p in pool_list if not p.shared for r in (p.id, p.name)}
    pool_by_ref = by_ref(pool_list)
    reachable: dict[frozenset[StoragePool], frozenset[str]] = {}
    bins = []
    bin_refs: dict[str, Ref] = {}
    leave = set(evacuate)
    for h in host_list:
        k = key(h.hypervisor, h.id)
        accepts = not h.maintenance and (h.hypervisor, h.id) not in leave and (h.hypervisor, h.name) not in leave
        bins.append(
            Bin(
                k,
                (h.cpu_threads * cpu_ratio, h.memory_mib * mem_ratio),
                domain=str(h.hypervisor),
                accepts=accepts,
                label=h.name,
            )
        )
        bin_refs[k] = Ref(str(h.hypervisor), h.id, h.name)
    items = []
    item_refs: dict[str, Ref] = {}
    vm_list = list(vms)
    for vm in vm_list:
        if vm.template or vm.power_state not in CONSUMING:
            continue
        host = _host_of(vm, hosts_by_ref)
        if host is None:
            continue
        cpu, mem = float(vm.cpus), float(vm.memory_mib)
        if demand == "measured" and metrics is not None:
            m = metrics.get(key(vm.hypervisor, vm.id))
            if m is not None:
                if m.cpu_usage is not None:
                    cpu = vm.cpus * max(0.0, min(1.0, m.cpu_usage))
                if m.memory_used_mib is not None:
                    mem = float(max(0, m.memory_used_mib))
        local = sum(d.size_bytes for d in vm.disks if (vm.hypervisor, d.pool or "") in local_pools)
        movable = vm.power_state in LIVE and Capability.VM_MIGRATE in capabilities.get(str(vm.hypervisor), frozenset())
        k = key(vm.hypervisor, vm.id)
        home = key(host.hypervisor, host.id)
        # a VM goes only to hosts that mount every datastore its disks are on, where the vendor says which
        mounted = frozenset(p for d in vm.disks if (p := pool_by_ref.get((vm.hypervisor, d.pool or ""))) and p.hosts)
        allowed = None
        if mounted:
            if mounted not in reachable:  # once per set of datastores, not per VM
                reachable[mounted] = _hosts_reaching(mounted, bin_refs)
            allowed = reachable[mounted] | {home}
        items.append(
            Item(k, home, (cpu, mem), cost=vm.memory_mib * MIB + local, movable=movable, allowed=allowed, label=vm.name)
        )
        item_refs[k] = Ref(str(vm.hypervisor), vm.id, vm.name)
    aff, anti = resolve_rules(rules, vm_list, "host")
    problem = Problem(bins, items, affinity=_vm_groups(aff, item_refs), anti_affinity=_vm_groups(anti, item_refs))
    return Built(problem, bin_refs, item_refs, "host")


def storage_problem(
    hosts: Iterable[Host],
    vms: Iterable[VM],
    pools: Iterable[StoragePool],
    capabilities: Mapping[str, frozenset[Capability]],
    rules: Iterable[Rule] = (),
) -> Built:
    """Pools become bins (bytes); each VM's disks become an item, sized by their provisioned size.

    A pool's load is the larger of its used bytes and the disks provisioned in it (a thin disk may
    grow to its full size). A VM whose disks span several pools stays put; a VM moves only to pools
    its host can reach (shared pools, or local pools of its host), on hypervisors with storage migration.
    """
    host_list = list(hosts)
    names = {(h.hypervisor, h.id): {h.id, h.name} for h in host_list}
    host_names = {(h.hypervisor, r): names[(h.hypervisor, h.id)] for h in host_list for r in (h.id, h.name)}
    pool_list = list(pools)
    pool_by_ref = by_ref(pool_list)
    provisioned: dict[str, float] = {}
    vm_list = list(vms)
    per_vm: list[tuple[VM, StoragePool | None, int]] = []
    for vm in vm_list:
        if not vm.disks:
            continue
        homes = {pool_by_ref.get((vm.hypervisor, d.pool or "")) for d in vm.disks}
        size = vm.disk_bytes
        home = next(iter(homes)) if len(homes) == 1 else None
        if home is not None:  # VMs with disks in several pools stay out: their bytes count in `used`
            pk = key(home.hypervisor, home.id)
            provisioned[pk] = provisioned.get(pk, 0.0) + size
        per_vm.append((vm, home, size))
    bins = []
    bin_refs: dict[str, Ref] = {}
    for p in pool_list:
        k = key(p.hypervisor, p.id)
        base = max(0.0, p.used_bytes - provisioned.get(k, 0.0))
        bins.append(
            Bin(k, (float(p.capacity_bytes),), domain=str(p.hypervisor), accepts=p.active, base=(base,), label=p.name)
        )
        bin_refs[k] = Ref(str(p.hypervisor), p.id, p.name)
    items = []
    item_refs: dict[str, Ref] = {}
    for vm, home, size in per_vm:
        if home is None:
            continue  # disks in several pools (or an unknown one): counted in the pools' base, never moved
        reach = names.get((vm.hypervisor, vm.host or "")) or host_names.get((vm.hypervisor, vm.host or ""), set())
        allowed = frozenset(
            key(p.hypervisor, p.id) for p in pool_list if p.hypervisor == vm.hypervisor and reaches(p, reach)
        )
        movable = (
            not vm.template
            and vm.power_state not in (PowerState.MIGRATING, PowerState.UNKNOWN)
            and Capability.VM_STORAGE_MIGRATE in capabilities.get(str(vm.hypervisor), frozenset())
        )
        k = key(vm.hypervisor, vm.id)
        pk = key(home.hypervisor, home.id)
        items.append(Item(k, pk, (float(size),), cost=size, movable=movable, allowed=allowed | {pk}, label=vm.name))
        item_refs[k] = Ref(str(vm.hypervisor), vm.id, vm.name)
    aff, anti = resolve_rules(rules, vm_list, "pool")
    problem = Problem(
        bins, items, affinity=_vm_groups(aff, item_refs), anti_affinity=_vm_groups(anti, item_refs), dims=("bytes",)
    )
    return Built(problem, bin_refs, item_refs, "pool")
