"""The state of a migration run and its journaled steps: what the run, its disk steps and its undo share."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from ..errors import InvalidSpec
from ..hypervisor import Hypervisor
from ..models import VM, Volume
from ._journal import Journal
from ._migration_plan import DiskPlan, NicPlan
from ._results import Progress
from ._verify import V1

__all__ = ["CRASH_ENV", "HOOKS", "RunnerBase", "point"]

CRASH_ENV = "HVKIT_MIGRATION_CRASH_AT"  # tests: "step:point" -> the process kills itself (SIGKILL) there
HOOKS: dict[str, Callable[[], None]] = {}  # tests: "step:point" -> called there (may raise)


def point(name: str) -> None:
    """A named place in the run where tests kill the process or inject a failure."""
    if name in (os.environ.get(CRASH_ENV) or "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)
    hook = HOOKS.get(name)
    if hook is not None:
        hook()


class RunnerBase:
    """A run of one journal: source, target, the journal and its plan, progress, the checksum algorithm."""

    def __init__(
        self,
        source: Hypervisor,
        target: Hypervisor,
        journal: Journal,
        report: Callable[[Progress], None],
        parallel: int,
    ) -> None:
        self.src = source
        self.dst = target
        self.journal = journal
        self.report = report
        self.parallel = parallel
        self.data = journal.plan
        self.disks = [DiskPlan.from_json(d) for d in self.data["disks"]]
        self.nics = [NicPlan.from_json(n) for n in self.data["nics"]]
        self.abort = threading.Event()
        self.imported: dict[str, Volume] = {}  # volume id -> the volume import_disk made (read back as it is)
        # the journal's checksum algorithm: a migration begun by an older release (no "checksum": v1)
        # is compared with the algorithm its source checksums were taken with
        self.algorithm = str(self.data.get("checksum", V1))
        self._check_endpoints()

    def _check_endpoints(self) -> None:
        for side, hv in (("source", self.src), ("target", self.dst)):
            want = self.data[side]
            if hv.kind != want["kind"] or hv.url != want["url"]:
                raise InvalidSpec(f"the journal's {side} is {want['kind']} at {want['url']}, not {hv.kind} at {hv.url}")

    def _step(self, step: str, fn: Callable[[], dict[str, Any]], **begin: Any) -> dict[str, Any]:
        """Run a step once: record begin, do it, record done with what it returns."""
        self.journal.begin(step, **begin)
        point(f"{step}:begin")
        data = fn()
        point(f"{step}:acted")
        self.journal.done(step, **data)
        point(f"{step}:done")
        return data

    # -- forward -------------------------------------------------------------------------------------------------
    def _source_vm(self) -> VM:
        return self.src.vms.get(self.data["vm_id"])

    def _ours(self, vm: VM) -> bool:
        """A target VM with the plan's name is ours only if it was not there when the create step began."""
        state, data = self.journal.state("vm.create")
        return state is not None and "existing" in data and vm.id not in data["existing"]
