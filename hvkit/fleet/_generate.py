"""Generated placement problems, for tests and benchmarks (seeded, reproducible)."""

from __future__ import annotations

import random

from ._plan import Bin, Item, Problem

__all__ = ["generate"]

GIB = 1024**3


def generate(
    vms: int,
    hosts: int,
    *,
    seed: int = 0,
    fill: float = 0.5,
    host_cpus: int = 64,
    host_memory_mib: int = 512 * 1024,
    domains: int = 1,
    skew: float = 0.0,
    anti_affinity_groups: int = 0,
    affinity_groups: int = 0,
    maintenance: int = 0,
) -> Problem:
    """A fleet of identical hosts holding ``vms`` VMs sized so the fleet is ``fill`` full on average.

    VM sizes follow common cloud shapes (1-16 vCPUs, 1-8 GiB per vCPU). ``skew`` in [0, 1] piles VMs
    onto the first hosts (0: uniform at random). Rule groups pick VMs at random, pairs to quads;
    ``maintenance`` hosts are flagged as accepting nothing.
    """
    rng = random.Random(seed)
    cpus = [rng.choice((1, 1, 2, 2, 2, 4, 4, 8, 16)) for _ in range(vms)]
    mem = [c * 1024 * rng.choice((1, 2, 2, 4, 4, 8)) for c in cpus]
    # scale memory so the fleet's memory is `fill` full; CPUs are counted 4:1 over threads
    cpu_cap = host_cpus * 4.0
    total_mem = float(sum(mem)) or 1.0
    scale = fill * hosts * host_memory_mib / total_mem
    mem_f = [m * scale for m in mem]
    cpu_scale = fill * hosts * cpu_cap / (float(sum(cpus)) or 1.0)
    cpu_f = [c * min(1.0, cpu_scale) for c in cpus]
    bins = [
        Bin(f"h{i:04d}", (cpu_cap, float(host_memory_mib)), domain=f"d{i % domains}", accepts=i >= maintenance)
        for i in range(hosts)
    ]
    by_domain: dict[str, list[str]] = {}
    for b in bins:
        by_domain.setdefault(b.domain, []).append(b.key)
    items = []
    for v in range(vms):
        dom = f"d{v % domains}"
        keys = by_domain[dom]
        crowded = skew > 0 and rng.random() < skew
        host = keys[rng.randrange(max(1, len(keys) // 4))] if crowded else rng.choice(keys)
        disk = rng.choice((20, 40, 80, 200)) * GIB
        items.append(Item(f"vm{v:05d}", host, (cpu_f[v], mem_f[v]), cost=int(mem_f[v] * 1024 * 1024) + disk // 10))
    by_dom_items: dict[str, list[str]] = {}
    for v, it in enumerate(items):
        by_dom_items.setdefault(f"d{v % domains}", []).append(it.key)
    pool = list(range(vms))
    rng.shuffle(pool)
    used: set[str] = set()
    anti: list[frozenset[str]] = []
    aff: list[frozenset[str]] = []
    for want, out in ((anti_affinity_groups, anti), (affinity_groups, aff)):
        for _ in range(want):
            dom = f"d{rng.randrange(domains)}"
            free = [k for k in by_dom_items[dom] if k not in used]
            size = rng.choice((2, 2, 3, 4))
            if len(free) < size:
                break
            chosen = rng.sample(free, size)
            used.update(chosen)
            out.append(frozenset(chosen))
    return Problem(bins, items, affinity=aff, anti_affinity=anti)
