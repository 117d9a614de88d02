"""Lower bounds (:func:`lower_bound`) on the hosts any consolidation must keep on, both dependency-free:

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

import math
from collections import Counter
from collections.abc import Sequence

import attrs

from ._plan import EPS, Problem, check_ratio

__all__ = ["Bound", "cover_1d", "cover_2d", "lower_bound"]


@attrs.frozen
class Bound:
    """Lower bounds on the hosts any plan must keep on (summed over domains)."""

    sum: int
    lp: int
    lp_value: float  # the LP optimum before rounding up

    @property
    def best(self) -> int:
        return max(self.sum, self.lp)


def cover_1d(caps: Sequence[float], demand: float) -> float:
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


def cover_2d(caps: Sequence[tuple[float, float]], demand: tuple[float, float]) -> float:
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
        per_dim = [cover_1d([lim[d] for lim in limits], demand[d]) for d in range(len(demand))]
        s = max(per_dim) if per_dim else 0.0
        if len(demand) == 2 and math.isfinite(s):
            lp = cover_2d([(a[0], a[1]) for a in limits], (demand[0], demand[1]))
        else:
            lp = s
        if not math.isfinite(lp):
            lp = s = float(len(limits))
        lp = max(lp, s - 1e-9)  # numeric safety: the LP is never below the per-dimension bound
        total_sum += max(math.ceil(s - 1e-9), biggest, 1 if any(v > EPS for v in demand) else 0)
        total_lp += max(math.ceil(lp - 1e-9), biggest, 1 if any(v > EPS for v in demand) else 0)
        lp_value += max(lp, float(biggest))
    return Bound(sum=total_sum, lp=total_lp, lp_value=lp_value)
