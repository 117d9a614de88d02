"""Run, resume and roll back a migration, one journaled step at a time.

Order: prepare the source (check it is stopped / shut it down / take a snapshot, as the user chose),
then for each disk (disks in parallel): export -> checksum on the source side (while the import runs)
-> import (qemu-img converts on the way) -> checksum of what the target holds; then create the target
VM, start it if asked, and clean up (staging files, the snapshot hvkit took). A checksum mismatch
stops before the VM is created, so it is never started.

Any error rolls back by default (``on_error="rollback"``): what was made on the target is deleted,
the staging files too, and the source is put back (snapshot deleted, VM started again if hvkit shut it
down). A killed process leaves the journal: :func:`resume` finishes the job, :func:`rollback` undoes it.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from pathlib import Path
from typing import Any, cast

import attrs

from ..errors import HvkitError, InvalidSpec, InvalidState, NotFound
from ..hypervisor import Hypervisor
from ..models import VM, DiskSpec, NicSpec, PowerState, Snapshot, VMSpec
from ..models.enums import TaskState
from ..tasks import TaskInfo, wait_for
from ._errors import MigrationError, PlanProblems
from ._journal import Journal
from ._migration_plan import DiskPlan, MigrationPlan
from ._results import DiskResult, MigrationResult, Progress, ProgressArg, reporter
from ._runner_base import CRASH_ENV, HOOKS
from ._steps import DiskSteps
from ._verify import ALGORITHM, ALGORITHMS, Checksum

__all__ = ["CRASH_ENV", "HOOKS", "DiskResult", "MigrationResult", "Progress", "resume", "rollback", "run"]


def run(
    plan: MigrationPlan,
    *,
    progress: ProgressArg = None,
    start: bool = False,
    journal_dir: str | os.PathLike[str] | None = None,
    parallel: int = 2,
    on_error: str = "rollback",
    start_timeout: float = 300.0,
    checksum: str = ALGORITHM,
) -> MigrationResult:
    """Carry out ``plan``. Raises :class:`PlanProblems` (nothing changed) when the plan has problems.

    ``progress``: a callable taking :class:`Progress`, or True for lines on stderr. ``start``: start
    the target VM and wait until it runs. ``journal_dir``: where the journal goes (default under
    ``$XDG_STATE_HOME/hvkit/migrations``). ``on_error``: "rollback" (default) undoes everything on an
    error; "keep" leaves it for :func:`resume`. ``checksum``: the disk checksum, ``"hvkit-disk-v3"``
    (XXH3-128, fast; the default), ``"hvkit-disk-v2"`` (BLAKE3: also resists crafted collisions) or
    ``"hvkit-disk-v1"`` (SHA-256, the slowest).
    """
    if on_error not in ("rollback", "keep"):
        raise InvalidSpec(f"on_error must be 'rollback' or 'keep', got {on_error!r}")
    if checksum not in ALGORITHMS:
        raise InvalidSpec(f"checksum must be one of {', '.join(ALGORITHMS)}; got {checksum!r}")
    if not isinstance(parallel, int) or parallel < 1:
        raise InvalidSpec(f"parallel must be a positive integer, got {parallel!r}")
    if plan.problems:
        raise PlanProblems(list(plan.problems))
    data = {**plan.to_json(), "start": bool(start), "checksum": checksum}
    journal = Journal.create(data, directory=Path(journal_dir) if journal_dir else None)
    journal.acquire()
    try:
        runner = Runner(plan.source, plan.target, journal, reporter(progress), parallel)
        return runner.execute(start=start, on_error=on_error, start_timeout=start_timeout)
    finally:
        journal.release()


def resume(
    journal_dir: str | os.PathLike[str],
    source: Hypervisor,
    target: Hypervisor,
    *,
    progress: ProgressArg = None,
    start: bool | None = None,
    parallel: int = 2,
    on_error: str = "keep",
    start_timeout: float = 300.0,
) -> MigrationResult:
    """Finish an interrupted migration from its journal; steps already done are not done again."""
    journal = Journal.open(journal_dir, lock=True)  # a torn last record (a crash mid-write) is cut off
    try:
        status = journal.current_status
        if status == "completed":
            raise InvalidState(f"the migration in {journal.dir} has completed already")
        if status == "rolled-back":
            raise InvalidState(f"the migration in {journal.dir} was rolled back; plan it again")
        runner = Runner(source, target, journal, reporter(progress), parallel)
        if start is None:
            start = journal.state("vm.start")[0] is not None or bool(journal.plan.get("start"))
        journal.status("resumed")
        return runner.execute(start=start, on_error=on_error, start_timeout=start_timeout)
    finally:
        journal.release()


def rollback(journal_dir: str | os.PathLike[str], source: Hypervisor, target: Hypervisor) -> None:
    """Undo an interrupted or failed migration: nothing it made stays on the target; the source is put back."""
    journal = Journal.open(journal_dir, lock=True)
    try:
        if journal.current_status == "completed":
            raise InvalidState(f"the migration in {journal.dir} has completed; delete the target VM instead")
        Runner(source, target, journal, reporter(None), 1).rollback()
    finally:
        journal.release()


class Runner(DiskSteps):
    """Runs the steps in order, disks in parallel; rolls back on an error (see the module doc)."""

    def execute(self, *, start: bool, on_error: str, start_timeout: float) -> MigrationResult:
        t0 = time.monotonic()
        if self.algorithm not in ALGORITHMS:  # refused before any step (a rollback needs no checksum)
            raise InvalidSpec(f"the journal in {self.journal.dir} uses the disk checksum {self.algorithm!r}, which "
                              f"this release does not know (it knows {', '.join(ALGORITHMS)})")  # fmt: skip
        self.journal.staging.mkdir(exist_ok=True)
        try:
            snapshot = self._prepare_source()
            results = self._disks(snapshot)
            vm, early = self._create_vm_verifying(results)
            results = self._verify_all(vm, results, early)
            started = False
            if start:
                vm = self._start(vm, start_timeout)
                started = True
            self._cleanup_success()
        except Exception as exc:
            self.abort.set()
            if on_error == "rollback":
                try:
                    self.rollback()
                except HvkitError as undo_exc:
                    raise MigrationError(f"{exc}; the rollback failed too ({undo_exc}); the journal is in "
                                         f"{self.journal.dir}: call rollback() again") from exc  # fmt: skip
                self._annotate(exc, "the migration was rolled back; nothing is left on the target")
            else:
                self.journal.status("failed", error=str(exc))
                self._annotate(exc, f"the journal is in {self.journal.dir}: resume() or rollback() it")
            raise
        self.journal.status("completed")
        return MigrationResult(vm, tuple(results), str(self.journal.dir), time.monotonic() - t0, started,
                               tuple(self.data.get("warnings", ())))  # fmt: skip

    @staticmethod
    def _annotate(exc: Exception, note: str) -> None:
        exc.add_note(note)

    def _prepare_source(self) -> Snapshot | None:
        step = "source.prepare"
        state, data = self.journal.state(step)
        if state == "done":
            if data.get("mode") == "snapshot":
                return self.src.snapshots.get(self.data["vm_id"], data["snapshot_id"])
            if self._source_vm().power_state is not PowerState.STOPPED:
                raise InvalidState(f"the source VM {self.data['vm_name']!r} was started again; stop it and resume")
            return None
        snap_name = f"hvkit-migrate-{self.journal.dir.name}"[:80]

        prior = data  # what a killed attempt recorded (it may have stopped the VM already)

        def prepare() -> dict[str, Any]:
            vm = self._source_vm()
            was = prior.get("was", vm.power_state.value)
            if prior.get("powering_off"):
                if vm.power_state is not PowerState.STOPPED:
                    self.src.vms.stop(vm, timeout=300.0)
                return {"mode": "powered_off", "was": was}
            if vm.power_state is PowerState.STOPPED and not prior.get("snapshot_name"):
                return {"mode": "stopped", "was": was}
            if self.data["snapshot"]:
                self.journal.begin(step, snapshot_name=snap_name, was=was)
                snaps = [s for s in self.src.snapshots.list(vm) if s.name == snap_name]
                snap = snaps[0] if snaps else self.src.snapshots.create(vm, snap_name, description="taken by hvkit")
                return {"mode": "snapshot", "snapshot_id": snap.id, "snapshot_name": snap_name, "was": was}
            if self.data["power_off"]:
                self.journal.begin(step, powering_off=True, was=was)
                self.src.vms.stop(vm, timeout=300.0)
                return {"mode": "powered_off", "was": was}
            raise InvalidState(f"the source VM {vm.name!r} is {vm.power_state.value}; it must be stopped "
                               "(or plan with power_off=True or snapshot=True)")  # fmt: skip

        data = self._step(step, prepare)
        if data["mode"] == "snapshot":
            return self.src.snapshots.get(self.data["vm_id"], data["snapshot_id"])
        return None

    def _disks(self, snapshot: Snapshot | None) -> list[DiskResult]:
        if not self.disks:
            return []
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(self.parallel, len(self.disks)),
                                                   thread_name_prefix="hvkit-migrate") as pool:  # fmt: skip
            futures = [pool.submit(self._disk, d, snapshot) for d in self.disks]
            errors: list[BaseException] = []
            results: list[DiskResult] = []
            for fut in futures:
                try:
                    results.append(fut.result())
                except BaseException as exc:
                    self.abort.set()
                    errors.append(exc)
            if errors:
                raise errors[0]
        return results

    def _disk(self, d: DiskPlan, snapshot: Snapshot | None) -> DiskResult:
        key = f"disk{d.index}"
        image = self._export(d, snapshot)
        if self.abort.is_set():
            raise MigrationError("stopped: another disk failed")
        with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="hvkit-checksum") as side:
            # the checksum maps the source (and tells its data bytes, so the import needs no map of its own) while
            # the import creates its volume; then it reads the source while the import writes
            known: list[int] = []
            ready = threading.Event()

            def mapped(n: int) -> None:
                known.append(n)
                ready.set()

            def data_bytes() -> int:
                ready.wait()
                if not known:
                    src_sum.result()  # the checksum failed before its map: its error
                    raise MigrationError(f"disk {d.name}: the source checksum ended without a map")
                return known[0]

            src_sum = side.submit(self._source_checksum, d, image, mapped)
            src_sum.add_done_callback(lambda _: ready.set())
            try:
                vol, import_moved = self._import(d, attrs.evolve(image, data_bytes=data_bytes))
            finally:
                source_check: Checksum | dict[str, Any] = src_sum.result()
        if self.abort.is_set():
            raise MigrationError("stopped: another disk failed")
        source_value = source_check.value if isinstance(source_check, Checksum) else source_check["value"]
        allocated = source_check.data_bytes if isinstance(source_check, Checksum) else source_check["data_bytes"]
        export_moved = int(self.journal.state(f"{key}.export")[1].get("bytes_moved", 0))
        self.imported[vol.id] = vol
        return DiskResult(d.name, vol.id, d.size, source_value, None, allocated, export_moved + import_moved)

    def _create_vm_verifying(self, results: list[DiskResult]) -> tuple[VM, dict[str, str]]:
        """Create the target VM while the imported volumes are read back and verified (when the VM uses them
        as they are); return the VM and the verified checksums by volume id."""
        if not self.data["verify"] or not results or self.dst.backend.create_copies_volumes:
            return self._create_vm(results), {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(self.parallel, len(results)),
                                                   thread_name_prefix="hvkit-verify") as pool:  # fmt: skip
            futures = {r.volume: pool.submit(self._verify, d, r.volume, r.source_checksum)
                       for d, r in zip(self.disks, results, strict=True)}  # fmt: skip
            try:
                vm = self._create_vm(results)
            except BaseException:
                concurrent.futures.wait(futures.values())  # their journal records are written before the rollback
                raise
            return vm, {volume: fut.result() for volume, fut in futures.items()}  # a mismatch raises here

    def _verify_all(self, vm: VM, results: list[DiskResult], verified: dict[str, str]) -> list[DiskResult]:
        """Match the new VM's disks to the plan's (in order); drop import files the target copied; verify
        the disks not ``verified`` already."""
        if len(vm.disks) != len(self.disks):
            raise MigrationError(f"the target VM has {len(vm.disks)} disks; {len(self.disks)} were imported")
        adopted = []
        for d, r, disk in zip(self.disks, results, vm.disks, strict=True):
            if disk.volume is None:
                raise MigrationError(f"the target VM's disk {disk.name!r} is not a volume hvkit can read back")
            if disk.volume != r.volume:  # the target copied the import (e.g. Proxmox import-from): drop the file
                step = f"disk{d.index}.import_cleanup"
                if not self.journal.is_done(step):
                    self._step(step, lambda d=d, r=r: self._drop_volume(d, r.volume))  # type: ignore[misc]
            adopted.append(attrs.evolve(r, volume=disk.volume))
        if not self.data["verify"]:
            return adopted
        todo = [(d, r) for d, r in zip(self.disks, adopted, strict=True) if r.volume not in verified]
        if todo:
            with concurrent.futures.ThreadPoolExecutor(max_workers=min(self.parallel, len(todo)),
                                                       thread_name_prefix="hvkit-verify") as pool:  # fmt: skip
                values = pool.map(lambda pair: self._verify(pair[0], pair[1].volume, pair[1].source_checksum), todo)
                verified = {**verified, **{r.volume: v for (_, r), v in zip(todo, values, strict=True)}}
        return [attrs.evolve(r, target_checksum=verified[r.volume]) for r in adopted]

    def _create_vm(self, results: list[DiskResult]) -> VM:
        step = "vm.create"
        state, data = self.journal.state(step)
        name = self.data["name"]
        if state == "done":
            try:
                return self.dst.vms.get(data["vm"])
            except NotFound:
                pass
        if state is not None:
            self._delete_target_vm(data.get("vm"))
        existing = [v.id for v in self.dst.vms.list() if v.name == name]
        by_index = {d.index: r for d, r in zip(self.disks, results, strict=True)}
        # pool and format: where and how a target that copies at create (Proxmox import-from) puts the disk
        disks = [
            DiskSpec(volume=by_index[d.index].volume, pool=d.target_pool, format=d.target_format, bus=d.target_bus)
            for d in self.disks
        ]
        spec = VMSpec(
            name=name,
            cpus=self.data["cpus"],
            memory_mib=self.data["memory_mib"],
            disks=cast(Any, disks),
            nics=cast(Any, [NicSpec(network=n.network, mac=n.mac, model=n.model) for n in self.nics]),
            firmware=self.data["firmware"],
            guest_os=self.data["guest_os"],
            notes=self.data.get("notes", ""),
        )
        made: list[VM] = []

        def create() -> dict[str, Any]:
            self.report(Progress("", "create", 0, 1))
            vm = self.dst.vms.create(spec)
            made.append(vm)
            self.report(Progress("", "create", 1, 1))
            return {"vm": vm.id}

        self._step(step, create, existing=existing)
        return made[0]

    def _start(self, vm: VM, timeout: float) -> VM:
        step = "vm.start"
        out: list[VM] = []

        def start() -> dict[str, Any]:
            self.report(Progress("", "start", 0, 1))
            cur = self.dst.vms.get(vm.id)
            if cur.power_state is not PowerState.RUNNING:
                cur = self.dst.vms.start(cur, timeout=timeout)
            if cur.power_state is not PowerState.RUNNING:  # a vendor that reports "starting" first

                def read() -> TaskInfo:
                    state = self.dst.vms.get(vm.id).power_state
                    return TaskInfo(TaskState.SUCCESS if state is PowerState.RUNNING else TaskState.RUNNING)

                wait_for(read, timeout=timeout, what=f"the start of the target VM {cur.name!r}", max_interval=1.0)
                cur = self.dst.vms.get(vm.id)
            out.append(cur)
            self.report(Progress("", "start", 1, 1))
            return {}

        if self.journal.is_done(step):
            return self.dst.vms.get(vm.id)
        self._step(step, start)
        return out[0]
