"""An independent checker for plans: replays moves on a Problem and verifies every step."""

from __future__ import annotations

from hvkit.fleet._plan import PlacementPlan, Problem

EPS = 1e-6


def loads(problem: Problem, where: dict[str, str]) -> dict[str, list[float]]:
    out = {b.key: list(b.base) if b.base is not None else [0.0] * len(problem.dims) for b in problem.bins}
    for it in problem.items:
        row = out[where[it.key]]
        for d, v in enumerate(it.demand):
            row[d] += v
    return out


def over(problem: Problem, load: dict[str, list[float]], ratio: float) -> set[str]:
    bad = set()
    for b in problem.bins:
        for d, c in enumerate(b.capacity):
            if load[b.key][d] > c * ratio * (1 + EPS) + EPS:
                bad.add(b.key)
    return bad


def broken_rules(problem: Problem, where: dict[str, str]) -> list[str]:
    out = []
    for g in problem.affinity:
        if len({where[k] for k in g}) > 1:
            out.append(f"affinity {sorted(g)}")
    for g in problem.anti_affinity:
        hosts = [where[k] for k in g]
        if len(set(hosts)) < len(hosts):
            out.append(f"anti-affinity {sorted(g)}")
    return out


def check_plan(problem: Problem, plan: PlacementPlan) -> dict[str, str]:
    """Assert the plan's invariants; return the final placement."""
    bins = {b.key: b for b in problem.bins}
    items = {it.key: it for it in problem.items}
    where = {it.key: it.bin for it in problem.items}
    start_over = over(problem, loads(problem, where), plan.target)
    start_broken = broken_rules(problem, where)
    received: set[str] = set()
    for mv in plan.moves:
        it = items[mv.item]
        assert where[mv.item] == mv.source, f"{mv} does not start where the item is"
        assert mv.source != mv.target
        dst = bins[mv.target]
        assert dst.accepts, f"{mv} goes to a bin that accepts nothing"
        assert dst.domain == bins[mv.source].domain, f"{mv} crosses domains"
        assert it.movable, f"{mv} moves an unmovable item"
        if it.allowed is not None:
            assert mv.target in it.allowed
        where[mv.item] = mv.target
        received.add(mv.target)
        # never overload a host, at any step
        assert mv.target not in over(problem, loads(problem, where), plan.target), f"{mv} overloads {mv.target}"
    assert where == dict(plan.placement), "the plan's predicted placement differs from the replay"
    final = loads(problem, where)
    for key, ratios in plan.after.items():
        for d, r in enumerate(ratios):
            c = bins[key].capacity[d]
            if c > 0:
                assert abs(r * c - final[key][d]) <= EPS * max(1.0, c)
    still_over = over(problem, final, plan.target)
    # a bin may stay over only if it was over to start with, received nothing, and the plan says so
    assert still_over <= start_over
    assert not (still_over & received)
    if still_over:
        assert plan.unresolved
    # rules: nothing newly broken; all kept when the plan is complete
    now_broken = broken_rules(problem, where)
    assert set(now_broken) <= set(start_broken), f"plan breaks {set(now_broken) - set(start_broken)}"
    if plan.complete:
        assert not now_broken
        assert not still_over
        for b in problem.bins:
            if not b.accepts:
                assert not any(w == b.key for w in where.values()), f"{b.key} was not evacuated"
    return where
