"""Fleet: one inventory over many hypervisors, read concurrently; the entry point to placement plans."""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from .._connect import connect
from ..errors import InvalidSpec, NotFound, Unsupported
from ..hypervisor import Hypervisor
from ..models import VM, Host, Network, PowerState, StoragePool
from ._build import Built, host_problem, storage_problem
from ._capacity import CapacityReport, Finding, capacity, health
from ._consolidation import consolidate
from ._execute import check_plan, run_moves
from ._inventory import Failure, Inventory, Member, Outcome, Step, check_pattern, pattern_match, power_states
from ._placement import balance
from ._plan import PlacementPlan, check_ratio
from ._reach import partial_reach, plan_with_disks
from ._reads import host_metrics, read_vms, snapshots, vm_metrics
from ._recover import RecoveryResult, Restart, recover
from ._rules import Rule, rules_from_tags

__all__ = ["Fleet"]

T = TypeVar("T")
Source = Hypervisor | str


def _err(exc: BaseException) -> tuple[str, str]:
    return str(exc), type(exc).__name__


class Fleet:
    """Many hypervisors seen as one: ``Fleet([hv, "sim://lab", "prod-profile"])``.

    Members are :class:`~hvkit.Hypervisor` connections (the caller keeps them open and closes them),
    URLs (anything with ``://``) or profile names (both opened here, and closed by :meth:`close`); a
    mapping ``{label: source}`` names them; ``opener(text)``, if given, opens URLs and profiles instead
    of :func:`hvkit.connect`. Reads run in a thread pool, one task per member; a member that fails is
    reported in ``inventory.failures`` and the rest go on.
    """

    def __init__(
        self,
        members: Iterable[Source] | Mapping[str, Source],
        *,
        max_workers: int = 8,
        opener: Callable[[str], Hypervisor] | None = None,
    ) -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise InvalidSpec(f"max_workers must be a whole number >= 1, got {max_workers!r}")
        if isinstance(members, str | Hypervisor):
            raise InvalidSpec("Fleet takes a list of connections, URLs or profile names, not a single one")
        if not isinstance(members, Iterable | Mapping):
            raise InvalidSpec(f"Fleet takes a list of connections, URLs or profile names, got {type(members).__name__}")
        pairs: list[tuple[str | None, Source]]
        if isinstance(members, Mapping):
            pairs = [(str(k), v) for k, v in members.items()]
        else:
            pairs = [(None, v) for v in members]
        if not pairs:
            raise InvalidSpec("a Fleet needs at least one hypervisor")
        for label, src in pairs:
            if not isinstance(src, Hypervisor | str) or (isinstance(src, str) and not src.strip()):
                raise InvalidSpec(f"fleet members are Hypervisor connections, URLs or profile names; got {src!r}")
            if label is not None and not label:
                raise InvalidSpec("fleet member labels must be non-empty")
        self.max_workers = max_workers
        self._opener = opener
        self._hvs: dict[str, Hypervisor] = {}
        self._owned: set[str] = set()
        self._connect_failures: list[Failure] = []
        self._labels: list[str] = []
        self._inventory: Inventory | None = None
        self._detail: dict[tuple[str, str], VM] = {}  # VMs read in full for storage reach (see _reach)
        used: set[str] = set()
        todo: list[tuple[str, Source]] = []
        for label, src in pairs:
            base = label or (src.url if isinstance(src, Hypervisor) else src)
            name, n = base, 1
            while name in used:
                n += 1
                name = f"{base}#{n}"
            used.add(name)
            self._labels.append(name)
            todo.append((name, src))
        opened = self._map(todo, lambda pair: self._open(pair[1]))
        for (label, src), (hv, exc) in zip(todo, opened, strict=True):
            if hv is not None:
                self._hvs[label] = hv
                if not isinstance(src, Hypervisor):
                    self._owned.add(label)
            elif exc is not None:
                self._connect_failures.append(Failure(label, "connect", *_err(exc)))

    def _open(self, src: Source) -> Hypervisor:
        if isinstance(src, Hypervisor):
            return src
        if self._opener is not None:
            return self._opener(src)
        return connect(src) if "://" in src else connect(profile=src)

    def _map(self, items: Sequence[T], fn: Callable[[T], Any]) -> list[tuple[Any, BaseException | None]]:
        """Run ``fn`` over items in the pool; return (result, None) or (None, error) per item, in order."""
        if not items:
            return []
        with cf.ThreadPoolExecutor(
            max_workers=min(self.max_workers, len(items)), thread_name_prefix="hvkit-fleet"
        ) as pool:
            futures = [pool.submit(fn, it) for it in items]
            out: list[tuple[Any, BaseException | None]] = []
            for f in futures:
                try:
                    out.append((f.result(), None))
                except Exception as exc:
                    out.append((None, exc))
            return out

    # -- members ----------------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        """Every member's label, connected or not."""
        return list(self._labels)

    def hypervisor(self, label: str) -> Hypervisor:
        """The connection of one member; NotFound for an unknown or unreachable one."""
        if label in self._hvs:
            return self._hvs[label]
        known = ", ".join(self._hvs) or "none"
        raise NotFound(f"no connected fleet member {label!r} (connected: {known})")

    def close(self) -> None:
        """Close the connections this fleet opened (not those it was given)."""
        for label in sorted(self._owned):
            try:
                self._hvs[label].close()
            except Exception:  # closing must not raise
                pass
        self._owned.clear()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Fleet {len(self._hvs)}/{len(self._labels)} connected: {', '.join(self._labels)}>"

    # -- reading ----------------------------------------------------------------------------------
    def refresh(self) -> Inventory:
        """Read every member again, concurrently."""
        labels = list(self._hvs)
        results = self._map(labels, lambda label: self._read(label, self._hvs[label]))
        members, hosts, vms, pools, nets = [], [], [], [], []
        failures = list(self._connect_failures)
        for label, (res, exc) in zip(labels, results, strict=True):
            hv = self._hvs[label]
            members.append(Member(label, hv.kind, hv.url, hv.capabilities))
            if exc is not None:
                failures.append(Failure(label, "read", *_err(exc)))
                continue
            h, v, p, n = res
            hosts += h
            vms += v
            pools += p
            nets += n
        self._detail = {}
        self._inventory = Inventory(
            tuple(members),
            tuple(hosts),
            tuple(vms),
            tuple(pools),
            tuple(nets),
            tuple(failures),
            dt.datetime.now(dt.UTC),
        )
        return self._inventory

    @staticmethod
    def _read(label: str, hv: Hypervisor) -> tuple[list[Host], list[VM], list[StoragePool], list[Network]]:
        def opt(fn: Callable[[], list[T]]) -> list[T]:
            try:
                return fn()
            except Unsupported:
                return []

        hosts = [attrs.evolve(h, hypervisor=label) for h in hv.hosts.list()]
        vms = [attrs.evolve(v, hypervisor=label) for v in hv.vms.list()]
        pools = [attrs.evolve(p, hypervisor=label) for p in opt(hv.pools.list)]
        nets = [attrs.evolve(n, hypervisor=label) for n in opt(hv.networks.list)]
        return hosts, vms, pools, nets

    @property
    def inventory(self) -> Inventory:
        """The last inventory read (read now if there is none)."""
        return self._inventory if self._inventory is not None else self.refresh()

    @property
    def failures(self) -> tuple[Failure, ...]:
        return self.inventory.failures

    def _filter_common(
        self, items: Iterable[Any], name: str | None, kind: str | None, hypervisor: str | None
    ) -> list[Any]:
        name = check_pattern("name", name)
        kind = check_pattern("kind", kind)
        hypervisor = check_pattern("hypervisor", hypervisor)
        kinds = self.inventory.kinds
        return [
            it
            for it in items
            if pattern_match(name, it.name)
            and pattern_match(kind, kinds.get(it.hypervisor))
            and pattern_match(hypervisor, it.hypervisor)
        ]

    def hosts(
        self,
        *,
        name: str | None = None,
        kind: str | None = None,
        hypervisor: str | None = None,
        maintenance: bool | None = None,
    ) -> list[Host]:
        """Hosts, filtered by name pattern (glob), backend kind, member label, maintenance mode."""
        out = self._filter_common(self.inventory.hosts, name, kind, hypervisor)
        return [h for h in out if maintenance is None or h.maintenance == bool(maintenance)]

    def vms(
        self,
        *,
        name: str | None = None,
        power_state: PowerState | str | Iterable[PowerState | str] | None = None,
        tag: str | Iterable[str] | None = None,
        host: str | None = None,
        kind: str | None = None,
        hypervisor: str | None = None,
    ) -> list[VM]:
        """VMs, filtered by name pattern, power state(s), tag(s) (all must be present), host (id or name
        pattern), backend kind and member label."""
        states = power_states(power_state)
        tags: frozenset[str] | None
        if tag is None:
            tags = None
        elif isinstance(tag, str):
            tags = frozenset({tag})
        else:
            tags = frozenset(tag)
        if tags is not None and (not tags or any(not isinstance(t, str) or not t for t in tags)):
            raise InvalidSpec(f"tag filter must be a tag or tags, got {tag!r}")
        host = check_pattern("host", host)
        names = {(h.hypervisor, h.id): h.name for h in self.inventory.hosts}
        out = self._filter_common(self.inventory.vms, name, kind, hypervisor)
        return [
            v
            for v in out
            if (states is None or v.power_state in states)
            and (tags is None or tags <= v.tags)
            and (host is None or pattern_match(host, v.host, names.get((v.hypervisor, v.host or ""))))
        ]

    def pools(
        self, *, name: str | None = None, kind: str | None = None, hypervisor: str | None = None
    ) -> list[StoragePool]:
        return self._filter_common(self.inventory.pools, name, kind, hypervisor)

    def networks(
        self, *, name: str | None = None, kind: str | None = None, hypervisor: str | None = None
    ) -> list[Network]:
        return self._filter_common(self.inventory.networks, name, kind, hypervisor)

    # -- capacity and health ----------------------------------------------------------------------
    def capacity(self, *, measured: bool = True) -> CapacityReport:
        """Per host and per pool capacity; ``measured`` reads host metrics where members offer them."""
        inv = self.inventory
        metrics = host_metrics(self._hvs, self._map, inv) if measured else None
        return capacity(inv.hosts, inv.vms, inv.pools, inv.kinds, metrics)

    def health(
        self,
        *,
        host_threshold: float = 0.85,
        pool_threshold: float = 0.9,
        snapshot_days: float | None = 7.0,
        stopped_days: float = 30.0,
    ) -> list[Finding]:
        """Health findings as data (see :func:`hvkit.fleet.health`); ``snapshot_days=None`` skips the
        snapshot check, which reads each VM's snapshots (one call per VM)."""
        check_ratio("host_threshold", host_threshold)
        check_ratio("pool_threshold", pool_threshold)
        for what, value in (("snapshot_days", snapshot_days), ("stopped_days", stopped_days)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
                raise InvalidSpec(f"{what} must be a number of days >= 0, got {value!r}")
        inv = self.inventory
        report = self.capacity()
        snaps = snapshots(self._hvs, self._map, inv) if snapshot_days is not None else None
        return health(
            report,
            inv.vms,
            inv.networks,
            inv.pools,
            inv.kinds,
            snapshots=snaps,
            failures=[(f.hypervisor, f"{f.error_type}: {f.error}") for f in inv.failures],
            host_threshold=host_threshold,
            pool_threshold=pool_threshold,
            snapshot_days=snapshot_days if snapshot_days is not None else 0.0,
            stopped_days=stopped_days,
        )

    # -- plans ------------------------------------------------------------------------------------
    def _rules(self, rules: Iterable[Rule] | None, use_tags: bool) -> list[Rule]:
        out = list(rules or [])
        if use_tags:
            out += rules_from_tags(self.inventory.vms)
        return out

    def _evacuate(self, evacuate: Iterable[str]) -> set[tuple[str, str]]:
        if isinstance(evacuate, str):
            evacuate = [evacuate]
        out = set()
        for ref in evacuate:
            found = [
                h
                for h in self.inventory.hosts
                if ref in (h.id, h.name, f"{h.hypervisor}:{h.id}", f"{h.hypervisor}:{h.name}")
            ]
            if not found:
                raise InvalidSpec(f"no host {ref!r} in the fleet to evacuate")
            if len({(h.hypervisor, h.id) for h in found}) > 1:
                raise InvalidSpec(f"host {ref!r} is ambiguous; write HYPERVISOR:HOST")
            out.add((str(found[0].hypervisor), found[0].id))
        return out

    def host_problem(
        self,
        rules: Iterable[Rule] | None = None,
        *,
        demand: str = "allocated",
        cpu_overcommit: float = 4.0,
        memory_overcommit: float = 1.0,
        evacuate: Iterable[str] = (),
        tag_rules: bool = True,
    ) -> Built:
        """The placement problem of the fleet's hosts (see :func:`hvkit.fleet.host_problem`)."""
        inv = self.inventory
        metrics = vm_metrics(self._hvs, self._map, inv) if demand == "measured" else None
        return host_problem(
            inv.hosts,
            [self._detail.get((str(v.hypervisor), v.id), v) for v in inv.vms] if self._detail else inv.vms,
            inv.pools,
            inv.capabilities,
            self._rules(rules, tag_rules),
            demand=demand,
            cpu_overcommit=cpu_overcommit,
            memory_overcommit=memory_overcommit,
            metrics=metrics,
            evacuate=self._evacuate(evacuate),
        )

    def balance(
        self,
        target: float = 0.8,
        rules: Iterable[Rule] | None = None,
        *,
        demand: str = "allocated",
        cpu_overcommit: float = 4.0,
        memory_overcommit: float = 1.0,
        evacuate: Iterable[str] = (),
        max_moves: int | None = None,
        tag_rules: bool = True,
    ) -> PlacementPlan:
        """Live migrations, within each hypervisor, that bring every host under ``target`` load and
        empty hosts in maintenance (or named in ``evacuate``), keeping the rules."""

        def make() -> PlacementPlan:
            built = self.host_problem(
                rules,
                demand=demand,
                cpu_overcommit=cpu_overcommit,
                memory_overcommit=memory_overcommit,
                evacuate=evacuate,
                tag_rules=tag_rules,
            )
            return built.dress(balance(built.problem, target, max_moves=max_moves))

        return self._with_reach(make)

    def _with_reach(self, make: Callable[[], PlacementPlan]) -> PlacementPlan:
        """Plan; where the inventory lists VMs without disks, read the ones the plan moves and plan again."""
        inv = self.inventory
        return plan_with_disks(make, inv.vms, partial_reach(inv.hosts, inv.pools), self._detail, self._read_vms)

    def _read_vms(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], VM]:
        return read_vms(self._hvs, self._map, keys)

    def balance_storage(
        self,
        target: float = 0.8,
        rules: Iterable[Rule] | None = None,
        *,
        max_moves: int | None = None,
        tag_rules: bool = True,
    ) -> PlacementPlan:
        """Storage migrations (a VM's disks to another pool its host reaches) that bring every pool
        under ``target`` fullness; rules with scope "pool" or "both" apply."""
        inv = self.inventory
        built = storage_problem(inv.hosts, inv.vms, inv.pools, inv.capabilities, self._rules(rules, tag_rules))
        return built.dress(attrs.evolve(balance(built.problem, target, max_moves=max_moves), kind="storage"))

    def consolidate(
        self,
        headroom: float = 0.8,
        rules: Iterable[Rule] | None = None,
        *,
        watts_per_host: float | None = None,
        demand: str = "allocated",
        cpu_overcommit: float = 4.0,
        memory_overcommit: float = 1.0,
        tag_rules: bool = True,
        solver: str = "auto",
        time_limit: float = 1.0,
        search_time: float = 0.5,
    ) -> PlacementPlan:
        """Live migrations that empty the most hosts while every host stays under ``headroom``
        (``solver``/``time_limit``/``search_time``: see :func:`hvkit.fleet.consolidate`)."""

        def make() -> PlacementPlan:
            built = self.host_problem(
                rules,
                demand=demand,
                cpu_overcommit=cpu_overcommit,
                memory_overcommit=memory_overcommit,
                tag_rules=tag_rules,
            )
            plan = consolidate(built.problem, headroom, watts_per_host=watts_per_host, solver=solver,
                               time_limit=time_limit, search_time=search_time)  # fmt: skip
            plan = built.dress(plan)
            return attrs.evolve(
                plan,
                freed=tuple(built.bins[k].name + f" ({built.bins[k].hypervisor})" for k in plan.freed),
                idle=tuple(built.bins[k].name + f" ({built.bins[k].hypervisor})" for k in plan.idle),
            )

        return self._with_reach(make)

    def execute(
        self, plan: PlacementPlan, *, progress: Callable[[Step], None] | None = None, timeout: float | None = None
    ) -> Outcome:
        """Run a plan's moves in order with ``hv.vms.migrate``; stop at the first failure.

        Before each move the VM is read again: if it is no longer where the plan expects, the plan is
        stale and execution stops there (InvalidState in the outcome). The inventory is read again
        afterwards.
        """
        check_plan(plan, self._hvs)
        try:
            return run_moves(self._hvs, plan, progress, timeout)
        finally:
            if plan.moves:
                self._inventory = None

    def recover(
        self,
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
        """Restart the VMs of ``host``, which is down (unreachable, or ``assume_down`` once it is fenced), on
        the surviving hosts the planner picks (storage reach, capacity, rules, ``restart-priority`` tags).

        VMs the vendor's own HA protects are reported with what it will do and left to it; VMs that cannot
        be restarted are reported with the reason (see :mod:`hvkit.fleet._recover`). ``dry_run``: plan only.
        """
        return recover(
            self,
            host,
            rules=rules,
            tag_rules=tag_rules,
            assume_down=assume_down,
            dry_run=dry_run,
            cpu_overcommit=cpu_overcommit,
            memory_overcommit=memory_overcommit,
            timeout=timeout,
            progress=progress,
        )
