"""Consolidation: empty the most hosts (or the most watts), keep every host under a headroom threshold
and the rules, with the fewest moves among plans that keep that many hosts.

Pure, like :mod:`._placement`. First the plan relieves what must be relieved (maintenance, broken
rules, hosts over the threshold). Then, per domain (one hypervisor):

1. **Which hosts to keep.** Hosts are ranked by what they offer for what they cost: their capacity,
   each dimension weighted by how full the domain is in it, over their power draw when
   ``watts_per_host`` gives one per host; among hosts of equal rank, the ones that already hold the
   most VMs (so the fewest move). Hosts holding a VM that cannot move are kept first.
2. **Pack, keeping VMs in place.** The smallest prefix of that ranking that can hold everything is
   found (starting at the domain's lower bound, growing, then bisecting): VMs on kept hosts stay, the
   others go, largest first, to the kept host they fit most tightly (best fit). Every move is a move
   off a host being emptied, so the plan is feasible step by step and has the fewest moves for its
   set of hosts.
3. **Refill** (:mod:`._packing`): for fewer hosts than step 2 found, every movable VM is packed afresh
   with a minimum-slack step, and the result is replayed in a feasible order.
4. **Search** (:mod:`._search`): within ``search_time`` seconds (default 0.5), on domains the steps
   above leave over their bound, bin completion and a relaxation-and-repair local search look for
   fewer hosts; their packing replaces the plan only when it keeps fewer hosts.
5. **Solver** (optional, :mod:`._solver`): with ``solver="auto"`` and HiGHS installed
   (``hvkit[solver]``), a mixed-integer model over the kept hosts looks for fewer hosts or fewer moves
   within ``time_limit`` seconds; the greedy plan stands when it finds nothing better.

The plan says which made it (``planner``: ``greedy``, ``refill``, ``search`` or ``highs``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

from ..errors import InvalidSpec
from . import _search
from ._bounds import Bound, cover_1d, cover_2d, lower_bound
from ._greedy import BestFit, empty_one_by_one, scarce_dim
from ._packing import Refill, relabel, sequence
from ._placement import _LeastLoaded, relieve
from ._plan import PlacementPlan, Problem, _State, check_ratio

__all__ = ["Bound", "consolidate", "lower_bound"]

REFILL_LIMIT = 3000  # units per domain above which the refill step is skipped (time)
SOLVERS = ("auto", "greedy", "highs")
KEEP_SHARES = (0.0, 0.5, 0.75, 0.9, 0.97)  # refills tried: how full each host is first kept with its own units


def _check_watts(watts_per_host: object, problem: Problem) -> float | dict[str, float] | None:
    if watts_per_host is None:
        return None
    if isinstance(watts_per_host, Mapping):
        keys = {b.key for b in problem.bins}
        out = {}
        for k, v in watts_per_host.items():
            if k not in keys:
                raise InvalidSpec(f"watts_per_host names unknown host {k!r}")
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise InvalidSpec(f"watts_per_host[{k!r}] must be a number >= 0, got {v!r}")
            out[str(k)] = float(v)
        return out
    if isinstance(watts_per_host, bool) or not isinstance(watts_per_host, int | float) or watts_per_host < 0:
        raise InvalidSpec(f"watts_per_host must be a number >= 0 or a mapping host -> watts, got {watts_per_host!r}")
    return float(watts_per_host)


def consolidate(
    problem: Problem,
    headroom: float = 0.8,
    *,
    watts_per_host: float | Mapping[str, float] | None = None,
    max_passes: int = 3,
    solver: str = "auto",
    time_limit: float = 1.0,
    search_time: float = 0.5,
) -> PlacementPlan:
    """Plan the moves that empty the most bins while every bin stays under ``headroom`` and the rules.

    ``watts_per_host``: one figure for every host, or a mapping bin key -> watts (hosts that draw more
    are emptied first; hosts not named count the mean). ``solver``: ``"auto"`` (HiGHS when installed,
    within ``time_limit`` seconds), ``"greedy"`` (never), ``"highs"`` (InvalidSpec when not installed).
    ``search_time``: seconds (wall clock, per call) the local search of :mod:`._search` may spend
    looking for fewer hosts after the packing steps; 0 turns it off. ``max_passes`` bounds the
    host-by-host fallback used when the ranked packing cannot hold everything.
    """
    if not isinstance(problem, Problem):
        raise InvalidSpec(f"consolidate takes a Problem, got {type(problem).__name__}")
    ratio = check_ratio("headroom", headroom)
    watts = _check_watts(watts_per_host, problem)
    if solver not in SOLVERS:
        raise InvalidSpec(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if isinstance(time_limit, bool) or not isinstance(time_limit, int | float) or not time_limit >= 0:
        raise InvalidSpec(f"time_limit must be a number of seconds >= 0, got {time_limit!r}")
    if isinstance(search_time, bool) or not isinstance(search_time, int | float) or not search_time >= 0:
        raise InvalidSpec(f"search_time must be a number of seconds >= 0, got {search_time!r}")
    if isinstance(max_passes, bool) or not isinstance(max_passes, int) or max_passes < 1:
        raise InvalidSpec(f"max_passes must be a whole number >= 1, got {max_passes!r}")
    use_solver = None
    if solver != "greedy" and time_limit > 0:
        from . import _solver

        if _solver.available():
            use_solver = _solver
        elif solver == "highs":
            raise InvalidSpec("solver='highs' needs highspy: pip install 'hvkit[solver]'")
    st = _State(problem, ratio)
    had_items = [st.nitems[b] > 0 for b in range(len(st.bkey))]
    idle = [b for b in range(len(st.bkey)) if not had_items[b]]
    unresolved: list[str] = []
    relieve(st, _LeastLoaded(st), unresolved)
    bin_watts = _bin_watts(st, watts)
    cost = bin_watts if any(w > 0 for w in bin_watts) else [1.0] * len(bin_watts)  # of keeping each host on
    by_domain: dict[str, list[int]] = {}
    for b in range(len(st.bkey)):
        by_domain.setdefault(st.bdomain[b], []).append(b)
    planners: set[str] = set()
    search_left = float(search_time)  # what a domain leaves of its share goes to the next ones
    for n, bins in enumerate(by_domain.values()):
        mark = len(st.moves)
        planners.add(_domain(st, bins, cost, max_passes))
        started = time.perf_counter()
        if search_left > 0 and _search.improve(st, bins, cost, search_left / (len(by_domain) - n), mark):
            planners.add("search")
        search_left -= time.perf_counter() - started
        if use_solver is not None and use_solver.improve(st, bins, cost, time_limit / len(by_domain), mark):
            planners.add("highs")
    freed = [b for b in range(len(st.bkey)) if had_items[b] and st.accepts[b] and st.nitems[b] == 0]
    used = sum(1 for b in range(len(st.bkey)) if st.nitems[b] > 0)
    saved = None if watts is None else sum(bin_watts[b] for b in freed)
    planner = next((p for p in ("highs", "search", "refill") if p in planners), "greedy")
    return st.plan(
        "consolidate",
        unresolved,
        freed=tuple(st.bkey[b] for b in freed),
        idle=tuple(st.bkey[b] for b in idle),
        power_saved_watts=saved,
        lower_bound=lower_bound(problem, ratio).best,
        bins_used=used,
        planner=planner,
    )


def _bin_watts(st: _State, watts: float | dict[str, float] | None) -> list[float]:
    if watts is None:
        return [1.0] * len(st.bkey)
    if isinstance(watts, float):
        return [watts] * len(st.bkey)
    mean = sum(watts.values()) / len(watts) if watts else 1.0
    return [watts.get(k, mean) for k in st.bkey]


def movable_units(st: _State, bins: Sequence[int]) -> tuple[list[int], set[int]]:
    """Units of a domain that may move (whole, movable, on a bin that accepts), and the bins the others pin."""
    inside = set(bins)
    movable: list[int] = []
    pinned: set[int] = set()
    seen: set[int] = set()
    for b in bins:
        for u in st.units_on(b):
            if u in seen:
                continue
            seen.add(u)
            home = st.unit_on(u)
            if st.umovable[u] and home is not None and home in inside and st.accepts[home]:
                movable.append(u)
            else:
                pinned |= {x for x in st.unit_bins(u) if st.accepts[x]}
    return movable, pinned


def rank_hosts(st: _State, bins: Sequence[int], pinned: set[int], watts: Sequence[float]) -> list[int]:
    """Accepting bins, the ones to keep first (see the module docstring)."""
    accepting = [b for b in bins if st.accepts[b]]
    if not accepting:
        return []
    nd = st.ndim
    total = [sum(st.limit[b][d] for b in accepting) for d in range(nd)]
    demand = [sum(st.load[b][d] for b in bins) for d in range(nd)]
    weight = [demand[d] / total[d] if total[d] > 0 else 0.0 for d in range(nd)]
    mean = [total[d] / len(accepting) for d in range(nd)]
    mean_watts = sum(watts[b] for b in accepting) / len(accepting) or 1.0

    def value(b: int) -> float:
        offer = sum(weight[d] * st.limit[b][d] / mean[d] for d in range(nd) if mean[d] > 0)
        return offer / (watts[b] / mean_watts) if watts[b] > 0 else math.inf

    values = {b: value(b) for b in accepting}
    top = max((v for v in values.values() if math.isfinite(v)), default=1.0) or 1.0

    def key(b: int) -> tuple[bool, float, int, int, int]:
        units = st.units_on(b)
        rank = round(values[b] / top, 3) if math.isfinite(values[b]) else math.inf
        return (b not in pinned, -rank, -len(units), -sum(st.move_cost(u, -1) for u in units), b)

    return sorted(accepting, key=key)


def _keep_and_fill(st: _State, kept: Sequence[int], movable: Sequence[int], dim: int) -> bool:
    """Move every movable unit off the bins not in ``kept`` to the kept bin it fits most tightly.
    On failure the moves are taken back."""
    keep = set(kept)
    going = [u for u in movable if st.unit_on(u) not in keep]
    going.sort(key=lambda u: (-_size(st, u, kept[0]), u))
    index = BestFit(st, kept, dim)
    mark = len(st.moves)
    for u in going:
        dest = index.find(u)
        if dest is None:
            st.undo_to(mark)
            return False
        index.update(st.place(u, dest, "consolidate"))
    return True


def _size(st: _State, u: int, b: int) -> float:
    return sum(st.udem[u][d] / st.cap[b][d] for d in range(st.ndim) if st.cap[b][d] > 0)


def domain_floor(st: _State, bins: Sequence[int], pinned: set[int]) -> int:
    """No fewer accepting bins of this domain can hold its load (per dimension, largest bins first)."""
    limits = [[st.limit[b][d] for b in bins if st.accepts[b]] for d in range(st.ndim)]
    demand = [sum(st.load[b][d] for b in bins) for d in range(st.ndim)]
    need = max((cover_1d(limits[d], demand[d]) for d in range(st.ndim)), default=0.0)
    if st.ndim == 2 and math.isfinite(need):
        need = max(need, cover_2d(list(zip(limits[0], limits[1], strict=True)), (demand[0], demand[1])))
    return max(len(pinned), math.ceil(need - 1e-9) if math.isfinite(need) else len(limits[0]), 1)


def _domain(st: _State, bins: list[int], watts: Sequence[float], max_passes: int) -> str:
    """Consolidate one domain on ``st``; return the planner whose plan was kept."""
    movable, pinned = movable_units(st, bins)
    order = rank_hosts(st, bins, pinned, watts)
    used_now = [b for b in order if st.nitems[b] > 0]
    if not movable or len(used_now) < 2:
        return "greedy"
    dim = scarce_dim(st, used_now)
    floor = domain_floor(st, bins, pinned)
    ceiling = len(order)

    mark = len(st.moves)
    applied: list[int] = []  # the k whose packing is on the state now, if any

    def fits(k: int) -> bool:
        st.undo_to(mark)
        applied.clear()
        ok = _keep_and_fill(st, order[:k], movable, dim)
        if ok:
            applied.append(k)
        return ok

    best = _smallest(fits, floor, ceiling)
    cost_now = (sum(watts[b] for b in used_now), len(used_now))
    if best is None or (sum(watts[b] for b in order[:best]), best) >= cost_now:
        # the ranked packing does no better than today: empty hosts one by one instead
        st.undo_to(mark)
        empty_one_by_one(st, bins, max_passes, floor)
        return "greedy"
    # fewer hosts by a refill? (it moves more: only taken when it saves a host)
    if len(movable) <= REFILL_LIMIT and floor < best:
        st.undo_to(mark)
        applied.clear()
        for k in range(floor, best):
            if _refill(st, order, k, movable, pinned, watts, dim):
                return "refill"
    if applied != [best]:
        _keep_and_fill(st, order[:best], movable, dim)
    return "greedy"


def _refill(
    st: _State, order: list[int], k: int, movable: list[int], pinned: set[int], watts: Sequence[float], dim: int
) -> bool:
    """Pack every movable unit afresh into the first ``k`` ranked hosts; of the packings that work (each
    host first keeping its own units up to a share of its limit), replay the one with the fewest moves."""
    best: dict[int, int] | None = None
    best_moves = math.inf
    for keep in KEEP_SHARES:
        target = Refill(st, order[:k], movable, dim, keep).run()
        if target is None:
            continue
        target = relabel(st, target, order, pinned, watts)
        moves = sum(1 for u, b in target.items() if st.unit_on(u) != b)
        if moves < best_moves:
            best, best_moves = target, moves
    if best is None:
        return False
    kept = set(best.values())
    mark = len(st.moves)
    if sequence(st, best, [b for b in order if b not in kept]):
        return True
    st.undo_to(mark)
    return False


def _smallest(fits: Callable[[int], bool], lo: int, hi: int) -> int | None:
    """The smallest k in [lo, hi] with fits(k), probing lo, lo+1, lo+2, lo+4 ... then bisecting."""
    step, last_bad, k = 1, lo - 1, lo
    while True:
        if fits(k):
            break
        last_bad = k
        if k >= hi:
            return None
        k = min(hi, lo + step)
        step *= 2
    good = k
    while good - last_bad > 1:
        mid = (good + last_bad) // 2
        if fits(mid):
            good = mid
        else:
            last_bad = mid
    return good
