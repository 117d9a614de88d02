"""Generated placement problems, for tests and benchmarks (seeded, reproducible)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from ._plan import Bin, Item, Problem

__all__ = ["generate", "triplets"]

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
    host_sizes: Sequence[float] = (1.0,),
    cpu_overcommit: Sequence[float] = (4.0,),
) -> Problem:
    """A fleet of hosts holding ``vms`` VMs sized so the fleet is ``fill`` full on average.

    VM sizes follow common cloud shapes (1-16 vCPUs, 1-8 GiB per vCPU). ``skew`` in [0, 1] piles VMs
    onto the first hosts (0: uniform at random). Rule groups pick VMs at random, pairs to quads;
    ``maintenance`` hosts are flagged as accepting nothing. ``host_sizes``: host ``i`` is
    ``host_sizes[i % len(host_sizes)]`` times the base host (``(1, 1, 2)``: a third are twice the size);
    its vCPUs count ``cpu_overcommit[i % len(cpu_overcommit)]`` to a thread.
    """
    if not host_sizes or any(s <= 0 for s in host_sizes) or not cpu_overcommit or any(r <= 0 for r in cpu_overcommit):
        raise ValueError("host_sizes and cpu_overcommit must be positive factors")
    rng = random.Random(seed)
    cpus = [rng.choice((1, 1, 2, 2, 2, 4, 4, 8, 16)) for _ in range(vms)]
    mem = [c * 1024 * rng.choice((1, 2, 2, 4, 4, 8)) for c in cpus]
    # scale memory so the fleet's memory is `fill` full; CPUs are counted 4:1 over threads
    factors = [float(host_sizes[i % len(host_sizes)]) for i in range(hosts)]
    ratios = [float(cpu_overcommit[i % len(cpu_overcommit)]) for i in range(hosts)]
    units = sum(factors)
    cpu_cap = host_cpus * sum(f * r for f, r in zip(factors, ratios, strict=True)) / units
    total_mem = float(sum(mem)) or 1.0
    scale = fill * units * host_memory_mib / total_mem
    mem_f = [m * scale for m in mem]
    cpu_scale = fill * units * cpu_cap / (float(sum(cpus)) or 1.0)
    cpu_f = [c * min(1.0, cpu_scale) for c in cpus]
    bins = [
        Bin(
            f"h{i:04d}",
            (host_cpus * ratios[i] * factors[i], float(host_memory_mib) * factors[i]),
            domain=f"d{i % domains}",
            accepts=i >= maintenance,
        )
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


def triplets(count: int, *, seed: int = 0, capacity: int = 1000) -> Problem:
    """A Falkenauer-style instance: ``3 * count`` items in threes that fill a host exactly, so ``count``
    hosts is the optimum; one dimension. Items start two per host (``ceil(1.5 * count)`` hosts, in a
    shuffled order), every one movable.
    """
    rng = random.Random(seed)
    sizes: list[int] = []
    lo = capacity // 4
    for _ in range(count):
        first = rng.randint(int(capacity * 0.38), int(capacity * 0.49))
        second = rng.randint(lo, max(lo, (capacity - first) // 2))
        sizes += [first, second, capacity - first - second]
    rng.shuffle(sizes)
    nbins = (len(sizes) + 1) // 2
    bins = [Bin(f"t{i:04d}", (float(capacity),)) for i in range(nbins)]
    items = [Item(f"x{i:04d}", f"t{i // 2:04d}", (float(s),), cost=s) for i, s in enumerate(sizes)]
    return Problem(bins, items, dims=("size",))
