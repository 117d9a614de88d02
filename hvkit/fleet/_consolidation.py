"""Consolidation: empty the most hosts, keep every host under a headroom threshold and the rules.

Pure, like :mod:`._placement`. First the plan relieves what must be relieved (maintenance, broken
rules, hosts over the threshold); then, per domain, it tries to empty hosts one at a time, the least
loaded first, placing each unit on the host that fits it most tightly (*best fit*, found by bisection
in a list of hosts sorted by free room in the domain's scarcest dimension). A host that cannot be
emptied entirely keeps its VMs (its tentative moves are taken back). Passes repeat until one frees
nothing, or until the domain reaches its lower bound.

Lower bounds (:func:`lower_bound`), both dependency-free:

* ``sum`` — for each dimension, the fewest hosts whose capacities (at the threshold, largest first)
  add up to the demand; the largest over dimensions. With one host size, ``ceil(demand/capacity)``.
* ``lp`` — the linear-programming relaxation of the placement problem. Its optimum equals the
  optimum of the covering LP ``min sum(y) s.t. sum(y_j c_j) >= D, 0 <= y <= 1`` (any fractional
  assignment x_ij <= y_j with sum_j x_ij = 1 gives such a y, and any such y spreads every item
  fractionally), plus the size of the largest anti-affinity group. For two dimensions we solve it
  exactly through its dual, ``max_λ>=0 λ·D - Σ_j max(0, λ·c_j - 1)``: a concave piecewise-linear
  function whose maximum lies on a vertex of the lines ``λ·c_j = 1`` and the axes, so evaluating it
  at those (few, as hosts come in few sizes) vertices gives the LP optimum. With more dimensions the
  per-dimension bound is used (still a valid bound). No solver, no scipy.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Sequence

import attrs

from ..errors import InvalidSpec
from ._placement import _LeastLoaded, relieve
from ._plan import EPS, PlacementPlan, Problem, _State, check_ratio

__all__ = ["Bound", "consolidate", "lower_bound"]


@attrs.frozen
class Bound:
    """Lower bounds on the hosts any plan must keep on (summed over domains)."""

    sum: int
    lp: int
    lp_value: float  # the LP optimum before rounding up

    @property
    def best(self) -> int:
        return max(self.sum, self.lp)


def _cover_1d(caps: Sequence[float], demand: float) -> float:
    """Fewest (fractional) bins, largest first, whose capacities cover ``demand``; inf if they cannot."""
    if demand <= EPS:
        return 0.0
    total = 0.0
    for n, c in enumerate(sorted(caps, reverse=True)):
        if c <= 0:
            break
        if total + c >= demand - EPS * demand:
            return n + (demand - total) / c
        total += c
    return math.inf


def _cover_2d(caps: Sequence[tuple[float, float]], demand: tuple[float, float]) -> float:
    """Optimum of min Σy s.t. Σ y_j c_j >= demand, 0 <= y <= 1, through its dual (see the module doc)."""
    d1, d2 = demand
    if sum(c[0] for c in caps) < d1 * (1 - 1e-12) or sum(c[1] for c in caps) < d2 * (1 - 1e-12):
        return math.inf
    types = Counter(caps)
    kinds = list(types.items())

    def g(l1: float, l2: float) -> float:
        val = l1 * d1 + l2 * d2
        for (a, b), n in kinds:
            over = a * l1 + b * l2 - 1.0
            if over > 0:
                val -= n * over
        return val

    points: list[tuple[float, float]] = [(0.0, 0.0)]
    for (a, b), _ in kinds:
        if a > 0:
            points.append((1.0 / a, 0.0))
        if b > 0:
            points.append((0.0, 1.0 / b))
    for i, ((a1, b1), _) in enumerate(kinds):
        for (a2, b2), _ in kinds[i + 1 :]:
            det = a1 * b2 - a2 * b1
            if abs(det) < 1e-15:
                continue
            l1 = (b2 - b1) / det
            l2 = (a1 - a2) / det
            if l1 >= 0 and l2 >= 0:
                points.append((l1, l2))
    return max(g(*p) for p in points)


def _domains(problem: Problem) -> dict[str, tuple[list[tuple[float, ...]], list[float], int]]:
    """Per domain: capacities of accepting bins, total demand, largest anti-affinity group."""
    bins = {b.key: b for b in problem.bins}
    out: dict[str, tuple[list[tuple[float, ...]], list[float], int]] = {}
    for b in problem.bins:
        caps, _, _ = out.setdefault(b.domain, ([], [0.0] * len(problem.dims), 0))
        if b.accepts:
            caps.append(b.capacity)
        if b.base is not None:
            for d, v in enumerate(b.base):
                out[b.domain][1][d] += v
    for it in problem.items:
        dom = bins[it.bin].domain
        for d, v in enumerate(it.demand):
            out[dom][1][d] += v
    domain_of = {it.key: bins[it.bin].domain for it in problem.items}
    for g in problem.anti_affinity:
        per: Counter[str] = Counter(domain_of[k] for k in g)
        for dom, n in per.items():
            caps, dem, big = out[dom]
            out[dom] = (caps, dem, max(big, n))
    return out


def lower_bound(problem: Problem, headroom: float = 1.0) -> Bound:
    """Lower bounds on the hosts that must stay on to hold every item under ``headroom``.

    Only bins holding items count as "on"; a domain with no demand needs no bin. Infeasible demand
    (more than the domain can hold) counts every accepting bin of that domain.
    """
    ratio = check_ratio("headroom", headroom)
    total_sum = total_lp = 0
    lp_value = 0.0
    for caps, demand, biggest in _domains(problem).values():
        if not any(v > EPS for v in demand) and biggest == 0:
            continue
        limits = [tuple(c * ratio for c in cap) for cap in caps]
        per_dim = [_cover_1d([lim[d] for lim in limits], demand[d]) for d in range(len(demand))]
        s = max(per_dim) if per_dim else 0.0
        if len(demand) == 2 and math.isfinite(s):
            lp = _cover_2d([(a[0], a[1]) for a in limits], (demand[0], demand[1]))
        else:
            lp = s
        if not math.isfinite(lp):
            lp = s = float(len(limits))
        lp = max(lp, s - 1e-9)  # numeric safety: the LP is never below the per-dimension bound
        total_sum += max(math.ceil(s - 1e-9), biggest, 1 if any(v > EPS for v in demand) else 0)
        total_lp += max(math.ceil(lp - 1e-9), biggest, 1 if any(v > EPS for v in demand) else 0)
        lp_value += max(lp, float(biggest))
    return Bound(sum=total_sum, lp=total_lp, lp_value=lp_value)


class _BestFit:
    """Open bins of one domain sorted by free room in one dimension (relative to capacity)."""

    def __init__(self, st: _State, bins: Sequence[int], dim: int) -> None:
        self.st = st
        self.dim = dim
        self.keys: dict[int, tuple[float, int]] = {}
        self.sorted: list[tuple[float, int]] = []
        self.maxcap = max((st.cap[b][dim] for b in bins), default=0.0)
        for b in bins:
            self.add(b)

    def _free(self, b: int) -> float:
        st, d = self.st, self.dim
        c = st.cap[b][d]
        return (st.limit[b][d] - st.load[b][d]) / c if c > 0 else 0.0

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
        need = 0.0
        for m in st.members[u]:
            need += st.dem[m][self.dim]
        # bins with less relative room than need/largest-capacity cannot take the unit: skip them
        start = bisect.bisect_left(self.sorted, (need / self.maxcap - 1e-12, -1)) if self.maxcap > 0 else 0
        for _, b in self.sorted[start:]:
            if st.can_place(u, b):
                return b
        return None


def _scarce_dim(st: _State, bins: Sequence[int]) -> int:
    best, worst = 0, -1.0
    for d in range(st.ndim):
        cap = sum(st.cap[b][d] for b in bins)
        use = sum(st.load[b][d] for b in bins)
        r = use / cap if cap > 0 else 0.0
        if r > worst:
            best, worst = d, r
    return best


def consolidate(
    problem: Problem,
    headroom: float = 0.8,
    *,
    watts_per_host: float | None = None,
    max_passes: int = 3,
) -> PlacementPlan:
    """Plan the moves that empty the most bins while every bin stays under ``headroom`` and the rules."""
    if not isinstance(problem, Problem):
        raise InvalidSpec(f"consolidate takes a Problem, got {type(problem).__name__}")
    ratio = check_ratio("headroom", headroom)
    if watts_per_host is not None and (
        isinstance(watts_per_host, bool) or not isinstance(watts_per_host, int | float) or watts_per_host < 0
    ):
        raise InvalidSpec(f"watts_per_host must be a number >= 0, got {watts_per_host!r}")
    st = _State(problem, ratio)
    idle = [b for b in range(len(st.bkey)) if st.nitems[b] == 0]
    unresolved: list[str] = []
    relieve(st, _LeastLoaded(st), unresolved)
    freed: list[int] = []
    by_domain: dict[str, list[int]] = {}
    for b in range(len(st.bkey)):
        by_domain.setdefault(st.bdomain[b], []).append(b)
    for bins in by_domain.values():
        freed += _pack_domain(st, bins, max_passes)
    bound = lower_bound(problem, ratio)
    used = sum(1 for b in range(len(st.bkey)) if st.nitems[b] > 0)
    return st.plan(
        "consolidate",
        unresolved,
        freed=tuple(st.bkey[b] for b in freed),
        idle=tuple(st.bkey[b] for b in idle),
        power_saved_watts=None if watts_per_host is None else float(watts_per_host) * len(freed),
        lower_bound=bound.best,
        bins_used=used,
    )


def _fullness(st: _State, b: int) -> float:
    return sum(st.load[b][d] / st.cap[b][d] for d in range(st.ndim) if st.cap[b][d] > 0)


def _share(st: _State, u: int, b: int) -> float:
    return max((st.udem[u][d] / st.cap[b][d] for d in range(st.ndim) if st.cap[b][d] > 0), default=0.0)


def _pack_domain(st: _State, bins: list[int], max_passes: int) -> list[int]:
    open_bins = [b for b in bins if st.accepts[b] and st.nitems[b] > 0]
    if len(open_bins) < 2:
        return []
    dim = _scarce_dim(st, open_bins)
    index = _BestFit(st, open_bins, dim)
    # a lower bound for this domain alone: stop as soon as it is reached
    caps = [[st.limit[b][d] for b in bins if st.accepts[b]] for d in range(st.ndim)]
    demand = [sum(st.load[b][d] for b in bins) for d in range(st.ndim)]
    need = max(_cover_1d(caps[d], demand[d]) for d in range(st.ndim))
    floor = math.ceil(need - 1e-9) if math.isfinite(need) else len(open_bins)
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
