"""Fleet view and placement: one inventory over many hypervisors, capacity, health, balancing, consolidation."""

from __future__ import annotations

from ._consolidation import Bound, consolidate, lower_bound
from ._placement import balance
from ._plan import Bin, Item, Move, Plan, Problem

__all__ = ["Bin", "Bound", "Item", "Move", "Plan", "Problem", "balance", "consolidate", "lower_bound"]
