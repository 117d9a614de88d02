"""Packing helpers for consolidation: a virtual refill of chosen hosts, and turning it into moves.

:class:`Refill` packs every movable unit of a domain afresh into a chosen set of hosts, one host at a
time, the largest units first; when a host's room in the scarce dimension falls under twice the
largest unit that still fits, it looks for the single unit or the pair of units that fills the room
best (a minimum-slack step, which is what closes the gap on instances whose items come in threes that
fill a host exactly). :func:`sequence` then replays such an assignment on the working state, in an
order where every step fits, parking a unit on a host being emptied when a swap would otherwise block.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from ._plan import EPS, _State

__all__ = ["Refill", "relabel", "replay", "sequence"]

PAIR_WINDOW = 120  # units looked at when searching for the pair that fills a host best
SCAN = 200  # units looked at when searching for the largest one that fits


class Refill:
    """A virtual copy of some hosts' loads with only the fixed units on them; units are placed on it."""

    def __init__(
        self,
        st: _State,
        hosts: Sequence[int],
        movable: Sequence[int],
        dim: int,
        keep: float = 0.0,
    ) -> None:
        self.st = st
        self.dim = dim
        self.hosts = list(hosts)
        moving = set(movable)
        self.load = {b: list(st.load[b]) for b in hosts}
        self.anti: dict[int, dict[int, int]] = {b: dict(st.anti[b]) for b in hosts}
        for u in moving:
            b = st.unit_on(u)
            if b is None or b not in self.load:
                continue
            row = self.load[b]
            for d in range(st.ndim):
                row[d] -= st.udem[u][d]
            for g in st.ugroups[u]:
                self.anti[b][g] -= 1
        # keep: each host first takes back its own units, largest first, up to that share of its limit
        self.kept: dict[int, int] = {}
        if keep > 0:
            for u in sorted(moving, key=lambda u: (-st.udem[u][dim], u)):
                b = st.unit_on(u)
                if b is not None and b in self.load and self.fits(u, b, keep):
                    self._put(u, b)
                    self.kept[u] = b
        self.movable = sorted(moving - self.kept.keys(), key=lambda u: (-st.udem[u][dim], u))

    def fits(self, u: int, b: int, share: float = 1.0) -> bool:
        st = self.st
        allowed = st.uallowed[u]
        if allowed is not None and b not in allowed:
            return False
        row, lim, dem = self.load[b], st.limit[b], st.udem[u]
        for d in range(st.ndim):
            if row[d] + dem[d] > lim[d] * share + EPS * max(1.0, lim[d]):
                return False
        counts = self.anti[b]
        return not any(counts.get(g, 0) > 0 for g in st.ugroups[u])

    def _put(self, u: int, b: int) -> None:
        row = self.load[b]
        for d in range(self.st.ndim):
            row[d] += self.st.udem[u][d]
        for g in self.st.ugroups[u]:
            self.anti[b][g] = self.anti[b].get(g, 0) + 1

    def _pair_fits(self, a: int, c: int, b: int) -> bool:
        st = self.st
        if st.ugroups[a].keys() & st.ugroups[c].keys():
            return False
        row, lim, da, dc = self.load[b], st.limit[b], st.udem[a], st.udem[c]
        return all(row[d] + da[d] + dc[d] <= lim[d] + EPS * max(1.0, lim[d]) for d in range(st.ndim))

    def run(self) -> dict[int, int] | None:
        """Place every movable unit; unit -> host, or None when they do not all fit."""
        st, dim = self.st, self.dim
        rest = list(self.movable)  # largest first in `dim`
        keys = [-st.udem[u][dim] for u in rest]
        out: dict[int, int] = dict(self.kept)
        order = sorted(self.hosts, key=lambda b: (-st.limit[b][dim], b))
        for b in order:
            while rest:
                room = st.limit[b][dim] - self.load[b][dim]
                start = bisect.bisect_left(keys, -room - EPS * max(1.0, room))
                first = next((i for i in range(start, min(len(rest), start + SCAN)) if self.fits(rest[i], b)), None)
                if first is None:
                    break
                pick = [first]
                size = st.udem[rest[first]][dim]
                if size < room * 0.999 and room < 2 * size:
                    pick = self._best_pair(rest, b, start, room, size) or pick
                for i in sorted(pick, reverse=True):
                    u = rest.pop(i)
                    keys.pop(i)
                    self._put(u, b)
                    out[u] = b
        return None if rest else out

    def _best_pair(self, rest: list[int], b: int, start: int, room: float, single: float) -> list[int] | None:
        """The two units that fill ``room`` best in the scarce dimension, if better than one alone."""
        st, dim = self.st, self.dim
        cands = list(range(start, min(len(rest), start + PAIR_WINDOW)))
        if len(cands) < 2:
            return None
        ok: dict[int, bool] = {}

        def fit(i: int) -> bool:
            if i not in ok:
                ok[i] = self.fits(rest[i], b)
            return ok[i]

        slack = EPS * max(1.0, room)
        best = single
        found = None
        lo, hi = 0, len(cands) - 1  # cands are largest first: lo walks down in size, hi walks up
        while lo < hi and best < room - slack:
            a, c = cands[lo], cands[hi]
            total = st.udem[rest[a]][dim] + st.udem[rest[c]][dim]
            if total > room + slack:
                lo += 1
                continue
            if total > best + slack and fit(a) and fit(c) and self._pair_fits(rest[a], rest[c], b):
                best, found = total, [a, c]
            hi -= 1
        return found


def sequence(st: _State, target: dict[int, int], parking: Sequence[int]) -> bool:
    """Move every unit to ``target`` on ``st``, each step within limits; park a unit on one of ``parking``
    (hosts being emptied) when nothing else can go. False (state partly changed) when it gets stuck."""
    pending = [u for u, b in target.items() if st.unit_on(u) != b]
    kept = set(target.values())
    rounds = 0
    while pending:
        rounds += 1
        if rounds > 4 * len(target) + 10:
            return False
        progress = False
        waiting = []
        for u in pending:
            if st.can_place(u, target[u]):
                st.place(u, target[u], "consolidate")
                progress = True
            else:
                waiting.append(u)
        pending = waiting
        if progress or not pending:
            continue
        parked = False
        for u in pending:
            here = st.unit_on(u)
            if here is None or here not in kept:
                continue
            spot = next((p for p in parking if p != here and st.can_place(u, p)), None)
            if spot is not None:
                st.place(u, spot, "consolidate")
                parked = True
                break
        if not parked:
            return False
    return True


def replay(st: _State, target: dict[int, int], parking: Sequence[int], mark: int) -> bool:
    """Replace the moves after ``mark`` by moves to ``target`` (see :func:`sequence`); when those get
    stuck, put the earlier moves back and return False."""
    saved = st.moves[mark:]
    st.undo_to(mark)
    if sequence(st, target, parking):
        return True
    st.undo_to(mark)
    for mv in saved:
        st._shift(st.iidx[mv.item], st.bidx[mv.source], st.bidx[mv.target])
        st.moves.append(mv)
    return False


def relabel(
    st: _State, target: dict[int, int], hosts: Sequence[int], pinned: set[int], watts: Sequence[float]
) -> dict[int, int]:
    """The same packing with its host loads handed to the hosts that already hold most of their units.

    A packed host's set of units may go to any other host of the same capacity and power draw (the
    packing only saw those), when no unit is pinned there and every unit is allowed there. Hosts are
    matched greedily by the number of units that would stay.
    """
    groups: dict[int, list[int]] = {}
    for u, b in target.items():
        groups.setdefault(b, []).append(u)
    if any(b in pinned for b in groups):
        return target

    def cls(b: int) -> tuple[float, ...]:
        return (*st.limit[b], watts[b])

    candidates: dict[tuple[float, ...], list[int]] = {}
    for b in hosts:
        if st.accepts[b] and b not in pinned:
            candidates.setdefault(cls(b), []).append(b)
    weights: list[tuple[int, int, int]] = []
    for g, units in groups.items():
        here: dict[int, int] = {}
        for u in units:
            at = st.unit_on(u)
            if at is not None and cls(at) == cls(g):
                here[at] = here.get(at, 0) + 1
        weights += [(n, g, at) for at, n in here.items()]
    weights.sort(key=lambda w: (-w[0], w[1], w[2]))
    chosen: dict[int, int] = {}
    taken: set[int] = set()

    def allowed(g: int, b: int) -> bool:
        return all(st.uallowed[u] is None or b in st.uallowed[u] for u in groups[g])  # type: ignore[operator]

    for _, g, b in weights:
        if g not in chosen and b not in taken and allowed(g, b):
            chosen[g] = b
            taken.add(b)
    for g in groups:  # the rest: their own host if free, else any free host of their class
        if g in chosen:
            continue
        pool = [g] + [b for b in candidates.get(cls(g), []) if b != g]
        pick = next((b for b in pool if b not in taken and allowed(g, b)), None)
        if pick is None:
            return target
        chosen[g] = pick
        taken.add(pick)
    return {u: chosen[b] for u, b in target.items()}
