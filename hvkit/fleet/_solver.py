"""An optional exact step for consolidation: a mixed-integer model solved by HiGHS (``hvkit[solver]``).

Over the hosts the greedy plan keeps, binary ``y_b`` (host b stays on, cost: its watts) and ``x_ub``
(unit u on host b, where u may go; a tiny cost when b is not where u started) under: every unit on one
host; per host and dimension, the units' demand within the limit left by what cannot move, and zero
unless the host is on; per host, at most one member of each anti-affinity group. The greedy solution
is the starting point, so whatever HiGHS returns within the time limit is at least as good; its
assignment is replayed on the working state only when it keeps fewer (or cheaper) hosts.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from typing import Any

from ._plan import EPS, _State

__all__ = ["available", "improve"]

MAX_PAIRS = 60_000  # unit x host variables above which the model is not built (time)


def available() -> bool:
    return importlib.util.find_spec("highspy") is not None


def improve(st: _State, bins: Sequence[int], watts: Sequence[float], time_limit: float, mark: int) -> bool:
    """Try to beat the current consolidation of one domain (the moves after ``mark``); True if it did."""
    from ._consolidation import domain_floor, movable_units
    from ._packing import relabel, replay

    movable, pinned = movable_units(st, bins)
    hosts = [b for b in bins if st.accepts[b] and st.nitems[b] > 0]
    floor = domain_floor(st, bins, pinned)
    if not movable or len(hosts) <= floor or len(movable) * len(hosts) > MAX_PAIRS:
        return False
    pairs = [(u, b) for u in movable for b in hosts if _may(st, u, b)]
    if len(pairs) > MAX_PAIRS:
        return False
    target = _solve(st, movable, hosts, pinned, pairs, watts, time_limit, floor)
    if target is None:
        return False
    target = relabel(st, target, bins, pinned, watts)
    kept = set(target.values()) | pinned
    cost_kept, cost_now = sum(watts[b] for b in kept), sum(watts[b] for b in hosts)
    if not (cost_kept < cost_now - EPS or (cost_kept <= cost_now + EPS and len(kept) < len(hosts))):
        return False
    return replay(st, target, [b for b in bins if st.accepts[b] and b not in kept], mark)


def _may(st: _State, u: int, b: int) -> bool:
    allowed = st.uallowed[u]
    return allowed is None or b in allowed


def _solve(
    st: _State,
    movable: list[int],
    hosts: list[int],
    pinned: set[int],
    pairs: list[tuple[int, int]],
    watts: Sequence[float],
    time_limit: float,
    floor: int,
) -> dict[int, int] | None:
    import highspy

    nd = st.ndim
    moving = set(movable)
    # what stays whatever the plan: load and anti-affinity counts of the units that cannot move
    fixed = {b: list(st.load[b]) for b in hosts}
    fixed_anti = {b: dict(st.anti[b]) for b in hosts}
    for u in movable:
        b = st.unit_on(u)
        if b in fixed:
            for d in range(nd):
                fixed[b][d] -= st.udem[u][d]
            for g in st.ugroups[u]:
                fixed_anti[b][g] -= 1
    origin = {u: {st.bidx[st.problem.items[m].bin] for m in st.members[u]} for u in movable}
    ny = len(hosts)
    ycol = {b: j for j, b in enumerate(hosts)}
    eps = min(watts[b] for b in hosts) / (len(movable) + 1) if hosts else 0.0
    cost = [watts[b] for b in hosts] + [0.0 if origin[u] == {b} else eps for u, b in pairs]
    lower = [1.0 if b in pinned else 0.0 for b in hosts] + [0.0] * len(pairs)
    ncol = ny + len(pairs)
    cols: list[list[tuple[int, float]]] = [[] for _ in range(ncol)]
    row_lo: list[float] = []
    row_hi: list[float] = []

    def row(entries: list[tuple[int, float]], lo: float, hi: float) -> None:
        r = len(row_lo)
        for c, v in entries:
            cols[c].append((r, v))
        row_lo.append(lo)
        row_hi.append(hi)

    by_unit: dict[int, list[int]] = {}
    by_host: dict[int, list[int]] = {}
    for k, (u, b) in enumerate(pairs):
        by_unit.setdefault(u, []).append(ny + k)
        by_host.setdefault(b, []).append(k)
    for u in movable:
        row([(c, 1.0) for c in by_unit.get(u, [])], 1.0, 1.0)
    for b in hosts:
        for d in range(nd):
            room = max(0.0, st.limit[b][d] - fixed[b][d]) + EPS * max(1.0, st.limit[b][d])
            entries = [(ny + k, st.udem[pairs[k][0]][d]) for k in by_host.get(b, []) if st.udem[pairs[k][0]][d] > 0]
            row([*entries, (ycol[b], -room)], -math.inf, 0.0)
        groups: dict[int, list[int]] = {}
        for k in by_host.get(b, []):
            for g in st.ugroups[pairs[k][0]]:
                groups.setdefault(g, []).append(ny + k)
        for g, members in groups.items():
            if len(members) > 1 or fixed_anti[b].get(g, 0) > 0:
                row([(c, 1.0) for c in members], -math.inf, max(0.0, 1.0 - fixed_anti[b].get(g, 0)))
    row([(j, 1.0) for j in range(ny)], float(floor), math.inf)
    lp = highspy.HighsLp()
    lp.num_col_ = ncol
    lp.num_row_ = len(row_lo)
    lp.col_cost_ = cost
    lp.col_lower_ = lower
    lp.col_upper_ = [1.0] * ncol
    lp.row_lower_ = row_lo
    lp.row_upper_ = row_hi
    start, index, value = [0], [], []
    for entries in cols:
        for r, v in entries:
            index.append(r)
            value.append(v)
        start.append(len(index))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = start
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = value
    lp.integrality_ = [highspy.HighsVarType.kInteger] * ncol
    h: Any = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("threads", 1)
    h.passModel(lp)
    warm = highspy.HighsSolution()
    now = {u: st.unit_on(u) for u in moving}
    warm.col_value = [1.0 if st.nitems[b] > 0 else 0.0 for b in hosts] + [1.0 if now[u] == b else 0.0 for u, b in pairs]
    warm.value_valid = True
    h.setSolution(warm)
    h.run()
    if h.getInfo().primal_solution_status != 2:  # 2: feasible
        return None
    x = h.getSolution().col_value
    out: dict[int, int] = {}
    for k, (u, b) in enumerate(pairs):
        if x[ny + k] > 0.5:
            out[u] = b
    return out if len(out) == len(movable) else None
