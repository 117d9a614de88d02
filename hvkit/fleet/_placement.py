"""Balancing: the fewest, cheapest moves that bring every bin under a target load.

Pure: works on a :class:`~._plan.Problem` (hosts and running VMs, or pools and VM disks) and
returns a :class:`~._plan.PlacementPlan`. The order of work:

1. evacuate bins that accept nothing (hosts in maintenance, inactive pools);
2. reunite affinity groups that are split across bins, and separate anti-affinity partners that
   share one;
3. relieve every bin over the target, the most loaded first: when one unit alone covers the excess,
   move the one that copies the least data; otherwise move the unit that covers most of the excess.

Destinations are the least-loaded bins of the same domain that stay under the target with the unit
added and keep the rules (a lazily updated heap per domain). Every move is applied to the working
state as it is chosen, so the plan is feasible step by step, in order.
"""

from __future__ import annotations

import heapq

from ..errors import InvalidSpec
from ._plan import EPS, PlacementPlan, Problem, _State, check_ratio

__all__ = ["balance"]


class _LeastLoaded:
    """Per-domain heaps of (load ratio, version, bin); stale entries are skipped on pop."""

    def __init__(self, st: _State) -> None:
        self.st = st
        self.version = [0] * len(st.bkey)
        self.heaps: dict[str, list[tuple[float, int, int]]] = {}
        for b in range(len(st.bkey)):
            if st.accepts[b]:
                self.heaps.setdefault(st.bdomain[b], []).append((st.ratio_of(b), 0, b))
        for h in self.heaps.values():
            heapq.heapify(h)

    def touch(self, bins: set[int]) -> None:
        for b in bins:
            self.version[b] += 1
            if self.st.accepts[b]:
                heapq.heappush(self.heaps[self.st.bdomain[b]], (self.st.ratio_of(b), self.version[b], b))

    def find(self, u: int, exclude: set[int]) -> int | None:
        st = self.st
        heap = self.heaps.get(st.udomain[u])
        if not heap:
            return None
        popped = []
        found = None
        dem, dims, load, limit = st.udem[u], range(st.ndim), st.load, st.limit
        whole = st.unit_on(u) is not None  # a split unit adds less than its demand to a bin holding part of it
        while heap:
            entry = heapq.heappop(heap)
            if entry[1] != self.version[entry[2]]:
                continue
            popped.append(entry)
            b = entry[2]
            if whole and any(load[b][d] + dem[d] > limit[b][d] * (1 + 1e-9) + 1e-9 for d in dims):
                continue  # a quick test; can_place decides
            if b not in exclude and st.can_place(u, b):
                found = b
                break
        for entry in popped:
            heapq.heappush(heap, entry)
        return found

    def best_for(self, u: int, exclude: set[int]) -> int | None:
        """For a split unit: the cheapest bin among those already holding part of it, else the least loaded."""
        st = self.st
        own = [b for b in st.unit_bins(u) if b not in exclude and st.can_place(u, b)]
        if own:
            return min(own, key=lambda b: (st.move_cost(u, b), st.ratio_of(b)))
        return self.find(u, exclude)


def _name(st: _State, u: int) -> str:
    keys = [st.iname[m] for m in st.members[u]]
    return keys[0] if len(keys) == 1 else "{" + ", ".join(sorted(keys)) + "}"


def _size(st: _State, u: int) -> float:
    """A unit's size for ordering: its largest demand relative to the domain's typical bin."""
    return max(st.udem[u]) if st.udem[u] else 0.0


def relieve(st: _State, finder: _LeastLoaded, unresolved: list[str], max_moves: int | None = None) -> None:
    """Evacuate, repair rules, then bring every bin under its limit (see the module docstring)."""
    budget = [max_moves if max_moves is not None else -1]

    def go(u: int, b: int, reason: str) -> bool:
        if budget[0] == 0:
            return False
        before = len(st.moves)
        finder.touch(st.place(u, b, reason))
        if budget[0] > 0:
            budget[0] = max(0, budget[0] - (len(st.moves) - before))
        return True

    def out_of_moves() -> bool:
        if budget[0] == 0:
            unresolved.append(f"stopped at the limit of {max_moves} moves")
            return True
        return False

    nunits = len(st.members)
    # 1. evacuate bins that accept nothing
    leaving = [u for u in range(nunits) if any(not st.accepts[b] for b in st.unit_bins(u))]
    leaving.sort(key=lambda u: _size(st, u), reverse=True)
    for u in leaving:
        if out_of_moves():
            return
        src = ", ".join(sorted(st.bname[b] for b in st.unit_bins(u) if not st.accepts[b]))
        if not st.umovable[u]:
            unresolved.append(f"cannot evacuate {_name(st, u)} from {src}: it cannot be moved")
            continue
        dest = finder.best_for(u, set())
        if dest is None:
            unresolved.append(f"cannot evacuate {_name(st, u)} from {src}: no host has room within the rules")
            continue
        go(u, dest, "maintenance")
    # 2a. reunite split affinity groups
    for u in range(nunits):
        if len(st.members[u]) > 1 and st.unit_on(u) is None:
            if out_of_moves():
                return
            dest = finder.best_for(u, set()) if st.umovable[u] else None
            if dest is None:
                unresolved.append(f"affinity group {_name(st, u)} is split and cannot be reunited")
                continue
            go(u, dest, "affinity")
    # 2b. separate anti-affinity partners that share a bin
    for b in range(len(st.bkey)):
        for g, count in list(st.anti[b].items()):
            if count <= 1:
                continue
            partners = [st.unit[i] for i in sorted(st.on_bin[b]) if g in st.igroups[i]]
            # keep the one that is the dearest to move, move the others
            partners.sort(key=lambda u: (not st.umovable[u], st.move_cost(u, -1)), reverse=True)
            for u in partners[1:]:
                if out_of_moves():
                    return
                dest = finder.find(u, {b}) if st.umovable[u] else None
                if dest is None:
                    who = _name(st, u)
                    unresolved.append(f"anti-affinity: {who} shares {st.bname[b]} with a partner and cannot move")
                    continue
                go(u, dest, "anti-affinity")
    # 3. relieve overloaded bins, the worst first
    hot = sorted((b for b in range(len(st.bkey)) if st.accepts[b] and st.over(b)), key=st.ratio_of, reverse=True)
    largest: dict[str, list[float]] = {}  # per domain: the largest limit of an accepting bin, per dimension
    for x in range(len(st.bkey)):
        if st.accepts[x]:
            row = largest.setdefault(st.bdomain[x], [0.0] * st.ndim)
            for d in range(st.ndim):
                row[d] = max(row[d], st.limit[x][d])
    for b in hot:
        if _cannot_get_under(st, b, largest.get(st.bdomain[b], [0.0] * st.ndim)):
            ratio = st.ratio_of(b)
            unresolved.append(
                f"{st.bname[b]} stays over the target ({ratio:.0%} > {st.ratio:.0%}): what must stay on it "
                "(VMs that cannot move, or larger than the target on any host) is over the target already"
            )
            continue
        while st.over(b):
            if out_of_moves():
                return
            nd = st.ndim
            excess = [max(0.0, st.load[b][d] - st.limit[b][d]) for d in range(nd)]
            hot_dims = [d for d in range(nd) if excess[d] > 0]
            cands = [u for u in st.units_on(b) if st.umovable[u] and st.unit_on(u) == b]

            def covers(u: int) -> bool:
                return all(st.udem[u][d] >= excess[d] for d in hot_dims)  # noqa: B023

            def coverage(u: int) -> float:
                return sum(min(st.udem[u][d], excess[d]) / excess[d] for d in hot_dims)  # noqa: B023

            whole = sorted((u for u in cands if covers(u)), key=lambda u: (st.move_cost(u, -1), -coverage(u)))
            part = sorted((u for u in cands if not covers(u)), key=lambda u: (-coverage(u), st.move_cost(u, -1)))
            for u in whole + part:
                dest = finder.find(u, {b})
                if dest is not None:
                    go(u, dest, "load")
                    break
            else:
                if budget[0] < 0 and _make_room(st, finder, b, whole + part):
                    continue
                ratio = st.ratio_of(b)
                unresolved.append(
                    f"{st.bname[b]} stays over the target ({ratio:.0%} > {st.ratio:.0%}): no VM on it fits elsewhere"
                )
                break


ROOM_UNITS, ROOM_HOSTS = 3, 8  # make-room tries: units of the hot bin, least-loaded bins to clear


def _make_room(st: _State, finder: _LeastLoaded, b: int, cands: list[int]) -> bool:
    """No unit of hot bin ``b`` fits anywhere: clear room on one of the least-loaded bins by moving its
    smallest units elsewhere, then move a unit of ``b`` there. Taken back when it does not work out."""
    others = sorted(
        (x for x in range(len(st.bkey)) if x != b and st.accepts[x] and st.bdomain[x] == st.bdomain[b]),
        key=st.ratio_of,
    )[:ROOM_HOSTS]
    for u in cands[:ROOM_UNITS]:
        for c in others:
            allowed = st.uallowed[u]
            if allowed is not None and c not in allowed:
                continue
            if any(st.udem[u][d] > st.limit[c][d] for d in range(st.ndim)):
                continue
            mark = len(st.moves)
            for v in sorted(st.units_on(c), key=lambda v: max(st.udem[v], default=0.0)):
                if st.can_place(u, c):
                    break
                if not st.umovable[v] or st.unit_on(v) != c:
                    continue
                dest = finder.find(v, {b, c})
                if dest is not None:
                    finder.touch(st.place(v, dest, "load"))
            if st.can_place(u, c):
                finder.touch(st.place(u, c, "load"))
                return True
            finder.touch(st.undo_to(mark))
    return False


def _cannot_get_under(st: _State, b: int, largest: list[float]) -> bool:
    """Whether the units that can never leave ``b`` (unmovable, or over every bin's limit) keep it over."""
    stay = list(st.load[b])
    for u in st.units_on(b):
        pinned = not st.umovable[u] or st.unit_on(u) != b
        too_big = any(st.udem[u][d] > largest[d] + EPS * max(1.0, largest[d]) for d in range(st.ndim))
        if not (pinned or too_big):
            for d in range(st.ndim):
                stay[d] -= st.udem[u][d]
    return any(stay[d] > st.limit[b][d] + EPS * max(1.0, st.limit[b][d]) for d in range(st.ndim))


def balance(problem: Problem, target: float = 0.8, *, max_moves: int | None = None) -> PlacementPlan:
    """Plan the moves that bring every bin under ``target`` (a load ratio in (0, 1]) within the rules."""
    if not isinstance(problem, Problem):
        raise InvalidSpec(f"balance takes a Problem, got {type(problem).__name__}")
    ratio = check_ratio("target", target)
    if max_moves is not None and (isinstance(max_moves, bool) or not isinstance(max_moves, int) or max_moves < 0):
        raise InvalidSpec(f"max_moves must be a whole number >= 0, got {max_moves!r}")
    st = _State(problem, ratio)
    unresolved: list[str] = []
    relieve(st, _LeastLoaded(st), unresolved, max_moves)
    return st.plan("balance", unresolved)
