"""Greedy building blocks for consolidation: a best-fit index and the host-by-host emptying fallback."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from ._plan import _State

__all__ = ["BestFit", "empty_one_by_one", "scarce_dim"]


class BestFit:
    """Open bins of one domain sorted by their free room in their fullest dimension, each dimension
    measured against the largest capacity of the domain in it: a bin whose key is under a unit's
    largest need (measured the same way) cannot take it, so the search starts past those, at the
    tightest bin that may fit."""

    def __init__(self, st: _State, bins: Sequence[int], dim: int) -> None:
        self.st = st
        self.dim = dim  # kept for callers; the order uses every dimension
        self.keys: dict[int, tuple[float, int]] = {}
        self.sorted: list[tuple[float, int]] = []
        self.maxcap = [max((st.cap[b][d] for b in bins), default=0.0) for d in range(st.ndim)]
        for b in bins:
            self.add(b)

    def _free(self, b: int) -> float:
        st = self.st
        return min(
            ((st.limit[b][d] - st.load[b][d]) / c for d, c in enumerate(self.maxcap) if c > 0),
            default=0.0,
        )

    def add(self, b: int) -> None:
        key = (self._free(b), b)
        self.keys[b] = key
        bisect.insort(self.sorted, key)

    def remove(self, b: int) -> None:
        key = self.keys.pop(b, None)
        if key is not None:
            i = bisect.bisect_left(self.sorted, key)
            del self.sorted[i]

    def update(self, bins: set[int]) -> None:
        for b in bins:
            if b in self.keys:
                self.remove(b)
                self.add(b)

    def find(self, u: int) -> int | None:
        st = self.st
        dem = st.udem[u]  # the whole unit: callers move units that sit on one bin
        need = max((dem[d] / c for d, c in enumerate(self.maxcap) if c > 0), default=0.0)
        start = bisect.bisect_left(self.sorted, (need - 1e-9, -1))
        dims = range(st.ndim)
        load, limit = st.load, st.limit
        for _, b in self.sorted[start:]:
            row, lim = load[b], limit[b]
            if any(row[d] + dem[d] > lim[d] * (1 + 1e-9) + 1e-9 for d in dims):
                continue  # a quick test; can_place decides
            if st.can_place(u, b):
                return b
        return None


def scarce_dim(st: _State, bins: Sequence[int]) -> int:
    """The dimension in which ``bins`` are the fullest."""
    best, worst = 0, -1.0
    for d in range(st.ndim):
        cap = sum(st.cap[b][d] for b in bins)
        use = sum(st.load[b][d] for b in bins)
        r = use / cap if cap > 0 else 0.0
        if r > worst:
            best, worst = d, r
    return best


def _fullness(st: _State, b: int) -> float:
    return sum(st.load[b][d] / st.cap[b][d] for d in range(st.ndim) if st.cap[b][d] > 0)


def _share(st: _State, u: int, b: int) -> float:
    return max((st.udem[u][d] / st.cap[b][d] for d in range(st.ndim) if st.cap[b][d] > 0), default=0.0)


def empty_one_by_one(st: _State, bins: list[int], max_passes: int, floor: int) -> list[int]:
    """Try to empty hosts one at a time, the least loaded first, each unit to its best fit; a host that
    cannot be emptied entirely keeps its units. Passes repeat until one frees nothing or ``floor``
    hosts are left. Returns the bins freed."""
    open_bins = [b for b in bins if st.accepts[b] and st.nitems[b] > 0]
    if len(open_bins) < 2:
        return []
    dim = scarce_dim(st, open_bins)
    index = BestFit(st, open_bins, dim)
    active = set(open_bins)
    freed: list[int] = []
    received: set[int] = set()
    for npass in range(max_passes):
        progress = False
        order = sorted(active, key=lambda b: (_fullness(st, b), b))
        for b in order:
            if len(active) <= floor:
                break
            if npass == 0 and b in received:
                continue  # it took VMs in this pass: emptying it would move them twice
            units = st.units_on(b)
            if not all(st.umovable[u] and st.unit_on(u) == b for u in units):
                continue
            units.sort(key=lambda u: _share(st, u, b), reverse=True)
            index.remove(b)
            mark = len(st.moves)
            ok = True
            took: set[int] = set()
            for u in units:
                dest = index.find(u)
                if dest is None:
                    ok = False
                    break
                index.update(st.place(u, dest, "consolidate"))
                took.add(dest)
            if ok:
                received |= took
                active.discard(b)
                freed.append(b)
                progress = True
            else:
                index.update(st.undo_to(mark))
                index.add(b)
        if not progress:
            break
    return freed
