"""Bin completion for small domains: a depth-first search that fills the chosen hosts one at a time.

Each host takes one unit and a *completion*: a set of other units that leaves it with no more slack
than the search can still afford (the kept hosts' room beyond the demand, spent as hosts are
filled). The unit is the one with the fewest completions (fail first; none left means backtrack)
when the hosts are alike, else the largest. Completions are enumerated largest units first; once
no two more units fit, the last one is found by bisection among the units of the right size, so a
completion of a few large units costs about n log n. Completions are tried in order of their
slack, up to a few per host, as Gupta and Ho's minimum bin slack does for one bin; the search stops
at a deadline. On small instances with a tight packing (Falkenauer triplets: every host exactly
full) it finds what a local search circles around. Every dimension, allowed hosts and anti-affinity
are checked for every unit placed.
"""

from __future__ import annotations

import bisect
import random
import time
from collections.abc import Sequence

from ._plan import EPS, _State

__all__ = ["complete", "repack"]

MAX_UNITS = 400  # domains with more movable units are left to the local search
FAIL_FIRST = 400  # units left from which on the unit to place is the one with the fewest completions
BRANCHES = 8  # completions tried per host
FF_MAX = 40  # distinct unit sizes (the largest) whose completions are counted for the fail-first choice
RESTART_GROWTH = 1.3  # each restart may visit this many times more hosts than the last


class _Out(Exception):
    """The deadline passed."""


class _Restart(Exception):
    """This run visited its share of hosts: start again in another order."""


class _Completion:
    def __init__(
        self,
        st: _State,
        free: dict[int, list[float]],
        anti: dict[int, dict[int, int]],
        movable: Sequence[int],
        dim: int,
        deadline: float,
    ) -> None:
        self.st, self.dim, self.deadline, self.nd = st, dim, deadline, st.ndim
        self.free, self.anti = free, anti
        hosts = list(free)
        self.order = sorted(hosts, key=lambda b: (-self.free[b][dim], b))
        self.units = sorted(movable, key=lambda u: (-st.udem[u][dim], u))
        self.waste = sum(self.free[b][dim] for b in hosts) - sum(st.udem[u][dim] for u in movable)
        rows = {tuple(round(v, 6) for v in self.free[b]) for b in hosts}
        self.alike = (
            len(rows) == 1
            and all(st.uallowed[u] is None for u in movable)
            and not any(any(n > 0 for n in self.anti[b].values()) for b in hosts)
        )
        self.plain = {u for u in movable if st.uallowed[u] is None and not st.ugroups[u]}  # no rules to check
        self.all_plain = len(self.plain) == len(movable)
        self.out: dict[int, int] = {}
        self.steps = 0
        self.nodes = 0
        self.node_limit = 0
        self.rng = random.Random(0)

    def fits(self, u: int, b: int, room: Sequence[float], taken: Sequence[int]) -> bool:
        st = self.st
        if u in self.plain:
            dem = st.udem[u]
            return all(dem[d] <= room[d] for d in range(self.nd))
        allowed = st.uallowed[u]
        if allowed is not None and b not in allowed:
            return False
        dem = st.udem[u]
        if any(dem[d] > room[d] for d in range(self.nd)):
            return False
        groups = st.ugroups[u]
        if groups:
            if any(self.anti[b].get(g, 0) > 0 for g in groups):
                return False
            if any(groups.keys() & st.ugroups[v].keys() for v in taken):
                return False
        return True

    def completions(
        self, b: int, first: int, rest: list[int], budget: float, limit: int, neg: list[float] | None = None
    ) -> list[tuple[float, list[int]]]:
        """Up to ``limit`` sets of units of ``rest`` (largest first) that fill ``b`` after ``first``
        to within ``budget`` of slack in the scarce dimension; the least slack first."""
        st, dim, nd = self.st, self.dim, self.nd
        udem = st.udem
        if neg is None:
            neg = [-udem[u][dim] for u in rest]  # ascending
        smallest = -neg[-1] if neg else 0.0
        found: list[tuple[float, list[int]]] = []
        seen: set[tuple[tuple[float, ...], ...]] = set()
        chosen = [first]

        def record(room: Sequence[float]) -> None:
            sig = tuple(sorted(udem[v] for v in chosen))
            if sig not in seen:
                seen.add(sig)
                found.append((room[dim], list(chosen)))

        def walk(i: int, room: list[float]) -> None:
            self.steps += 1
            if self.steps % 256 == 0 and time.perf_counter() > self.deadline:
                raise _Out
            if room[dim] <= budget + EPS:
                record(room)
                if len(found) >= limit:
                    return
            start = max(i, bisect.bisect_left(neg, -room[dim] - EPS))
            if room[dim] < 2 * smallest:  # one more unit at most: only the sizes that close the gap
                stop = bisect.bisect_right(neg, -(room[dim] - budget) + EPS)
                last = None
                for j in range(start, stop):
                    v = rest[j]
                    if v == first or udem[v] == last or not self.fits(v, b, room, chosen):
                        continue
                    last = udem[v]
                    chosen.append(v)
                    record([room[d] - udem[v][d] for d in range(nd)])
                    chosen.pop()
                    if len(found) >= limit:
                        return
                return
            more = int(room[dim] / smallest) if smallest > 0 else len(rest)  # units that may still fit
            last = None
            for j in range(start, len(rest)):
                v = rest[j]
                if -neg[j] * more < room[dim] - budget - EPS:
                    break  # even `more` units this size cannot fill the host enough
                if v == first or udem[v] == last or not self.fits(v, b, room, chosen):
                    continue
                last = udem[v]
                chosen.append(v)
                walk(j + 1, [room[d] - udem[v][d] for d in range(nd)])
                chosen.pop()
                if len(found) >= limit:
                    return

        room = [self.free[b][d] - udem[first][d] for d in range(nd)]
        if self.all_plain and room[dim] < 3 * smallest:
            return self._at_most_two(first, rest, neg, room, budget, limit)
        walk(0, room)
        found.sort(key=lambda f: (f[0], -len(f[1])))
        return found

    def _at_most_two(
        self, first: int, rest: list[int], neg: list[float], room: list[float], budget: float, limit: int
    ) -> list[tuple[float, list[int]]]:
        """:meth:`completions` when no three more units fit and no unit has rules: one unit, or two
        found by bisection (n log n)."""
        dim, nd, udem = self.dim, self.nd, self.st.udem
        found: list[tuple[float, list[int]]] = []
        seen: set[tuple[tuple[float, ...], ...]] = set()
        top = room[dim]
        if top <= budget + EPS:
            found.append((top, [first]))

        lo, hi = bisect.bisect_left(neg, -top - EPS), bisect.bisect_right(neg, -(top - budget) + EPS)
        for j in range(lo, hi):
            v = rest[j]
            if v != first and all(udem[v][d] <= room[d] for d in range(nd)):
                sig = (udem[v],)
                if sig not in seen:
                    seen.add(sig)
                    found.append((top - udem[v][dim], [first, v]))
        for i in range(lo, len(rest)):
            size = -neg[i]
            if 2 * size < top - budget - EPS or len(found) >= limit:
                break
            v = rest[i]
            if v == first:
                continue
            left = top - size  # the second unit: of size in [left - budget, left], after the first
            a = bisect.bisect_left(neg, -left - EPS, i + 1)
            z = bisect.bisect_right(neg, -(left - budget) + EPS, a)
            for j in range(a, z):
                w = rest[j]
                if w == first or any(udem[v][d] + udem[w][d] > room[d] for d in range(nd)):
                    continue
                pair = (udem[v], udem[w])
                if pair not in seen:
                    seen.add(pair)
                    found.append((left - udem[w][dim], [first, v, w]))
                    if len(found) >= limit:
                        break
        found.sort(key=lambda f: (f[0], -len(f[1])))
        return found[:limit] if limit else found

    def search(self, k: int, rest: list[int], budget: float) -> bool:
        if not rest:
            return True
        self.nodes += 1
        if self.nodes > self.node_limit:
            raise _Restart
        if k == len(self.order) or time.perf_counter() > self.deadline:
            return False
        b = self.order[k]
        room = self.free[b]
        if self.alike and len(rest) <= FAIL_FIRST:  # fail first: the unit with the fewest completions
            options: list[tuple[float, list[int]]] | None = None
            tried: set[tuple[float, ...]] = set()
            neg = [-self.st.udem[u][self.dim] for u in rest]
            for u in rest:
                if self.st.udem[u] in tried or not self.fits(u, b, room, []):
                    continue
                tried.add(self.st.udem[u])
                if len(tried) > FF_MAX:
                    break
                mine = self.completions(b, u, rest, budget, BRANCHES if options is None else len(options), neg)
                if options is None or len(mine) < len(options):
                    options = mine
                if not options:
                    return False  # a unit that fits in no host: backtrack
        else:
            first = next((u for u in rest if self.fits(u, b, room, [])), None)
            if first is None:
                return self.search(k + 1, rest, budget - room[self.dim]) if room[self.dim] <= budget + EPS else False
            options = self.completions(b, first, rest, budget, 4 * BRANCHES)
        options = options or []
        self.rng.shuffle(options)  # ties in slack in a random order: each run tries others
        options.sort(key=lambda f: round(f[0], 9))
        for slack, group in options[:BRANCHES]:
            for u in group:
                self.out[u] = b
            taken = set(group)
            if self.search(k + 1, [u for u in rest if u not in taken], budget - max(0.0, slack)):
                return True
            for u in group:
                del self.out[u]
        return False


def complete(
    st: _State, hosts: Sequence[int], movable: Sequence[int], dim: int, deadline: float
) -> dict[int, int] | None:
    """Units -> hosts, every movable unit on one of ``hosts`` within its limits and the rules, or
    None when no such packing was found before the deadline (or the domain is too large)."""
    if not movable or len(movable) > MAX_UNITS or not hosts:
        return None
    nd = st.ndim
    free = {b: [st.limit[b][d] + EPS * max(1.0, st.limit[b][d]) - st.load[b][d] for d in range(nd)] for b in hosts}
    anti = {b: dict(st.anti[b]) for b in hosts}
    for u in movable:  # the hosts as they are without the units that may move
        b = st.unit_on(u)
        if b in free:
            for d in range(nd):
                free[b][d] += st.udem[u][d]
            for g in st.ugroups[u]:
                anti[b][g] -= 1
    return repack(st, free, anti, movable, dim, deadline)


def repack(
    st: _State,
    free: dict[int, list[float]],
    anti: dict[int, dict[int, int]],
    units: Sequence[int],
    dim: int,
    deadline: float,
    seed: int = 0,
) -> dict[int, int] | None:
    """Units -> hosts of ``free`` (the room each host has for them, per dimension; ``anti``: the
    anti-affinity counts of what stays there), or None when not found before the deadline."""
    c = _Completion(st, free, anti, units, dim, deadline)
    if c.waste < -EPS:
        return None
    c.rng.seed(seed)
    c.node_limit = 2 * len(free)
    while True:  # restarts, each with a larger share of nodes, until the deadline
        c.nodes = 0
        c.out.clear()
        try:
            return dict(c.out) if c.search(0, c.units, c.waste) else None
        except _Out:
            return None
        except _Restart:
            c.node_limit = int(c.node_limit * RESTART_GROWTH) + 1
