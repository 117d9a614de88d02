"""Fleet planning on mixed hardware: consolidation quality, moves and time; balance on mixed fleets.

Consolidation rows: homogeneous hosts, two host sizes (a third twice the size), three sizes (1x, 2x, 4x),
and Falkenauer-style triplets (items in threes that fill a host exactly: the optimum is known; headroom 1),
without the search for fewer hosts, with its default budget and with a larger one. Columns:
hosts used, the best lower bound (hvkit/fleet/_bounds.py), used over the bound, over the optimum where
known, moves, planning time (wall clock, and CPU time of this process: on a shared, oversubscribed
machine the wall clock measures the neighbours) and the planner that made the plan. Balance rows:
mixed sizes and overcommit ratios; every host must end under the target. Goals: within 5% of the
bound; 10,000 VMs on 1,000 mixed hosts planned in < 2 s.

    python bench/fleet_mixed.py            # every instance
    python bench/fleet_mixed.py --quick    # 1,000-VM instances only
    python bench/fleet_mixed.py --solver 5 # let HiGHS refine for up to 5 s per plan (hvkit[solver])
    python bench/fleet_mixed.py --search 0 # without the search for fewer hosts (search_time=0)
"""

from __future__ import annotations

import argparse
import time

from hvkit.fleet import Problem, balance, consolidate, lower_bound
from hvkit.fleet._generate import generate, triplets

SIZES = {"homogeneous": (1.0,), "mixed 1x/2x": (1.0, 1.0, 2.0), "mixed 1x/2x/4x": (1.0, 2.0, 4.0)}


def consolidation_row(
    name: str, problem: Problem, headroom: float, optimum: int | None, args: argparse.Namespace, search: float
) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    solver = "auto" if args.solver else "greedy"
    plan = consolidate(problem, headroom, solver=solver, time_limit=args.solver, search_time=search)
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    bound = lower_bound(problem, headroom).best
    used = plan.bins_used or 0
    over_opt = f"{used / optimum - 1:>7.1%}" if optimum else f"{'-':>7}"
    print(
        f"{name:<38} {used:>5} {bound:>5} {used / bound - 1:>7.1%} {over_opt} {len(plan.moves):>6} "
        f"{took:>7.2f}s {cpu:>6.2f}s {plan.planner or '':>8}"
    )


def balance_row(name: str, problem: Problem, target: float) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    plan = balance(problem, target)
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    worst = max(max(r) for r in plan.after.values())
    print(
        f"{name:<38} {len(plan.moves):>6} {plan.data_bytes / 2**40:>9.2f} {worst:>7.1%} "
        f"{len(plan.unresolved):>5} {took:>7.2f}s {cpu:>6.2f}s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--solver", type=float, default=0.0, help="seconds HiGHS may refine each plan (0: greedy only)")
    ap.add_argument("--search", type=float, default=0.5, help="search_time of every plan (0.5: the default)")
    ap.add_argument("--triplet-search", type=float, default=5.0, help="search_time of the second triplet rows")
    args = ap.parse_args()
    scales = [(1000, 100)] if args.quick else [(1000, 100), (10000, 1000)]
    head = f"{'used':>5} {'bound':>5} {'/bound':>7} {'/opt':>7} {'moves':>6} {'wall':>8} {'cpu':>7} {'planner':>8}"
    print(f"{'consolidation (headroom 0.8)':<38} {head}")
    for vms, hosts in scales:
        for label, sizes in SIZES.items():
            for seed in range(args.seeds):
                p = generate(
                    vms,
                    hosts,
                    seed=seed,
                    fill=0.45,
                    host_sizes=sizes,
                    anti_affinity_groups=vms // 50,
                    affinity_groups=vms // 100,
                )
                consolidation_row(f"{vms}x{hosts} {label} s{seed}", p, 0.8, None, args, args.search)
    for budget in (0.0, args.search, args.triplet_search):
        for count in (20, 40, 83, 167):
            name = f"triplets {3 * count} items, search {budget:g}s"
            consolidation_row(name, triplets(count, seed=1), 1.0, count, args, budget)
    print()
    head = f"{'moves':>6} {'TiB moved':>9} {'worst':>7} {'unres':>5} {'wall':>8} {'cpu':>7}"
    print(f"{'balance (target 0.7)':<38} {head}")
    for vms, hosts in scales:
        for label, sizes in SIZES.items():
            for ratios in ((4.0,), (2.0, 4.0, 8.0)):
                p = generate(
                    vms,
                    hosts,
                    seed=5,
                    fill=0.55,
                    skew=0.5,
                    host_sizes=sizes,
                    cpu_overcommit=ratios,
                    maintenance=hosts // 100,
                )
                balance_row(f"{vms}x{hosts} {label} cpu {'/'.join(f'{r:g}' for r in ratios)}:1", p, 0.7)


if __name__ == "__main__":
    main()
