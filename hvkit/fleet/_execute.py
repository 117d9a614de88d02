"""Running a placement plan on a fleet's members: each move with ``hv.vms.migrate``, in order, checked first."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..errors import HvkitError, InvalidSpec, InvalidState
from ..hypervisor import Hypervisor
from ..tasks import TaskInfo
from ._inventory import Outcome, Step
from ._plan import Move, PlacementPlan

__all__ = ["check_plan", "run_moves"]

HOST_MOVE, POOL_MOVE = "host", "pool"  # what a move changes: the VM's host, or the pool of its disks
_MOVE_KINDS = frozenset({HOST_MOVE, POOL_MOVE})


def check_plan(plan: PlacementPlan, members: Mapping[str, Hypervisor]) -> None:
    """InvalidSpec unless every move of ``plan`` names a VM on one of ``members`` (a plan a Fleet made)."""
    if not isinstance(plan, PlacementPlan):
        raise InvalidSpec(f"execute takes a PlacementPlan, got {type(plan).__name__}")
    for m in plan.moves:
        if m.hypervisor is None or m.vm is None:
            raise InvalidSpec("this plan was not made by a Fleet (its moves name no hypervisor and VM)")
        if m.hypervisor not in members:
            raise InvalidSpec(f"the plan moves VMs on {m.hypervisor!r}, which is not a connected member of this fleet")
        if m.kind not in _MOVE_KINDS:
            raise InvalidSpec(f"unknown move kind {m.kind!r}")


def run_moves(
    members: Mapping[str, Hypervisor],
    plan: PlacementPlan,
    progress: Callable[[Step], None] | None,
    timeout: float | None,
) -> Outcome:
    """Do the moves in order; stop at the first failure, which the outcome names."""
    done: list[Move] = []
    total = len(plan.moves)
    report = progress or (lambda step: None)
    for n, m in enumerate(plan.moves, 1):
        report(Step(n, total, m, "start", 0, m.describe()))
        try:
            _run_move(members[str(m.hypervisor)], m, n, total, report, timeout)
        except HvkitError as exc:
            report(Step(n, total, m, "failed", 0, str(exc)))
            return Outcome(plan, tuple(done), m, exc)
        done.append(m)
        report(Step(n, total, m, "done", 100, m.describe()))
    return Outcome(plan, tuple(done))


def _run_move(
    hv: Hypervisor, m: Move, n: int, total: int, report: Callable[[Step], None], timeout: float | None
) -> None:
    vm = hv.vms.get(str(m.vm))
    expected = m.source_name or m.source
    if m.kind == HOST_MOVE:
        if not {vm.host} & {m.source, m.source_name}:
            raise InvalidState(f"plan is stale: VM {vm.name!r} is on {vm.host!r}, not {expected!r}")
    elif not {d.pool for d in vm.disks} & {m.source, m.source_name}:
        raise InvalidState(f"plan is stale: VM {vm.name!r} has no disks in pool {expected!r}")

    def on_progress(info: TaskInfo) -> None:
        report(Step(n, total, m, "progress", info.progress, info.message))

    if m.kind == HOST_MOVE:
        hv.vms.migrate(vm, host=m.target, live=True, timeout=timeout, progress=on_progress)
    else:
        hv.vms.migrate(vm, pool=m.target, live=True, timeout=timeout, progress=on_progress)
