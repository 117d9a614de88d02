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
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

import attrs

from ..backend import DiskImage
from ..errors import HvkitError, InvalidSpec, InvalidState, NotFound
from ..hypervisor import Hypervisor
from ..models import VM, DiskFormat, DiskSpec, NicSpec, PowerState, Snapshot, StoragePool, VMSpec, Volume
from ..models.enums import TaskState
from ..tasks import TaskInfo, wait_for
from ._errors import ChecksumMismatch, MigrationError, PlanProblems
from ._journal import Journal
from ._plan import DiskPlan, NicPlan, Plan
from ._verify import ALGORITHM, ALGORITHMS, V1, Checksum, algorithm_of, checksum

__all__ = ["CRASH_ENV", "HOOKS", "DiskResult", "MigrationResult", "Progress", "resume", "rollback", "run"]

CRASH_ENV = "HVKIT_MIGRATION_CRASH_AT"  # tests: "step:point" -> the process kills itself (SIGKILL) there
HOOKS: dict[str, Callable[[], None]] = {}  # tests: "step:point" -> called there (may raise)


@attrs.frozen
class Progress:
    """One progress report: ``disk`` ("" for VM steps), ``phase``, and bytes ``done`` of ``total``."""

    disk: str
    phase: str  # export, checksum, import, verify, create, start, cleanup, done
    done: int
    total: int


ProgressArg = Callable[[Progress], None] | bool | None


@attrs.frozen
class DiskResult:
    name: str
    volume: str  # the target volume id
    size: int
    source_checksum: str
    target_checksum: str | None  # None when verify=False
    bytes_allocated: int  # data bytes the source disk holds (what was read and hashed)
    bytes_moved: int  # bytes that crossed the vendors' APIs (export + import)

    @property
    def verified(self) -> bool:
        return self.target_checksum == self.source_checksum


@attrs.frozen
class MigrationResult:
    vm: VM  # the new VM on the target
    disks: tuple[DiskResult, ...]
    journal: str
    seconds: float
    started: bool
    warnings: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return all(d.verified for d in self.disks)

    @property
    def bytes_moved(self) -> int:
        return sum(d.bytes_moved for d in self.disks)

    def __str__(self) -> str:
        lines = [f"VM {self.vm.name!r} is on the target ({self.vm.power_state.value}) after {self.seconds:.1f} s"]
        for d in self.disks:
            state = "verified" if d.verified else "NOT verified" if d.target_checksum else "not checked"
            lines.append(f"  disk {d.name}: {state}; source {d.source_checksum}, target {d.target_checksum}; "
                         f"{d.bytes_moved} bytes moved for {d.bytes_allocated} allocated")  # fmt: skip
        lines.append(f"  journal: {self.journal}")
        return "\n".join(lines)


def run(
    plan: Plan,
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
        runner = _Runner(plan.source, plan.target, journal, _reporter(progress), parallel)
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
        runner = _Runner(source, target, journal, _reporter(progress), parallel)
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
        _Runner(source, target, journal, _reporter(None), 1).rollback()
    finally:
        journal.release()


# -- progress ------------------------------------------------------------------------------------------------
def _reporter(progress: ProgressArg) -> Callable[[Progress], None]:
    if progress is None or progress is False:
        return lambda p: None
    if progress is True:
        return _StderrProgress(sys.stderr)
    if not callable(progress):
        raise InvalidSpec("progress must be a callable taking a Progress, or True")
    lock = threading.Lock()
    user = progress

    def report(p: Progress) -> None:
        with lock:
            user(p)

    return report


class _StderrProgress:
    """Plain progress lines (the CLI draws bars); at most one line per disk and phase every 10%."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.last: dict[tuple[str, str], int] = {}

    def __call__(self, p: Progress) -> None:
        pct = 100 if p.total <= 0 else min(100, p.done * 100 // p.total)
        key = (p.disk, p.phase)
        with self.lock:
            if key in self.last and pct < 100 and pct - self.last[key] < 10:
                return
            if self.last.get(key) == 100:
                return
            self.last[key] = pct
            self.out.write(f"{p.disk or 'vm'}: {p.phase} {pct}%\n")
            self.out.flush()


# -- the runner ------------------------------------------------------------------------------------------------
def _point(name: str) -> None:
    """A named place in the run where tests kill the process or inject a failure."""
    if name in (os.environ.get(CRASH_ENV) or "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)
    hook = HOOKS.get(name)
    if hook is not None:
        hook()


class _Runner:
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
        _point(f"{step}:begin")
        data = fn()
        _point(f"{step}:acted")
        self.journal.done(step, **data)
        _point(f"{step}:done")
        return data

    # -- forward -------------------------------------------------------------------------------------------------
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

    def _source_vm(self) -> VM:
        return self.src.vms.get(self.data["vm_id"])

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

    def _drop_volume(self, d: DiskPlan, volume_id: str) -> dict[str, Any]:
        try:
            self.dst.volumes.delete(volume_id)
        except NotFound:
            pass
        return {}

    def _export(self, d: DiskPlan, snapshot: Snapshot | None) -> DiskImage:
        step = f"disk{d.index}.export"
        state, data = self.journal.state(step)
        if state == "done" and (not data["temporary"] or Path(data["path"]).is_file()):
            return DiskImage(
                data["path"], DiskFormat(data["format"]), data["size"], data["temporary"], data["bytes_moved"]
            )

        def export() -> dict[str, Any]:
            volume = self.src.volumes.get(d.source_volume)
            moved = 0

            def prog(done: int, total: int) -> None:
                self.report(Progress(d.name, "export", done, total))

            with self.src.translating("export_disk"):
                img = self.src.backend.export_disk(volume, str(self.journal.staging), prog, snapshot)
            moved = img.bytes_moved
            self.report(Progress(d.name, "export", d.size, d.size))
            return {"path": img.path, "format": img.format.value, "size": img.size, "temporary": img.temporary,
                    "bytes_moved": moved}  # fmt: skip

        data = self._step(step, export)
        return DiskImage(data["path"], DiskFormat(data["format"]), data["size"], data["temporary"], data["bytes_moved"])

    def _source_checksum(
        self, d: DiskPlan, image: DiskImage, mapped: Callable[[int], None]
    ) -> Checksum | dict[str, Any]:
        step = f"disk{d.index}.checksum"
        state, data = self.journal.state(step)
        if state == "done":
            mapped(int(data["data_bytes"]))
            return data

        def prog(done: int, total: int) -> None:
            self.report(Progress(d.name, "checksum", done, total))

        result: list[Checksum] = []

        def compute() -> dict[str, Any]:
            # one hashing thread: the import's qemu-img convert runs at the same time on the other core
            ck = checksum(
                image,
                size=d.size,
                progress=prog,
                workdir=str(self.journal.staging),
                workers=1,
                algorithm=self.algorithm,
                mapped=mapped,
                # qemu-img maps the source: its process holds no lock the import's thread needs meanwhile, and
                # the target is then read back with hvkit's own reader: two independent readers must agree
                qemu_map=True,
            )
            result.append(ck)
            return {"value": ck.value, "data_bytes": ck.data_bytes, "algorithm": self.algorithm}

        self._step(step, compute)
        return result[0]

    def _import(self, d: DiskPlan, image: DiskImage) -> tuple[Volume, int]:
        step = f"disk{d.index}.import"
        state, data = self.journal.state(step)
        if state == "done" and data.get("volume"):
            try:
                return self.dst.volumes.get(data["volume"]), int(data.get("bytes_moved", 0))
            except NotFound:
                pass
        if state in ("begin", "done"):  # begun (or done but gone): clear what a killed attempt left
            self._clear_import(d, data)
        pool = self.dst.pools.get(d.target_pool)
        # what the import will write, recorded (fsynced) before it writes: a kill before import_disk returns
        # leaves no volume id in the journal, and perhaps a file the target never registered
        target = data.get("target") or _target_of(self.dst, pool, d)
        moved = [0]

        def prog(done: int, total: int) -> None:
            moved[0] = max(moved[0], done)
            self.report(Progress(d.name, "import", done, total))

        vols: list[Volume] = []

        def do_import() -> dict[str, Any]:
            with self.dst.translating("import_disk"):
                vol = self.dst.backend.import_disk(pool, d.target_volume, image, d.target_format,
                                                   str(self.journal.staging), prog)  # fmt: skip
            vols.append(vol)
            return {"volume": vol.id, "bytes_moved": moved[0]}

        self._step(step, do_import, target=target)
        return vols[0], moved[0]

    def _verify(self, d: DiskPlan, volume_id: str, source_value: str) -> str:
        step = f"disk{d.index}.verify"
        state, data = self.journal.state(step)
        if state == "done" and data.get("value") == source_value:
            return str(data["value"])

        def prog(done: int, total: int) -> None:
            self.report(Progress(d.name, "verify", done, total))

        algorithm = algorithm_of(source_value)  # the source checksum's own: v1 on a resumed v1 journal
        if algorithm != self.algorithm:
            raise MigrationError(f"disk {d.name}: the source checksum {source_value} is not {self.algorithm}, "
                                 "the journal's algorithm; roll the migration back and run it again")  # fmt: skip

        def verify() -> dict[str, Any]:
            current = self.imported.get(volume_id) or self.dst.volumes.get(volume_id)
            with self.dst.translating("export_disk"):
                img = self.dst.backend.export_disk(current, str(self.journal.staging), lambda a, b: None, None)
            try:
                ck = checksum(img, size=d.size, progress=prog, workdir=str(self.journal.staging), algorithm=algorithm)
            finally:
                if img.temporary:
                    Path(img.path).unlink(missing_ok=True)
            if ck.value != source_value:
                raise ChecksumMismatch(d.name, source_value, ck.value)
            if not ck.tail_zero:
                raise ChecksumMismatch(d.name, source_value, ck.value + " (and non-zero bytes past the source's end)")
            return {"value": ck.value}

        return str(self._step(step, verify)["value"])

    def _ours(self, vm: VM) -> bool:
        """A target VM with the plan's name is ours only if it was not there when the create step began."""
        state, data = self.journal.state("vm.create")
        return state is not None and "existing" in data and vm.id not in data["existing"]

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

    def _cleanup_success(self) -> None:
        data = self.journal.state("source.prepare")[1]
        if data.get("mode") == "snapshot" and not self.journal.is_done("source.cleanup"):

            def drop() -> dict[str, Any]:
                try:
                    snap = self.src.snapshots.get(self.data["vm_id"], data["snapshot_id"])
                    self.src.snapshots.delete(snap)
                except NotFound:
                    pass
                return {}

            self._step("source.cleanup", drop)
        shutil.rmtree(self.journal.staging, ignore_errors=True)

    # -- backward ------------------------------------------------------------------------------------------------
    def _clear_import(self, d: DiskPlan, data: dict[str, Any]) -> None:
        """Delete what an import step wrote on the target, known by identity: the volume id it recorded, else
        a volume that was not there when the step began and has the recorded path (or, where the vendor
        tells no path, one of the exact names the planned volume takes); then an image file the target never
        registered (a kill in the middle of making it) at a recorded path, where the pool is on this machine."""
        volume_id = data.get("volume")
        if volume_id:
            try:
                self.dst.volumes.delete(volume_id)
            except NotFound:
                pass
        target = data.get("target") or _target_of(self.dst, None, d, probe=False)  # a journal of an older release
        present = set(target.get("present", ()))
        for vol in self.dst.volumes.list(target["pool"]):
            if vol.id not in present and _is_target(vol, target):
                try:
                    self.dst.volumes.delete(vol)
                except NotFound:
                    pass
        if not _files_here(self.dst):
            return
        registered = {v.path for v in self.dst.volumes.list(target["pool"]) if v.path}
        for path in target.get("paths", ()):
            if path not in present and path not in registered and os.path.lexists(path):
                Path(path).unlink(missing_ok=True)

    def _delete_target_vm(self, vm_id: str | None) -> None:
        """Delete the VM this migration made (and its disks); a VM of the same name that is not ours stays."""
        name = self.data["name"]
        imported = {self.journal.state(f"disk{d.index}.import")[1].get("volume") for d in self.disks}
        for vm in self.dst.vms.list():
            if vm.id == vm_id or (vm.name == name and self._ours(vm)):
                # keep the imported volumes (a resume attaches them again; a rollback deletes them next);
                # disks the target copied from them at create time (import-from) go with the VM
                full = self.dst.vms.get(vm.id)  # a listed VM may come without its disks (Proxmox)
                keep = any(disk.volume in imported for disk in full.disks)
                self.dst.vms.delete(full, keep_disks=keep, force=True)
                if not keep:  # no imported volume in the VM: its disks are copies, deleted with it
                    continue
                for disk in full.disks:
                    if disk.volume and disk.volume not in imported:
                        try:
                            self.dst.volumes.delete(disk.volume)
                        except NotFound:
                            pass

    def rollback(self) -> None:
        """Undo every step begun, newest first; the source is put back as it was."""
        self.journal.status("rolling-back")
        errors: list[str] = []

        def undo(step: str, fn: Callable[[], None]) -> None:
            try:
                fn()
                self.journal.undone(step)
            except HvkitError as exc:
                errors.append(f"{step}: {exc}")

        begun = self.journal.begun()
        if "vm.start" in begun or "vm.create" in begun:
            data = self.journal.state("vm.create")[1]
            undo("vm.create", lambda: self._delete_target_vm(data.get("vm")))
            if "vm.start" in begun:
                self.journal.undone("vm.start")
        for d in reversed(self.disks):
            for kind in ("verify", "import", "checksum", "export"):
                step = f"disk{d.index}.{kind}"
                if step not in begun:
                    continue
                if kind == "import":
                    data = self.journal.state(step)[1]
                    undo(step, lambda d=d, data=data: self._clear_import(d, data))  # type: ignore[misc]
                elif kind == "export":
                    data = self.journal.state(step)[1]

                    def drop(data: dict[str, Any] = data) -> None:
                        if data.get("temporary") and data.get("path"):
                            Path(data["path"]).unlink(missing_ok=True)

                    undo(step, drop)
                else:
                    undo(step, lambda: None)
        if "source.prepare" in begun:
            undo("source.prepare", self._restore_source)
        shutil.rmtree(self.journal.staging, ignore_errors=True)
        if errors:
            self.journal.status("rollback-failed", errors=errors)
            raise MigrationError("the rollback could not undo everything: " + "; ".join(errors))
        self.journal.status("rolled-back")

    def _restore_source(self) -> None:
        _, data = self.journal.state("source.prepare")
        if data.get("snapshot_name") or data.get("snapshot_id"):
            for snap in self.src.snapshots.list(self.data["vm_id"]):
                if snap.id == data.get("snapshot_id") or snap.name == data.get("snapshot_name"):
                    self.src.snapshots.delete(snap)
        if data.get("powering_off") or data.get("mode") == "powered_off":
            vm = self._source_vm()
            if data.get("was") == PowerState.RUNNING.value and vm.power_state is PowerState.STOPPED:
                self.src.vms.start(vm)


# -- what an import writes on the target ----------------------------------------------------------------------
_EXTENSIONS = {"vpc": "vhd"}


def _target_of(hv: Hypervisor, pool: StoragePool | None, d: DiskPlan, *, probe: bool = True) -> dict[str, Any]:
    """The identity of what importing ``d`` writes: the pool, the exact names the plan's volume takes on the
    vendors (``NAME``, ``NAME.EXT``; Proxmox: ``import/NAME.qcow2``), its possible files in the pool's directory
    when the target tells it, and (``probe``) which of those volumes and files were there before (never ours)."""
    name = d.target_volume
    ext = _EXTENSIONS.get(d.target_format.value, d.target_format.value)
    names = sorted({name, f"{name}.{ext}", f"{name}.qcow2"})
    folder = str(pool.extra.get("path") or "") if pool is not None else ""
    paths = sorted({str(Path(folder) / n) for n in (name, f"{name}.{ext}")}) if folder else []
    target: dict[str, Any] = {"pool": d.target_pool, "names": names, "paths": paths, "present": []}
    if probe:
        present = [v.id for v in hv.volumes.list(d.target_pool) if _is_target(v, target)]
        present += [p for p in paths if os.path.lexists(p)]
        target["present"] = present
    return target


def _is_target(vol: Volume, target: dict[str, Any]) -> bool:
    """Whether ``vol`` is the recorded import target: by its path where both sides know one, else exact names."""
    if vol.path and target.get("paths"):
        return vol.path in target["paths"]
    return vol.name in target["names"] or vol.name.rsplit("/", 1)[-1] in target["names"]


def _files_here(hv: Hypervisor) -> bool:
    """Whether the target's pool directories are on this machine, so a file it never registered can be found
    there: sim pools always are; any target whose connection says ``local_files=true``."""
    return hv.kind == "sim" or hv.backend.options.bool_option("local_files", False)
