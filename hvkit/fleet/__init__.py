"""Fleet view and placement: one inventory over many hypervisors, capacity, health, balancing, consolidation.

>>> from hvkit.fleet import Fleet
>>> with Fleet(["sim://a", "sim://b"]) as fleet:
...     plan = fleet.balance(target=0.8)
...     outcome = fleet.execute(plan)

The planners are pure and work on :class:`Problem` values too (``balance``, ``consolidate``,
``lower_bound``), which is how they are tested and benchmarked.
"""

from __future__ import annotations

from ._build import Built, host_problem, storage_problem
from ._capacity import CapacityReport, Finding, HostCapacity, PoolCapacity, capacity, health
from ._consolidation import Bound, consolidate, lower_bound
from ._fleet import Fleet
from ._inventory import Failure, Inventory, Member, Outcome, Step
from ._placement import balance
from ._plan import Bin, Item, Move, PlacementPlan, Problem
from ._recover import Left, RecoveryPlan, RecoveryResult, Restart, plan_recovery
from ._report import html_report
from ._rules import Affinity, AntiAffinity, Rule, rules_from_tags

__all__ = [
    "Affinity",
    "AntiAffinity",
    "Bin",
    "Bound",
    "Built",
    "CapacityReport",
    "Failure",
    "Finding",
    "Fleet",
    "HostCapacity",
    "Inventory",
    "Item",
    "Left",
    "Member",
    "Move",
    "Outcome",
    "PlacementPlan",
    "PoolCapacity",
    "Problem",
    "RecoveryPlan",
    "RecoveryResult",
    "Restart",
    "Rule",
    "Step",
    "balance",
    "capacity",
    "consolidate",
    "health",
    "host_problem",
    "html_report",
    "lower_bound",
    "plan_recovery",
    "rules_from_tags",
    "storage_problem",
]
