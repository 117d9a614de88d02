"""The pure placement model: bins (hosts or pools), items (VMs or their disks), rules, moves and plans.

Nothing here talks to a hypervisor. A :class:`Problem` is built from an inventory (or generated, in
tests and benchmarks); the planners in :mod:`._placement` and :mod:`._consolidation` turn it into a
:class:`PlacementPlan`, an ordered list of :class:`Move`. The engine (:class:`_State`) applies every move to
its own copy of the loads as soon as the move is chosen, so each move is checked against the exact
state it will meet when the plan runs in order: a plan that fits on paper fits step by step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from .._units import format_bytes
from ..errors import InvalidSpec

__all__ = ["Bin", "Item", "Move", "PlacementPlan", "Problem"]

EPS = 1e-9


def _vector(value: Iterable[float]) -> tuple[float, ...]:
    try:
        out = tuple(float(x) for x in value)
    except (TypeError, ValueError):
        raise InvalidSpec(f"expected a sequence of numbers, got {value!r}") from None
    if any(not math.isfinite(x) or x < 0 for x in out):
        raise InvalidSpec(f"sizes must be finite and >= 0, got {out}")
    return out


def _optional_vector(value: Iterable[float] | None) -> tuple[float, ...] | None:
    return None if value is None else _vector(value)


def _optional_keys(value: Iterable[str] | None) -> frozenset[str] | None:
    return None if value is None else frozenset(value)


def _bins(value: Iterable[Bin]) -> tuple[Bin, ...]:
    return tuple(value)


def _items(value: Iterable[Item]) -> tuple[Item, ...]:
    return tuple(value)


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _groups(value: Iterable[Iterable[str]]) -> tuple[frozenset[str], ...]:
    return tuple(frozenset(g) for g in value)


@attrs.frozen
class Bin:
    """Somewhere items live: a host (capacity = CPU, memory) or a pool (capacity = bytes).

    ``domain``: items move only between bins of one domain (one hypervisor). ``accepts=False``
    (a host in maintenance mode, an inactive pool) receives nothing and must be emptied. ``base`` is
    load that belongs to no item (other data in a pool, say).
    """

    key: str
    capacity: tuple[float, ...] = attrs.field(converter=_vector)
    domain: str = ""
    accepts: bool = True
    base: tuple[float, ...] | None = attrs.field(default=None, converter=_optional_vector)
    label: str = ""


@attrs.frozen
class Item:
    """Something placed in a bin: a running VM (demand = CPU, memory) or a VM's disks (bytes).

    ``cost`` is the bytes a move would copy; ``allowed`` (None: every bin of the domain) limits where
    the item may go, e.g. the pools its host can reach.
    """

    key: str
    bin: str
    demand: tuple[float, ...] = attrs.field(converter=_vector)
    cost: int = 0
    movable: bool = True
    allowed: frozenset[str] | None = attrs.field(default=None, converter=_optional_keys)
    label: str = ""


@attrs.frozen
class Problem:
    """Bins, items and rules. Validated when built: anything inconsistent raises InvalidSpec."""

    bins: tuple[Bin, ...] = attrs.field(converter=_bins)
    items: tuple[Item, ...] = attrs.field(converter=_items)
    affinity: tuple[frozenset[str], ...] = attrs.field(default=(), converter=_groups)
    anti_affinity: tuple[frozenset[str], ...] = attrs.field(default=(), converter=_groups)
    dims: tuple[str, ...] = attrs.field(default=("cpu", "memory"), converter=_names)

    def __attrs_post_init__(self) -> None:
        n = len(self.dims)
        if n == 0:
            raise InvalidSpec("a placement problem needs at least one dimension")
        bins: dict[str, Bin] = {}
        for b in self.bins:
            if not isinstance(b, Bin):
                raise InvalidSpec(f"bins must be Bin values, got {type(b).__name__}")
            if b.key in bins:
                raise InvalidSpec(f"duplicate bin {b.key!r}")
            if len(b.capacity) != n or (b.base is not None and len(b.base) != n):
                raise InvalidSpec(f"bin {b.key!r} has sizes for {len(b.capacity)} dimensions; the problem has {n}")
            bins[b.key] = b
        items: dict[str, Item] = {}
        for it in self.items:
            if not isinstance(it, Item):
                raise InvalidSpec(f"items must be Item values, got {type(it).__name__}")
            if it.key in items:
                raise InvalidSpec(f"duplicate item {it.key!r}")
            if it.bin not in bins:
                raise InvalidSpec(f"item {it.key!r} is in unknown bin {it.bin!r}")
            if len(it.demand) != n:
                raise InvalidSpec(f"item {it.key!r} has sizes for {len(it.demand)} dimensions; the problem has {n}")
            if it.cost < 0:
                raise InvalidSpec(f"item {it.key!r} has a negative cost")
            if it.allowed is not None and not it.allowed <= bins.keys():
                raise InvalidSpec(f"item {it.key!r} is allowed in unknown bins {sorted(it.allowed - bins.keys())}")
            items[it.key] = it
        for kind, groups in (("affinity", self.affinity), ("anti-affinity", self.anti_affinity)):
            for g in groups:
                if len(g) < 2:
                    raise InvalidSpec(f"an {kind} rule needs at least two VMs, got {sorted(g)}")
                unknown = g - items.keys()
                if unknown:
                    raise InvalidSpec(f"{kind} rule names unknown items {sorted(unknown)}")
        for g in self.affinity:
            domains = {bins[items[k].bin].domain for k in g}
            if len(domains) > 1:
                raise InvalidSpec(f"affinity rule {sorted(g)} spans {sorted(domains)}: they can never share a host")
        # contradictions: two VMs that must be together and apart
        units = _union(self.affinity)
        for g in self.anti_affinity:
            roots: dict[str, str] = {}
            for k in g:
                r = units.get(k, k)
                if r in roots:
                    raise InvalidSpec(f"VMs {roots[r]!r} and {k!r} must be together (affinity) and apart (anti)")
                roots[r] = k


def _union(groups: Iterable[frozenset[str]]) -> dict[str, str]:
    """Union-find over affinity groups: item -> representative."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for g in groups:
        first = None
        for k in sorted(g):
            if first is None:
                first = find(k)
            else:
                parent[find(k)] = first
    return {k: find(k) for k in parent}


@attrs.frozen
class Move:
    """Move one item from ``source`` to ``target``. Fleet plans fill in the VM and hypervisor."""

    item: str
    source: str
    target: str
    data_bytes: int = 0
    reason: str = ""
    kind: str = "host"  # "host": live migration; "pool": storage migration
    hypervisor: str | None = None
    vm: str | None = None  # VM id
    vm_name: str | None = None
    source_name: str | None = None
    target_name: str | None = None

    def describe(self) -> str:
        what = self.vm_name or self.item
        src = self.source_name or self.source
        dst = self.target_name or self.target
        where = f" on {self.hypervisor}" if self.hypervisor else ""
        verb = {"pool": "move disks of"}.get(self.kind, "migrate")
        return f"{verb} {what}{where}: {src} -> {dst} ({format_bytes(self.data_bytes)}, {self.reason})"

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class PlacementPlan:
    """An ordered list of moves and the state it predicts (load ratios per dimension, per bin)."""

    kind: str  # balance | storage | consolidate
    target: float  # the load ratio every bin must end under
    dims: tuple[str, ...]
    moves: tuple[Move, ...]
    before: Mapping[str, tuple[float, ...]]
    after: Mapping[str, tuple[float, ...]]
    placement: Mapping[str, str]  # item -> bin, after the plan
    unresolved: tuple[str, ...] = ()  # what the plan could not do, in words
    freed: tuple[str, ...] = ()  # bins the plan empties (consolidation)
    idle: tuple[str, ...] = ()  # bins empty before the plan
    power_saved_watts: float | None = None
    lower_bound: int | None = None  # consolidation: no plan can use fewer bins
    bins_used: int | None = None  # consolidation: bins still holding items after the plan
    planner: str | None = None  # consolidation: what made the plan (greedy, refill, highs, search)

    @property
    def data_bytes(self) -> int:
        return sum(m.data_bytes for m in self.moves)

    @property
    def complete(self) -> bool:
        """True when the plan reaches its goal (nothing unresolved)."""
        return not self.unresolved

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "dims": list(self.dims),
            "moves": [m.to_dict() for m in self.moves],
            "data_bytes": self.data_bytes,
            "before": {k: list(v) for k, v in self.before.items()},
            "after": {k: list(v) for k, v in self.after.items()},
            "unresolved": list(self.unresolved),
            "freed": list(self.freed),
            "idle": list(self.idle),
            "power_saved_watts": self.power_saved_watts,
            "lower_bound": self.lower_bound,
            "bins_used": self.bins_used,
            "planner": self.planner,
        }


def check_ratio(what: str, value: object, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
        raise InvalidSpec(f"{what} must be a number in (0, {high:g}], got {value!r}")
    return float(value)


class _State:
    """Mutable working copy of a Problem: loads, where each item is, rule counters, moves so far.

    Items joined by affinity rules form a *unit* that moves as one. Indices, not keys, for speed.
    """

    def __init__(self, problem: Problem, ratio: float) -> None:
        self.problem = problem
        self.ratio = ratio
        self.ndim = nd = len(problem.dims)
        bins = problem.bins
        self.bkey = [b.key for b in bins]
        self.bname = [b.label or b.key for b in bins]  # for messages
        self.bidx = {b.key: i for i, b in enumerate(bins)}
        self.cap = [list(b.capacity) for b in bins]
        self.limit = [[c * ratio for c in b.capacity] for b in bins]
        self.load = [list(b.base) if b.base is not None else [0.0] * nd for b in bins]
        self.accepts = [b.accepts for b in bins]
        self.bdomain = [b.domain for b in bins]
        items = problem.items
        self.ikey = [it.key for it in items]
        self.iname = [it.label or it.key for it in items]
        self.iidx = iidx = {it.key: i for i, it in enumerate(items)}
        self.where = [self.bidx[it.bin] for it in items]
        self.dem = [it.demand for it in items]
        self.cost = [it.cost for it in items]
        self.nitems = [0] * len(bins)
        self.on_bin: list[set[int]] = [set() for _ in bins]
        for i, it in enumerate(items):
            self.on_bin[self.where[i]].add(i)
            row = self.load[self.where[i]]
            for d in range(nd):
                row[d] += it.demand[d]
            self.nitems[self.where[i]] += 1
        # units
        rep = _union(problem.affinity)
        groups: dict[str, list[int]] = {}
        for i, it in enumerate(items):
            groups.setdefault(rep.get(it.key, it.key), []).append(i)
        self.members: list[list[int]] = list(groups.values())
        self.unit = [0] * len(items)
        for u, ms in enumerate(self.members):
            for m in ms:
                self.unit[m] = u
        self.udem: list[tuple[float, ...]] = []
        self.umovable: list[bool] = []
        self.uallowed: list[set[int] | None] = []
        self.udomain: list[str] = []
        for ms in self.members:
            self.udem.append(tuple(sum(self.dem[m][d] for m in ms) for d in range(nd)))
            self.umovable.append(all(items[m].movable for m in ms))
            allowed: set[int] | None = None
            for m in ms:
                keys = items[m].allowed
                if keys is not None:
                    mine = {self.bidx[k] for k in keys}
                    allowed = mine if allowed is None else allowed & mine
            self.uallowed.append(allowed)
            self.udomain.append(self.bdomain[self.where[ms[0]]])
        # anti-affinity: group id -> member item; per unit: {group: its member}; per bin: {group: count}
        self.ugroups: list[dict[int, int]] = [{} for _ in self.members]
        self.anti: list[dict[int, int]] = [{} for _ in bins]
        self.igroups: list[list[int]] = [[] for _ in items]
        for g, keys in enumerate(problem.anti_affinity):
            for k in keys:
                i = iidx[k]
                self.ugroups[self.unit[i]][g] = i
                self.igroups[i].append(g)
                counts = self.anti[self.where[i]]
                counts[g] = counts.get(g, 0) + 1
        self.moves: list[Move] = []
        self.before = self.ratios()

    # -- reading ---------------------------------------------------------------------------------
    def ratio_of(self, b: int) -> float:
        worst = 0.0
        for d in range(self.ndim):
            c = self.cap[b][d]
            r = self.load[b][d] / c if c > 0 else (math.inf if self.load[b][d] > EPS else 0.0)
            worst = max(worst, r)
        return worst

    def ratios(self) -> dict[str, tuple[float, ...]]:
        out = {}
        for b, key in enumerate(self.bkey):
            out[key] = tuple(
                (self.load[b][d] / c if (c := self.cap[b][d]) > 0 else (math.inf if self.load[b][d] > EPS else 0.0))
                for d in range(self.ndim)
            )
        return out

    def over(self, b: int) -> bool:
        lim, row = self.limit[b], self.load[b]
        return any(row[d] > lim[d] + EPS * max(1.0, lim[d]) for d in range(self.ndim))

    def unit_bins(self, u: int) -> set[int]:
        return {self.where[m] for m in self.members[u]}

    def unit_on(self, u: int) -> int | None:
        """The bin holding the whole unit, or None when its members are split."""
        ms = self.members[u]
        b = self.where[ms[0]]
        return b if all(self.where[m] == b for m in ms) else None

    def units_on(self, b: int) -> list[int]:
        seen: set[int] = set()
        out = []
        for i in sorted(self.on_bin[b]):
            if self.unit[i] not in seen:
                seen.add(self.unit[i])
                out.append(self.unit[i])
        return out

    def move_cost(self, u: int, b: int) -> int:
        return sum(self.cost[m] for m in self.members[u] if self.where[m] != b)

    def can_place(self, u: int, b: int) -> bool:
        """Would moving unit ``u`` (its members not on ``b``) onto ``b`` keep ``b`` under its limit and the rules?"""
        if not self.accepts[b] or self.bdomain[b] != self.udomain[u]:
            return False
        allowed = self.uallowed[u]
        if allowed is not None and b not in allowed:
            return False
        add = [0.0] * self.ndim
        moving = False
        for m in self.members[u]:
            if self.where[m] != b:
                moving = True
                dm = self.dem[m]
                for d in range(self.ndim):
                    add[d] += dm[d]
        if not moving:
            return False
        row, lim = self.load[b], self.limit[b]
        for d in range(self.ndim):
            if row[d] + add[d] > lim[d] + EPS * max(1.0, lim[d]):
                return False
        counts = self.anti[b]
        if counts:
            for g, m in self.ugroups[u].items():
                if counts.get(g, 0) - (1 if self.where[m] == b else 0) > 0:
                    return False
        return True

    # -- changing --------------------------------------------------------------------------------
    def _shift(self, i: int, src: int, dst: int) -> None:
        dm = self.dem[i]
        a, z = self.load[src], self.load[dst]
        for d in range(self.ndim):
            a[d] -= dm[d]
            z[d] += dm[d]
        self.nitems[src] -= 1
        self.nitems[dst] += 1
        self.on_bin[src].discard(i)
        self.on_bin[dst].add(i)
        for g in self.igroups[i]:
            self.anti[src][g] -= 1
            self.anti[dst][g] = self.anti[dst].get(g, 0) + 1
        self.where[i] = dst

    def place(self, u: int, b: int, reason: str) -> set[int]:
        """Move every member of ``u`` not on ``b`` to ``b``; return the bins touched."""
        touched = {b}
        for m in self.members[u]:
            src = self.where[m]
            if src == b:
                continue
            self._shift(m, src, b)
            touched.add(src)
            self.moves.append(Move(self.ikey[m], self.bkey[src], self.bkey[b], self.cost[m], reason))
        return touched

    def undo_to(self, mark: int) -> set[int]:
        """Take back the moves after ``mark``, newest first; return the bins touched."""
        touched: set[int] = set()
        while len(self.moves) > mark:
            mv = self.moves.pop()
            i = self.iidx[mv.item]
            src, dst = self.bidx[mv.source], self.bidx[mv.target]
            self._shift(i, dst, src)
            touched |= {src, dst}
        return touched

    def plan(self, kind: str, unresolved: Sequence[str], **extra: Any) -> PlacementPlan:
        return PlacementPlan(
            kind=kind,
            target=self.ratio,
            dims=self.problem.dims,
            moves=tuple(self.moves),
            before=self.before,
            after=self.ratios(),
            placement={k: self.bkey[self.where[i]] for i, k in enumerate(self.ikey)},
            unresolved=tuple(unresolved),
            **extra,
        )


def apply(problem: Problem, moves: Iterable[Move]) -> dict[str, str]:
    """Replay moves on a problem's placement (item -> bin); InvalidSpec if a move does not match it."""
    where = {it.key: it.bin for it in problem.items}
    for mv in moves:
        if where.get(mv.item) != mv.source:
            raise InvalidSpec(f"move of {mv.item!r} expects it on {mv.source!r}; it is on {where.get(mv.item)!r}")
        where[mv.item] = mv.target
    return where
