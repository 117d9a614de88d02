"""The search for fewer hosts after the packing steps (``consolidate(..., search_time=...)``).

After the greedy and refill steps, one domain keeps ``k`` hosts and its bound says ``floor``. Within a
wall-clock budget, two engines look for fewer; the plan is replaced only when one finds fewer hosts:

* **Bin completion** (:mod:`._completion`), first on domains of up to ``EXACT_FIRST`` movable units:
  a depth-first search for a packing on ``floor`` hosts straight away.
* **Relaxation and repair** (Alvim et al.'s scheme for bin packing): ask for ``k - 1`` hosts by
  dropping the least-filled one and putting its units where they overload the others least (limits
  may be exceeded), then a tabu search moves the total excess over the limits, summed over hosts and
  dimensions (each scaled by the domain's mean limit), down to zero. Its moves take an overloaded
  host's unit elsewhere (shift) or exchange one or two of its units for one or two smaller units of
  another host; a unit may not go back to the host it just left for a few iterations; moves are
  scored by the excess weighted per host, and at a local minimum the overloaded hosts weigh more (a
  breakout). Every few iterations the units of a few hosts (overloaded ones, the roomiest, others at
  random) are repacked exactly by the bin completion (a large-neighbourhood step). At zero excess the
  search asks for one host fewer again, until the floor, the budget or a long stall.

Allowed hosts and anti-affinity are never broken, only the limits during the repair, so a search
that reaches zero excess is a plan; it is replayed move by move and checked like the others. On
Falkenauer's triplets, where every kept host must end exactly full, this closes the hosts that the
minimum-slack refill leaves. Pure Python; seeded, so a run that ends before its deadline repeats.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from collections.abc import Sequence

import attrs

from ._plan import EPS, _State

__all__ = ["Search", "improve"]

SEARCH_LIMIT = 3000  # movable units of a domain above which it is not searched (time; as the refill step)
WINDOW = 400  # candidate units looked at per unit of the overloaded host and swap kind
TENURE = (5, 15)  # iterations a unit may not return to the host it left
WEIGHT_STEP = 1.0  # the weight an overloaded host gains at each local minimum
EXACT_SHARE = 0.8  # of the budget, for the bin completion when it goes first (:mod:`._completion`)
REPAIR_SHARE = 0.5  # of the budget, for the local search when it goes first on domains the completion takes
EXACT_FIRST = 150  # domains with up to this many movable units try the bin completion before the local search
STALL = 2000  # iterations without a new best after which the search gives up
PAIR_OUT = 12  # pairs of an overloaded host's units are given up together only when it holds this many
LNS_EVERY = 5  # iterations between exact repacks of a few hosts
LNS_AFTER = 10  # ... once the search has gone this many iterations without a new best
LNS_HOSTS = 16  # hosts repacked together
LNS_TIME = 0.05  # seconds one repack may take
PAIR_UNITS = 1500  # exchanges for pairs of units are looked at up to this many movable units


@attrs.define
class _Tabu:
    """The tabu search's memory and the best move of the current iteration."""

    exc: dict[int, float]  # each host's excess
    weight: dict[int, float]  # each host's weight in the score
    tabu: dict[tuple[int, int], int] = attrs.Factory(dict)  # (unit, host) -> iteration it may go back
    total: float = 0.0
    best_total: float = 0.0
    improved: int = 0  # the iteration of the last new best
    a: int = -1  # the overloaded host of this iteration
    it: int = 0
    score: float = math.inf
    move: tuple[tuple[int, ...], int, tuple[int, ...]] | None = None
    ties: int = 0

    def start(self, a: int, it: int) -> None:
        self.a, self.it, self.score, self.move, self.ties = a, it, math.inf, None, 0


class Search:
    """Relaxation and repair over the kept hosts of one domain (see the module docstring)."""

    def __init__(
        self,
        st: _State,
        hosts: Sequence[int],
        movable: Sequence[int],
        dim: int,
        seed: int = 0,
    ) -> None:
        self.st = st
        self.dim = dim
        self.rng = random.Random(seed)
        self.units = list(movable)
        self.nd = nd = st.ndim
        self.lim = {b: list(st.limit[b]) for b in hosts}
        self.tol = {b: [EPS * max(1.0, v) for v in st.limit[b]] for b in hosts}
        self.load = {b: list(st.load[b]) for b in hosts}
        self.anti = {b: dict(st.anti[b]) for b in hosts}
        self.where: dict[int, int] = {}
        for u in self.units:
            b = st.unit_on(u)
            assert b is not None
            self.where[u] = b
        mean = [sum(self.lim[b][d] for b in hosts) / max(1, len(hosts)) for d in range(nd)]
        self.weight = [1.0 / m if m > 0 else 0.0 for m in mean]
        self.size = {u: st.udem[u] for u in self.units}
        order = sorted(self.units, key=lambda u: (st.udem[u][dim], u))
        self.sorted_units = order
        self.sorted_keys = [st.udem[u][dim] for u in order]
        self.on: dict[int, set[int]] = {b: set() for b in hosts}
        for u, b in self.where.items():
            self.on[b].add(u)

    # -- excess ------------------------------------------------------------------------------------
    def _excess(self, b: int, row: Sequence[float]) -> float:
        lim, tol, w = self.lim[b], self.tol[b], self.weight
        out = 0.0
        for d in range(self.nd):
            over = row[d] - lim[d] - tol[d]
            if over > 0:
                out += over * w[d]
        return out

    def excess(self, b: int) -> float:
        return self._excess(b, self.load[b])

    def _allowed(self, u: int, b: int) -> bool:
        allowed = self.st.uallowed[u]
        return allowed is None or b in allowed

    def _anti_ok(self, u: int, b: int, leaving: Sequence[int]) -> bool:
        groups = self.st.ugroups[u]
        if not groups:
            return True
        counts = self.anti[b]
        for g in groups:
            n = counts.get(g, 0) - sum(1 for v in leaving if g in self.st.ugroups[v])
            if n > 0:
                return False
        return True

    def _swap_ok(self, out: Sequence[int], a: int, back: Sequence[int], b: int) -> bool:
        """May the units ``out`` of host ``a`` and ``back`` of host ``b`` trade places (rules only)?"""
        if not all(self._allowed(u, b) for u in out) or not all(self._allowed(v, a) for v in back):
            return False
        if not all(self._anti_ok(u, b, back) for u in out) or not all(self._anti_ok(v, a, out) for v in back):
            return False
        ug = self.st.ugroups
        return not any(ug[x].keys() & ug[y].keys() for grp in (out, back) for x, y in _pairs(grp))

    def _shift(self, u: int, b: int) -> None:
        src = self.where[u]
        dem = self.size[u]
        a, z = self.load[src], self.load[b]
        for d in range(self.nd):
            a[d] -= dem[d]
            z[d] += dem[d]
        for g in self.st.ugroups[u]:
            self.anti[src][g] -= 1
            self.anti[b][g] = self.anti[b].get(g, 0) + 1
        self.on[src].discard(u)
        self.on[b].add(u)
        self.where[u] = b

    # -- the search --------------------------------------------------------------------------------
    def drop(self, b: int) -> bool:
        """Take host ``b`` out; its units go where they add the least excess. False if one has nowhere."""
        units = sorted(self.on[b], key=lambda u: -self.size[u][self.dim])
        hosts = [h for h in self.load if h != b]
        for u in units:
            best, best_cost = None, 0.0
            for h in hosts:
                if not self._allowed(u, h) or not self._anti_ok(u, h, ()):
                    continue
                row = [self.load[h][d] + self.size[u][d] for d in range(self.nd)]
                cost = self._excess(h, row) - self.excess(h)
                if best is None or cost < best_cost - 1e-12:
                    best, best_cost = h, cost
            if best is None:
                return False
            self._shift(u, best)
        del self.load[b], self.lim[b], self.tol[b], self.anti[b], self.on[b]
        return True

    def repair(self, deadline: float, max_iterations: int) -> bool:
        """Tabu search down to zero excess; True when reached before the deadline.

        Moves are chosen by the excess weighted per host; at a local minimum the weight of every
        overloaded host grows (a *breakout*), which pushes the excess elsewhere."""
        rng = self.rng
        t = _Tabu(exc={b: self.excess(b) for b in self.load}, weight=dict.fromkeys(self.load, 1.0))
        t.total = t.best_total = sum(t.exc.values())
        for it in range(max_iterations):
            if t.total <= 1e-12:
                return True
            if time.perf_counter() > deadline or it - t.improved > STALL:
                return False
            hot = [b for b, e in t.exc.items() if e > 1e-12]
            if it - t.improved >= LNS_AFTER and it % LNS_EVERY == 0 and self._lns(t, hot, deadline):
                continue
            t.start(rng.choice(hot), it)
            self._neighbours(t)
            if t.move is None:  # nothing near: the least bad of all
                self._neighbours(t, near=False)
            if t.move is None:
                continue
            if t.score >= -1e-12:  # a local minimum: weigh the overloaded hosts more
                for h in hot:
                    t.weight[h] += WEIGHT_STEP
            out, b, back = t.move
            a = t.a
            for u in out:
                self._shift(u, b)
                t.tabu[(u, a)] = it + rng.randint(*TENURE)
            for v in back:
                self._shift(v, a)
                t.tabu[(v, b)] = it + rng.randint(*TENURE)
            t.total -= t.exc[a] + t.exc[b]
            t.exc[a], t.exc[b] = self.excess(a), self.excess(b)
            t.total += t.exc[a] + t.exc[b]
            if t.total < t.best_total - 1e-12:
                t.best_total, t.improved = t.total, it
        return t.total <= 1e-12

    def _lns(self, t: _Tabu, hot: list[int], deadline: float) -> bool:
        """Repack the units of a few hosts (some overloaded, the roomiest, some at random) exactly, with
        the bin completion of :mod:`._completion`; True when that took their excess away."""
        from ._completion import repack

        rng, dim, nd = self.rng, self.dim, self.nd
        hosts = rng.sample(hot, min(len(hot), LNS_HOSTS // 2))
        need = sum(self.load[b][dim] - self.lim[b][dim] for b in hosts)
        others = sorted((b for b in self.load if b not in hosts), key=lambda b: self.load[b][dim] - self.lim[b][dim])
        for b in others:
            if need <= 0 or len(hosts) >= LNS_HOSTS:
                break
            need += self.load[b][dim] - self.lim[b][dim]
            hosts.append(b)
        rest = [b for b in self.load if b not in hosts]
        hosts += rng.sample(rest, min(len(rest), LNS_HOSTS - len(hosts)))
        units = [u for b in hosts for u in self.on[b]]
        free = {b: [self.lim[b][d] + self.tol[b][d] - self.load[b][d] for d in range(nd)] for b in hosts}
        anti = {b: dict(self.anti[b]) for b in hosts}
        for u in units:
            b = self.where[u]
            for d in range(nd):
                free[b][d] += self.size[u][d]
            for g in self.st.ugroups[u]:
                anti[b][g] -= 1
        stop = min(deadline, time.perf_counter() + LNS_TIME)
        placed = repack(self.st, free, anti, units, dim, stop, seed=rng.randrange(1 << 30))
        if placed is None:
            return False
        for u, b in placed.items():
            if self.where[u] != b:
                self._shift(u, b)
        for b in hosts:
            t.total += self.excess(b) - t.exc[b]
            t.exc[b] = self.excess(b)
        if t.total < t.best_total - 1e-12:
            t.best_total, t.improved = t.total, t.it
        return True

    def _neighbours(self, t: _Tabu, near: bool = True) -> None:
        """Offer the shifts and exchanges from the overloaded host ``t.a`` to ``t``; with ``near``, only
        those that do not add more excess in the scarce dimension than they take off ``t.a``."""
        nd, dim, a = self.nd, self.dim, t.a
        la = self.load[a]
        room = {b: self.lim[b][dim] + self.tol[b][dim] - lb[dim] for b, lb in self.load.items()}
        over_a = max(0.0, -room[a])
        width = max(0.0, max(room.values())) + over_a + 0.02 * self.lim[a][dim]
        # an exchange sending `delta` of the scarce dimension to b is worth a look when it is under `reach`
        reach = {b: (max(0.0, r) + over_a if near else math.inf) for b, r in room.items()}
        mine = list(self.on[a])
        for u in mine:  # shifts
            su = self.size[u]
            row_a = [la[d] - su[d] for d in range(nd)]
            for b, lb in self.load.items():
                if b != a and su[dim] <= reach[b]:
                    self._offer(t, b, row_a, [lb[d] + su[d] for d in range(nd)], (u,), ())
        outs: list[tuple[int, ...]] = [(u,) for u in mine]
        if len(mine) <= PAIR_OUT:
            outs += _pairs(mine)
        keys, units = self.sorted_keys, self.sorted_units
        for out in outs:  # exchanges: the units of `out` for one smaller unit of another host
            s_out = [sum(self.size[u][d] for u in out) for d in range(nd)]
            hi = bisect.bisect_left(keys, s_out[dim])
            lo = bisect.bisect_left(keys, s_out[dim] - width)
            for k in range(max(lo, hi - WINDOW), hi):
                v = units[k]
                b = self.where[v]
                if b != a and s_out[dim] - keys[k] <= reach[b]:
                    sv, lb = self.size[v], self.load[b]
                    row_a = [la[d] - s_out[d] + sv[d] for d in range(nd)]
                    self._offer(t, b, row_a, [lb[d] + s_out[d] - sv[d] for d in range(nd)], out, (v,))
        if len(self.units) > PAIR_UNITS:
            return
        pairs = [  # ... or for two units of one other host
            (self.size[v][dim] + self.size[w][dim], b, v, w)
            for b, here in self.on.items()
            if b != a
            for v, w in _pairs(here)
        ]
        for out in outs:
            s_out = [sum(self.size[u][d] for u in out) for d in range(nd)]
            top, bottom = s_out[dim], s_out[dim] - width
            for size_in, b, v, w in pairs:
                if bottom <= size_in < top and top - size_in <= reach[b]:
                    sv, sw, lb = self.size[v], self.size[w], self.load[b]
                    row_a = [la[d] - s_out[d] + sv[d] + sw[d] for d in range(nd)]
                    row_b = [lb[d] + s_out[d] - sv[d] - sw[d] for d in range(nd)]
                    self._offer(t, b, row_a, row_b, out, (v, w))

    def _offer(
        self, t: _Tabu, b: int, row_a: list[float], row_b: list[float], out: tuple[int, ...], back: tuple[int, ...]
    ) -> None:
        """Keep the move (``out`` from ``t.a`` to ``b``, ``back`` the other way) if it is the best so far."""
        a = t.a
        da = self._excess(a, row_a) - t.exc[a]
        db = self._excess(b, row_b) - t.exc[b]
        score = t.weight[a] * da + t.weight[b] * db
        if score > t.score + 1e-12 or not self._swap_ok(out, a, back, b):
            return
        aspired = t.total + da + db < t.best_total - 1e-12  # a new best is allowed even when tabu
        it, tabu = t.it, t.tabu
        if not aspired and (
            any(tabu.get((u, b), -1) > it for u in out) or any(tabu.get((v, a), -1) > it for v in back)
        ):
            return
        if score < t.score - 1e-12:
            t.score, t.move, t.ties = score, (out, b, back), 1
        else:
            t.ties += 1
            if self.rng.random() * t.ties < 1.0:
                t.move = (out, b, back)

    def assignment(self) -> dict[int, int]:
        return dict(self.where)

    def fill(self, b: int) -> float:
        return max(
            (self.load[b][d] / self.lim[b][d] for d in range(self.nd) if self.lim[b][d] > 0),
            default=0.0,
        )


def improve(st: _State, bins: Sequence[int], watts: Sequence[float], budget: float, mark: int) -> bool:
    """Try to keep fewer hosts of one domain than the moves after ``mark`` do, within ``budget`` seconds
    of wall-clock time; replay the result (True) only when it keeps fewer hosts."""
    from ._completion import MAX_UNITS, complete
    from ._consolidation import domain_floor, movable_units, rank_hosts
    from ._greedy import scarce_dim
    from ._packing import relabel, replay

    movable, pinned = movable_units(st, bins)
    hosts = [b for b in bins if st.accepts[b] and st.nitems[b] > 0]
    floor = domain_floor(st, bins, pinned)
    if not movable or len(movable) > SEARCH_LIMIT or len(hosts) <= floor or budget <= 0:
        return False
    start = time.perf_counter()
    deadline = start + budget
    dim = scarce_dim(st, hosts)
    found: dict[int, int] | None = None
    exact_first = len(movable) <= EXACT_FIRST
    if exact_first:  # few units: the bin completion first, straight for the bound
        found = complete(st, rank_hosts(st, bins, pinned, watts)[:floor], movable, dim, start + budget * EXACT_SHARE)
        if found is not None:
            deadline = start  # the bound is met: nothing is left to search
    search = Search(st, hosts, movable, dim)
    # relaxation and repair, one host fewer at a time (on mid-sized domains, for a share of the budget)
    small = len(movable) <= MAX_UNITS
    until = start + budget * REPAIR_SHARE if small and not exact_first else deadline
    used = len(hosts)
    while used > floor and time.perf_counter() < until:
        if len(search.load) == used:
            droppable = [b for b in search.load if b not in pinned]
            if not droppable or not search.drop(min(droppable, key=lambda b: (search.fill(b), -watts[b], b))):
                break
        if not search.repair(until, 1_000_000):
            break
        found, used = search.assignment(), len(search.load)
    if small and not exact_first and used > floor:  # then the bin completion, straight for the bound
        found = complete(st, rank_hosts(st, bins, pinned, watts)[:floor], movable, dim, deadline) or found
    if found is None:
        return False
    target = relabel(st, found, [b for b in bins if st.accepts[b]], pinned, watts)
    kept = set(target.values()) | pinned
    return replay(st, target, [b for b in bins if st.accepts[b] and b not in kept], mark)


def _pairs(units: Sequence[int] | set[int]) -> list[tuple[int, int]]:
    seq = list(units)
    return [(x, y) for i, x in enumerate(seq) for y in seq[i + 1 :]]
