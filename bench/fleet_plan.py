"""Fleet planning: time and quality on generated fleets.

Prints, for each instance: balance time and moves; consolidation time, hosts used, and the gap to two
lower bounds (sum of demands over host capacity, and the exact LP relaxation; see
hvkit/fleet/_consolidation.py). Goals: planning 10,000 VMs on 1,000 hosts in < 2 s; consolidation of
1,000 VMs on 100 hosts within 5% of the bound.

    python bench/fleet_plan.py            # the standard instances
    python bench/fleet_plan.py --quick    # smaller, for a smoke run
"""

from __future__ import annotations

import argparse
import time

from hvkit.fleet import balance, consolidate, lower_bound
from hvkit.fleet._generate import generate


def run(vms: int, hosts: int, seed: int, fill: float, skew: float, headroom: float, target: float) -> dict[str, float]:
    problem = generate(
        vms,
        hosts,
        seed=seed,
        fill=fill,
        skew=skew,
        anti_affinity_groups=vms // 50,
        affinity_groups=vms // 100,
        maintenance=hosts // 100,
    )
    t0 = time.perf_counter()
    bal = balance(problem, target)
    t_bal = time.perf_counter() - t0
    t0 = time.perf_counter()
    con = consolidate(problem, headroom)
    t_con = time.perf_counter() - t0
    bound = lower_bound(problem, headroom)
    used = float(con.bins_used or 0)
    return {
        "balance_s": t_bal,
        "balance_moves": len(bal.moves),
        "balance_unresolved": len(bal.unresolved),
        "consolidate_s": t_con,
        "used": used,
        "bound_sum": bound.sum,
        "bound_lp": bound.lp,
        "gap": used / bound.best - 1.0 if bound.best else 0.0,
        "moves": len(con.moves),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    sizes = [(1000, 100)] if args.quick else [(1000, 100), (10000, 1000)]
    print(
        f"{'instance':>22} {'seed':>4} {'fill':>4} | {'balance':>8} {'moves':>6} | {'consol.':>8} {'used':>5} "
        f"{'sum-LB':>6} {'LP-LB':>6} {'gap':>6} {'moves':>6}"
    )
    worst_gap = {s: 0.0 for s in sizes}
    worst_time = {s: 0.0 for s in sizes}
    for vms, hosts in sizes:
        for seed in range(args.seeds):
            for fill in (0.35, 0.55):
                r = run(vms, hosts, seed, fill, skew=0.5, headroom=0.8, target=0.7)
                worst_gap[(vms, hosts)] = max(worst_gap[(vms, hosts)], r["gap"])
                worst_time[(vms, hosts)] = max(worst_time[(vms, hosts)], r["balance_s"], r["consolidate_s"])
                print(
                    f"{f'{vms} VMs x {hosts} hosts':>22} {seed:>4} {fill:>4.2f} | {r['balance_s']:>7.3f}s "
                    f"{r['balance_moves']:>6.0f} | {r['consolidate_s']:>7.3f}s {r['used']:>5.0f} "
                    f"{r['bound_sum']:>6.0f} {r['bound_lp']:>6.0f} {r['gap']:>6.1%} {r['moves']:>6.0f}"
                )
    print()
    for (vms, hosts), gap in worst_gap.items():
        print(
            f"{vms} VMs x {hosts} hosts: worst planning time {worst_time[(vms, hosts)]:.2f} s, "
            f"worst consolidation gap to the best lower bound {gap:.1%}"
        )


if __name__ == "__main__":
    main()
