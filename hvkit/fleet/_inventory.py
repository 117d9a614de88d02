"""What a Fleet reads and does, as values: members, the inventory, failures, and the steps and outcome of a plan."""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Iterable
from typing import Any

import attrs

from ..capabilities import Capability
from ..errors import HvkitError, InvalidSpec
from ..models import VM, Host, Network, PowerState, StoragePool
from ..models.enums import to_enum
from ._plan import Move, PlacementPlan

__all__ = ["Failure", "Inventory", "Member", "Outcome", "Step", "check_pattern", "pattern_match", "power_states"]


@attrs.frozen
class Failure:
    """A hypervisor that could not be read (or connected to), and why."""

    hypervisor: str
    operation: str
    error: str
    error_type: str

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Member:
    """One hypervisor of the fleet."""

    label: str
    kind: str
    url: str
    capabilities: frozenset[Capability] = attrs.field(eq=False)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "kind": self.kind, "url": self.url}


@attrs.frozen
class Inventory:
    """Everything read at one moment; every item's ``hypervisor`` says which member it came from."""

    members: tuple[Member, ...]
    hosts: tuple[Host, ...]
    vms: tuple[VM, ...]
    pools: tuple[StoragePool, ...]
    networks: tuple[Network, ...]
    failures: tuple[Failure, ...]
    taken: dt.datetime

    @property
    def kinds(self) -> dict[str, str]:
        return {m.label: m.kind for m in self.members}

    @property
    def capabilities(self) -> dict[str, frozenset[Capability]]:
        return {m.label: m.capabilities for m in self.members}


@attrs.frozen
class Step:
    """Progress of a running plan: ``status`` is start, progress, done or failed."""

    index: int  # 1-based
    total: int
    move: Move
    status: str
    percent: int = 0
    message: str = ""


@attrs.frozen
class Outcome:
    """What running a plan did: the moves done, and the first one that failed (then it stopped)."""

    plan: PlacementPlan
    done: tuple[Move, ...]
    failed: Move | None = None
    error: HvkitError | None = attrs.field(default=None, eq=False)

    @property
    def ok(self) -> bool:
        return self.failed is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "done": [m.to_dict() for m in self.done],
            "failed": self.failed.to_dict() if self.failed else None,
            "error": f"{type(self.error).__name__}: {self.error}" if self.error else None,
        }


def pattern_match(pattern: str | None, *values: str | None) -> bool:
    if pattern is None:
        return True
    return any(v is not None and fnmatch.fnmatchcase(v, pattern) for v in values)


def check_pattern(what: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidSpec(f"{what} filter must be a non-empty string (a glob pattern), got {value!r}")
    return value


def power_states(value: PowerState | str | Iterable[PowerState | str] | None) -> frozenset[PowerState] | None:
    """A power-state filter as a set of states (None: no filter)."""
    if value is None:
        return None
    values = [value] if isinstance(value, PowerState | str) else list(value)
    out = {to_enum(PowerState, v, "power state") for v in values}
    if not out:
        raise InvalidSpec("power_state filter is empty")
    return frozenset(out)
