"""A replica of a VM on another hypervisor: the first sync, incremental syncs, points, failover, failback."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ..errors import InvalidSpec, InvalidState, NotFound, Unsupported
from ..hypervisor import Hypervisor
from ..migration import Journal, plan
from ..migration import resume as resume_migration
from ..models import VM, PowerState
from ._cbt import begin_checkpoint, changed_fn, end_checkpoint
from ._state import ReplicaDisk, ReplicaPoint, ReplicationState, default_root
from ._sync import DiskPair, DiskSync, MapStore, ProgressFn, SyncResult, clear_staging, drop_source_snapshot, sync_disks

__all__ = ["Replica", "create"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def _endpoint(hv: Hypervisor) -> dict[str, str]:
    return {"kind": hv.kind, "url": hv.url}


def _check(state: ReplicationState, side: str, hv: Hypervisor | None) -> None:
    want = state.source if side == "source" else state.target
    if hv is not None and (hv.kind != want["kind"] or hv.url != want["url"]):
        raise InvalidSpec(f"the replication's {side} is {want['kind']} at {want['url']}, not {hv.kind} at {hv.url}")


def create(
    source: Hypervisor,
    vm: VM | str,
    target: Hypervisor,
    *,
    name: str | None = None,
    replica_name: str | None = None,
    network_map: Mapping[str, str] | None = None,
    storage_map: Mapping[str, str] | None = None,
    disk_format: str | None = "qcow2",
    keep_macs: bool = True,
    keep: int = 3,
    cbt: bool = True,
    directory: str | os.PathLike[str] | None = None,
) -> Replica:
    """Make a replica of ``vm`` on ``target``: a migration copy from a snapshot (the source keeps running).

    ``name``: the replication's name (default: the VM's); its record goes to ``directory`` (default
    ``$HVKIT_REPLICATION_DIR`` or ``$XDG_STATE_HOME/hvkit/replications/<name>``). ``replica_name``: the
    replica VM's name (default ``<vm>-replica``). ``keep_macs=False``: new MAC addresses (a replica on the same
    network as its source). ``keep``: replica points kept (0: none; a point is a
    snapshot of the replica VM, so its volumes need a format with snapshots, qcow2 by default). ``cbt``: use the
    source's changed-block tracking where its backend has it (else, and with ``cbt=False``, block hashes).
    """
    if not isinstance(keep, int) or keep < 0:
        raise InvalidSpec(f"keep must be a non-negative integer, got {keep!r}")
    src_vm = vm if isinstance(vm, VM) else source.vms.get(vm)
    rname = name or src_vm.name
    if not _NAME.fullmatch(rname):
        raise InvalidSpec(f"replication name {rname!r}: letters, digits, '_', '.', '-' (at most 63)")
    where = Path(directory) if directory else default_root() / rname
    if (where / "replication.json").exists():
        raise InvalidSpec(f"a replication named {rname!r} exists already ({where})")
    the_plan = plan(source, src_vm, target, name=replica_name or f"{src_vm.name}-replica",
                    network_map=network_map, storage_map=storage_map, disk_format=disk_format, snapshot=True,
                    keep_macs=keep_macs, allow_snapshot_loss=True)  # fmt: skip
    where.mkdir(parents=True, exist_ok=True)
    state = ReplicationState(where, rname, _endpoint(source), _endpoint(target), src_vm.id, "", [], keep)
    state.state = "seeding"
    state.syncs.append(str(where / "syncs" / "0001-initial"))
    disks = [{"name": d.name, "source_volume": d.source_volume, "size": d.size} for d in the_plan.disks]
    (where / "seed.json").write_text(json.dumps(disks))
    state.save()
    journal_dir = Path(state.syncs[-1])
    if cbt and src_vm.power_state is PowerState.RUNNING:  # tracking begins before the first sync's snapshot
        journal_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = f"hvkit-{rname}-0001"
        try:
            with source.translating("track_changes"):
                source.backend.track_changes(src_vm, checkpoint)
            state.cbt = {"checkpoint": checkpoint}
            state.save()
        except (Unsupported, InvalidState):
            pass
    try:
        result = the_plan.run(journal_dir=journal_dir)
    except BaseException:
        if _undone(journal_dir):  # rolled back (or never begun): nothing of the replication stays
            if state.cbt:
                end_checkpoint(source, src_vm.id, state.cbt["checkpoint"])
            shutil.rmtree(where, ignore_errors=True)
        raise
    replica = Replica(state)
    replica._seeded(target, result.vm.id, [(r.volume, r.source_checksum) for r in result.disks])
    return replica


class Replica:
    """One replication (see the module); load it with :meth:`load`, by name or directory."""

    def __init__(self, state: ReplicationState) -> None:
        self.state = state

    @classmethod
    def load(cls, where: str | os.PathLike[str]) -> Replica:
        return cls(ReplicationState.load(where))

    def __repr__(self) -> str:
        s = self.state
        return f"<Replica {s.name!r} {s.state}: {s.source['kind']} -> {s.target['kind']}, {len(s.points)} points>"

    # -- first sync ------------------------------------------------------------------------------------------
    def _seeded(self, target: Hypervisor, vm_id: str, volumes: list[tuple[str, str]]) -> None:
        seed = json.loads((self.state.directory / "seed.json").read_text())
        self.state.replica_vm = vm_id
        self.state.disks = [
            ReplicaDisk(d["name"], d["source_volume"], vol, int(d["size"]), _format_of(target, vol), value)
            for d, (vol, value) in zip(seed, volumes, strict=True)
        ]
        self.state.state = "replicating"
        self.state.save()
        self._point(target, [d.checksum for d in self.state.disks], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    # -- incremental syncs ---------------------------------------------------------------------------------
    def sync(
        self, source: Hypervisor, target: Hypervisor, *, progress: ProgressFn | None = None, cbt: bool = True
    ) -> SyncResult:
        """Send what changed on the source since the last sync; ends with both checksums equal."""
        _check(self.state, "source", source)
        _check(self.state, "target", target)
        if self.state.state == "seeding":
            raise InvalidState(f"the first sync of {self.state.name!r} did not finish: resume() it")
        if self.state.state == "failed-over":
            raise InvalidState(f"{self.state.name!r} has failed over to the replica; fail back first")
        replica_vm = target.vms.get(self.state.replica_vm)
        if replica_vm.power_state is not PowerState.STOPPED:
            raise InvalidState(f"the replica VM {replica_vm.name!r} is {replica_vm.power_state.value}; stop it first")
        number = len(self.state.syncs) + 1
        directory = self.state.directory / "syncs" / f"{number:04d}"
        journal = Journal.create({"kind": "replication-sync", "name": self.state.name, "direction": "forward"},
                                 directory=directory)  # fmt: skip
        self.state.syncs.append(str(directory))
        self.state.save()
        return self._run(journal, source, target, progress, cbt=cbt)

    def resume(
        self, source: Hypervisor, target: Hypervisor, *, progress: ProgressFn | None = None
    ) -> SyncResult | None:
        """Finish the last sync (or the first one) a crash or an error interrupted; None if none was."""
        _check(self.state, "source", source)
        _check(self.state, "target", target)
        if not self.state.syncs:
            return None
        last = Path(self.state.syncs[-1])
        if self.state.state == "seeding":
            result = resume_migration(last, source, target)
            self._seeded(target, result.vm.id, [(r.volume, r.source_checksum) for r in result.disks])
            return None
        journal = Journal.open(last, lock=True)
        if journal.current_status == "completed":
            journal.release()
            return None
        if journal.plan.get("direction") == "back":
            journal.release()
            raise InvalidState(f"the last sync of {self.state.name!r} was a failback: call failback() again")
        journal.status("resumed")
        return self._run(journal, source, target, progress, locked=True)

    def _run(
        self, journal: Journal, source: Hypervisor, target: Hypervisor, progress: ProgressFn | None,
        *, locked: bool = False, cbt: bool = True,
    ) -> SyncResult:  # fmt: skip
        t0 = time.monotonic()
        if not locked:
            journal.acquire()
        try:
            pairs = [DiskPair(d.name, d.source_volume, d.replica_volume, d.size) for d in self.state.disks]
            previous = self.state.cbt.get("checkpoint")
            checkpoint = (
                begin_checkpoint(journal, source, self.state.source_vm, f"hvkit-{self.state.name}-{journal.dir.name}")
                if cbt
                else None
            )
            changed = None
            if previous and checkpoint:
                changed = changed_fn(source, self.state.source_vm, previous, str(journal.staging))
            try:
                maps = MapStore(self.state.directory / "maps", {d.replica_volume: d.checksum for d in self.state.disks})
                results = sync_disks(journal, source, self.state.source_vm, target, pairs, changed=changed,
                                     progress=progress, maps=maps)  # fmt: skip
            except Exception as exc:
                journal.status("failed", error=str(exc))
                exc.add_note(f"the sync's journal is in {journal.dir}: resume() it")
                raise
            taken = str(journal.state("source.snapshot")[1].get("taken", ""))
            drop_source_snapshot(journal, source, self.state.source_vm)
            if previous and previous != checkpoint:
                end_checkpoint(source, self.state.source_vm, previous)
            self.state.cbt = {"checkpoint": checkpoint} if checkpoint else {}
            self.state.disks = _with_checksums(self.state.disks, results)
            self.state.save()
            point = None
            if not journal.is_done("replica.point"):
                journal.begin("replica.point")
                point = self._point(target, [r.source_checksum for r in results], taken)
                journal.done("replica.point", number=point)
            clear_staging(journal)
            journal.status("completed")
            return SyncResult(tuple(results), time.monotonic() - t0, str(journal.dir), point)
        finally:
            journal.release()

    # -- replica points ------------------------------------------------------------------------------------
    def _point(self, target: Hypervisor, checksums: list[str], taken: str) -> int | None:
        if self.state.keep == 0:
            return None
        number = (self.state.points[-1].number + 1) if self.state.points else 1
        snap = target.snapshots.create(self.state.replica_vm, f"hvkit-point-{number}", memory=False,
                                       description=f"replica point {number}: the source as of {taken}")  # fmt: skip
        self.state.points.append(ReplicaPoint(number, snap.id, taken, tuple(checksums)))
        while len(self.state.points) > self.state.keep:
            old = self.state.points.pop(0)
            try:
                target.snapshots.delete(target.snapshots.get(self.state.replica_vm, old.snapshot))
            except NotFound:
                pass
        self.state.save()
        return number

    @property
    def points(self) -> list[ReplicaPoint]:
        return list(self.state.points)

    def _revert(self, target: Hypervisor, number: int) -> None:
        found = [p for p in self.state.points if p.number == number]
        if not found:
            raise NotFound(f"replication {self.state.name!r} has no point {number} (it has "
                           f"{', '.join(str(p.number) for p in self.state.points) or 'none'})")  # fmt: skip
        target.snapshots.revert(target.snapshots.get(self.state.replica_vm, found[0].snapshot))

    # -- failover / failback -------------------------------------------------------------------------------
    def failover(
        self, target: Hypervisor, *, source: Hypervisor | None = None, point: int | None = None,
        stop_source: bool = False, timeout: float = 300.0,
    ) -> VM:  # fmt: skip
        """Start the replica (as of replica point ``point``, else the last sync); ``stop_source``: stop the
        source VM first (``source`` needed). The replica VM is returned running."""
        _check(self.state, "target", target)
        _check(self.state, "source", source)
        if stop_source:
            if source is None:
                raise InvalidSpec("stop_source=True needs the source connection")
            vm = source.vms.get(self.state.source_vm)
            if vm.power_state is not PowerState.STOPPED:
                source.vms.stop(vm, timeout=timeout)
        if point is not None:
            self._revert(target, point)
        vm = target.vms.get(self.state.replica_vm)
        if vm.power_state is not PowerState.RUNNING:
            vm = target.vms.start(vm, timeout=timeout)
        self.state.state = "failed-over"
        self.state.save()
        return vm

    def failback(
        self, source: Hypervisor, target: Hypervisor, *, start_source: bool = True, timeout: float = 300.0,
        progress: ProgressFn | None = None,
    ) -> SyncResult:  # fmt: skip
        """Sync what changed on the replica back into the source VM's disks (the source VM must be stopped; the
        replica is stopped first, so nothing is lost), then start the source if asked; replication goes on."""
        _check(self.state, "source", source)
        _check(self.state, "target", target)
        src_vm = source.vms.get(self.state.source_vm)
        if src_vm.power_state is not PowerState.STOPPED:
            raise InvalidState(f"the source VM {src_vm.name!r} is {src_vm.power_state.value}; stop it to fail back")
        replica = target.vms.get(self.state.replica_vm)
        if replica.power_state is not PowerState.STOPPED:
            target.vms.stop(replica, timeout=timeout)
        t0 = time.monotonic()
        directory = self.state.directory / "syncs" / f"{len(self.state.syncs) + 1:04d}-back"
        journal = Journal.create({"kind": "replication-sync", "name": self.state.name, "direction": "back"},
                                 directory=directory)  # fmt: skip
        self.state.syncs.append(str(directory))
        self.state.save()
        journal.acquire()
        try:
            pairs = [DiskPair(d.name, d.replica_volume, d.source_volume, d.size) for d in self.state.disks]
            results = sync_disks(journal, target, self.state.replica_vm, source, pairs, progress=progress)
            clear_staging(journal)
            journal.status("completed")
        finally:
            journal.release()
        self.state.disks = _with_checksums(self.state.disks, results)
        self.state.state = "replicating"
        self.state.save()
        if start_source:
            source.vms.start(self.state.source_vm, timeout=timeout)
        return SyncResult(tuple(results), time.monotonic() - t0, str(journal.dir))

    def remove(self, source: Hypervisor | None, target: Hypervisor, *, keep_replica: bool = False) -> None:
        """End the replication: delete the replica VM with its disks and points (unless ``keep_replica``), the
        source's checkpoint (``source`` given) and the record. A replica that runs (failed over) is kept."""
        _check(self.state, "source", source)
        _check(self.state, "target", target)
        if self.state.replica_vm and not keep_replica:
            try:
                vm = target.vms.get(self.state.replica_vm)
            except NotFound:
                vm = None
            if vm is not None:
                if self.state.state == "failed-over" or vm.power_state is not PowerState.STOPPED:
                    raise InvalidState(f"the replica VM {vm.name!r} is in use ({vm.power_state.value}); "
                                       "remove(keep_replica=True) keeps it")  # fmt: skip
                for snap in target.snapshots.list(vm):
                    if any(p.snapshot == snap.id for p in self.state.points):
                        target.snapshots.delete(snap)
                target.vms.delete(target.vms.get(vm.id), keep_disks=False)
        if source is not None and self.state.cbt.get("checkpoint"):
            end_checkpoint(source, self.state.source_vm, self.state.cbt["checkpoint"])
        shutil.rmtree(self.state.directory, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        s = self.state
        return {"name": s.name, "state": s.state, "source": s.source, "target": s.target, "source_vm": s.source_vm,
                "replica_vm": s.replica_vm, "disks": [d.name for d in s.disks],
                "points": [{"number": p.number, "taken": p.taken} for p in s.points],
                "syncs": len(s.syncs)}  # fmt: skip


def _undone(journal_dir: Path) -> bool:
    try:
        return Journal.open(journal_dir, repair=False).current_status == "rolled-back"
    except NotFound:
        return True


def _with_checksums(disks: list[ReplicaDisk], results: list[DiskSync]) -> list[ReplicaDisk]:
    return [attrs.evolve(d, checksum=r.source_checksum) for d, r in zip(disks, results, strict=True)]


def _format_of(hv: Hypervisor, volume_id: str) -> str:
    vol = hv.volumes.get(volume_id)
    return vol.format.value if vol.format is not None else ""
