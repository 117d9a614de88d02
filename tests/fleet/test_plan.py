"""The pure planners: balance and consolidate on hand-made and generated problems."""

from __future__ import annotations

import math

import attrs
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hvkit.errors import InvalidSpec
from hvkit.fleet._consolidation import consolidate, lower_bound
from hvkit.fleet._generate import generate
from hvkit.fleet._placement import balance
from hvkit.fleet._plan import Bin, Item, Problem, apply

from ._check import broken_rules, check_plan

GIB = 1024**3


def bins(n: int, cpu: float = 10.0, mem: float = 100.0, **kw: object) -> list[Bin]:
    return [Bin(f"h{i}", (cpu, mem), **kw) for i in range(n)]  # type: ignore[arg-type]


def test_balance_moves_the_one_cheapest_vm_that_covers_the_excess() -> None:
    p = Problem(
        bins(2),
        [
            Item("big", "h0", (2, 40), cost=40 * GIB),
            Item("mid", "h0", (2, 25), cost=25 * GIB),
            Item("mid2", "h0", (2, 26), cost=26 * GIB),
        ],
    )
    plan = balance(p, 0.8)
    check_plan(p, plan)
    assert [(m.item, m.target) for m in plan.moves] == [("mid", "h1")]  # 91 -> 66, one move, least data
    assert plan.complete
    assert plan.after["h0"][1] == pytest.approx(0.66)


def test_balance_needs_no_moves_when_under_target() -> None:
    p = Problem(bins(2), [Item("a", "h0", (1, 10)), Item("b", "h1", (1, 70))])
    plan = balance(p, 0.8)
    assert plan.moves == () and plan.complete


def test_balance_evacuates_maintenance_hosts_and_keeps_rules() -> None:
    p = Problem(
        [Bin("m", (10, 100), accepts=False), *bins(3)],
        [Item("a", "m", (1, 30)), Item("b", "m", (1, 30)), Item("c", "h0", (1, 10)), Item("d", "h1", (1, 10))],
        anti_affinity=[{"a", "c"}],
        affinity=[{"b", "d"}],
    )
    plan = balance(p, 0.8)
    where = check_plan(p, plan)
    assert plan.complete
    assert where["a"] != "h0" and where["b"] == "h1"
    assert {m.reason for m in plan.moves} == {"maintenance"}


def test_balance_repairs_broken_rules() -> None:
    p = Problem(
        bins(3),
        [
            Item("a", "h0", (1, 10)),
            Item("b", "h0", (1, 10), cost=5),
            Item("c", "h1", (1, 10)),
            Item("d", "h2", (1, 10)),
        ],
        anti_affinity=[{"a", "b"}],
        affinity=[{"c", "d"}],
    )
    plan = balance(p, 0.8)
    where = check_plan(p, plan)
    assert plan.complete and broken_rules(p, where) == []
    assert where["b"] == "h0" and where["a"] != "h0"  # b copies more data: a, the cheaper, moves
    assert [m.reason for m in plan.moves].count("anti-affinity") == 1


def test_balance_reports_what_it_cannot_fix() -> None:
    p = Problem(bins(2, mem=100), [Item("a", "h0", (1, 90)), Item("b", "h1", (1, 70))])
    plan = balance(p, 0.8)
    check_plan(p, plan)
    assert plan.moves == ()
    assert not plan.complete and "h0 stays over the target" in plan.unresolved[0]
    stuck = Problem([Bin("m", (1, 1), accepts=False), Bin("h", (1, 1))], [Item("x", "m", (1, 1), movable=False)])
    plan = balance(stuck, 0.8)
    assert plan.moves == () and "cannot be moved" in plan.unresolved[0]


def test_balance_never_crosses_domains_or_leaves_allowed_bins() -> None:
    p = Problem(
        [Bin("a1", (1, 10), domain="A"), Bin("a2", (1, 10), domain="A"), Bin("b1", (1, 10), domain="B")],
        [Item("x", "a1", (0.1, 9), allowed={"a1"}), Item("y", "a1", (0.1, 1)), Item("z", "a1", (0.1, 1))],
    )
    plan = balance(p, 0.8)
    check_plan(p, plan)
    assert all(m.target == "a2" for m in plan.moves)
    assert "x" not in {m.item for m in plan.moves}


def test_max_moves_limits_the_plan() -> None:
    p = generate(200, 20, seed=3, fill=0.6, skew=0.9)
    plan = balance(p, 0.7, max_moves=3)
    assert len(plan.moves) <= 3
    assert any("limit of 3 moves" in u for u in plan.unresolved)
    check_plan(p, plan)


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Problem([Bin("a", (1, 1)), Bin("a", (1, 1))], []),
        lambda: Problem([Bin("a", (1, 1))], [Item("x", "nope", (1, 1))]),
        lambda: Problem([Bin("a", (1, 1))], [Item("x", "a", (1,))]),
        lambda: Problem([Bin("a", (1, -1))], []),
        lambda: Problem([Bin("a", (1, 1))], [Item("x", "a", (1, 1))], anti_affinity=[{"x", "y"}]),
        lambda: Problem([Bin("a", (1, 1))], [Item("x", "a", (1, 1))], anti_affinity=[{"x"}]),
        lambda: Problem(
            [Bin("a", (1, 1))],
            [Item("x", "a", (0, 0)), Item("y", "a", (0, 0))],
            affinity=[{"x", "y"}],
            anti_affinity=[{"x", "y"}],
        ),
        lambda: Problem(
            [Bin("a", (1, 1), domain="A"), Bin("b", (1, 1), domain="B")],
            [Item("x", "a", (0, 0)), Item("y", "b", (0, 0))],
            affinity=[{"x", "y"}],
        ),
        lambda: balance(Problem([], []), 0),
        lambda: balance(Problem([], []), 1.5),
        lambda: balance(Problem([], []), 0.5, max_moves=-1),
        lambda: consolidate(Problem([], []), 0.5, watts_per_host=-3),
        lambda: balance("nope", 0.5),  # type: ignore[arg-type]
    ],
)
def test_bad_input_is_invalid_spec(bad: object) -> None:
    with pytest.raises(InvalidSpec):
        bad()  # type: ignore[operator]


def test_apply_rejects_a_stale_move() -> None:
    p = Problem(bins(2), [Item("a", "h0", (1, 1))])
    plan = balance(Problem(bins(2), [Item("a", "h1", (1, 30)), Item("b", "h1", (1, 40))]), 0.5)
    assert [m.source for m in plan.moves] == ["h1"]
    with pytest.raises(InvalidSpec, match="expects it on 'h1'"):
        apply(p, [m for m in plan.moves if m.item == "a"] or [attrs.evolve(plan.moves[0], item="a")])


# -- consolidation -----------------------------------------------------------------------------------
def test_consolidate_empties_hosts_and_reports_power() -> None:
    p = Problem(bins(4), [Item(f"v{i}", f"h{i}", (1, 20)) for i in range(4)])
    plan = consolidate(p, 0.8, watts_per_host=250)
    check_plan(p, plan)
    assert plan.bins_used == 1 and plan.lower_bound == 1
    assert len(plan.freed) == 3 and plan.power_saved_watts == 750
    assert len(plan.moves) == 3


def test_consolidate_respects_anti_affinity_and_unmovable() -> None:
    p = Problem(
        bins(4),
        [
            Item("a", "h0", (1, 10)),
            Item("b", "h1", (1, 10)),
            Item("c", "h2", (1, 10), movable=False),
            Item("d", "h3", (1, 10)),
        ],
        anti_affinity=[{"a", "b"}],
    )
    plan = consolidate(p, 0.8)
    where = check_plan(p, plan)
    assert where["a"] != where["b"] and where["c"] == "h2"
    assert plan.bins_used == 2 and plan.lower_bound == 2


def test_lower_bounds() -> None:
    p = Problem(bins(10, cpu=10, mem=100), [Item(f"v{i}", "h0", (1, 45)) for i in range(10)])
    b = lower_bound(p, 1.0)
    assert (b.sum, b.lp) == (5, 5)
    assert lower_bound(p, 0.5).sum == 9  # 450 / 50
    # two host shapes, two dimensions: the LP beats the per-dimension bound
    shapes = [Bin(f"c{i}", (100, 10)) for i in range(5)] + [Bin(f"m{i}", (10, 100)) for i in range(5)]
    q = Problem(shapes, [Item("x", "c0", (200, 200))])
    b = lower_bound(q, 1.0)
    assert b.sum == 2  # two bins of 100 cover either dimension alone
    assert b.lp_value == pytest.approx(400 / 110)  # both at once need 200/110 of each shape
    assert b.lp == 4


def test_consolidation_quality_on_generated_fleet() -> None:
    p = generate(1000, 100, seed=7, fill=0.45, anti_affinity_groups=20, affinity_groups=10)
    plan = consolidate(p, 0.8, watts_per_host=300)
    check_plan(p, plan)
    assert plan.bins_used is not None and plan.lower_bound is not None
    assert plan.bins_used <= math.ceil(plan.lower_bound * 1.05)
    assert plan.power_saved_watts == 300 * len(plan.freed)


# -- properties --------------------------------------------------------------------------------------
@st.composite
def problems(draw: st.DrawFn) -> Problem:
    nbins = draw(st.integers(1, 7))
    domains = draw(st.integers(1, 2))
    bin_list = [
        Bin(
            f"h{i}",
            (draw(st.sampled_from([4.0, 8.0, 16.0])), draw(st.sampled_from([32.0, 64.0, 128.0]))),
            domain=f"d{i % domains}",
            accepts=draw(st.booleans()) if i > 0 else True,
        )
        for i in range(nbins)
    ]
    nitems = draw(st.integers(0, 20))
    items = []
    for i in range(nitems):
        b = draw(st.sampled_from(bin_list))
        items.append(
            Item(
                f"v{i}",
                b.key,
                (draw(st.integers(0, 6)) * 1.0, draw(st.integers(1, 40)) * 1.0),
                cost=draw(st.integers(0, 100)),
                movable=draw(st.integers(0, 9)) > 0,
            )
        )
    keys = [it.key for it in items]
    anti: list[set[str]] = []
    aff: list[set[str]] = []
    if len(keys) >= 2:
        for _ in range(draw(st.integers(0, 2))):
            anti.append(set(draw(st.lists(st.sampled_from(keys), min_size=2, max_size=3, unique=True))))
        for _ in range(draw(st.integers(0, 2))):
            aff.append(set(draw(st.lists(st.sampled_from(keys), min_size=2, max_size=3, unique=True))))
    try:
        return Problem(bin_list, items, affinity=aff, anti_affinity=anti)
    except InvalidSpec:
        assume(False)
        raise


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(problems(), st.sampled_from([0.5, 0.7, 0.8, 1.0]))
def test_balance_plan_is_safe_and_reaches_what_it_predicts(problem: Problem, target: float) -> None:
    check_plan(problem, balance(problem, target))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(problems(), st.sampled_from([0.6, 0.8, 1.0]))
def test_consolidation_plan_is_safe_and_never_beats_the_bound(problem: Problem, headroom: float) -> None:
    plan = consolidate(problem, headroom)
    where = check_plan(problem, plan)
    assert plan.bins_used == len({where[it.key] for it in problem.items})
    if plan.complete:
        assert plan.lower_bound is not None and plan.bins_used >= plan.lower_bound
    for key in plan.freed:
        assert key not in where.values()
