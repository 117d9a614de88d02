"""Copy what changed from a source VM's disks into a replica's volumes, one journaled step per disk.

A sync takes a snapshot of the source when it runs (it keeps running), exports each disk as of that
snapshot, compares block maps of source and replica (or takes the changed blocks the source's own
changed-block tracking reports), writes only the blocks that differ into the replica's volume and ends
with the disk checksums of both sides compared (:func:`hvkit.migration.checksum`): a difference raises
:class:`hvkit.migration.ChecksumMismatch`. Each disk is one step of a :class:`hvkit.migration.Journal`;
a killed sync is resumed (disks done are not done again; a half-done one is redone — writing the same
blocks twice changes nothing).
"""

from __future__ import annotations

import concurrent.futures
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..driver import DiskImage, probe_format
from ..errors import InvalidState, NotFound, Unsupported
from ..hypervisor import Hypervisor
from ..migration import ChecksumMismatch, Journal, checksum
from ..models import DiskFormat, PowerState, Snapshot
from ._blocks import BLOCK, DIGEST_BYTES, ImageReader, apply_blocks, block_map, changed_blocks, runs

__all__ = ["DiskSync", "SyncResult", "sync_disks"]

ProgressFn = Callable[[str, str], None]  # (disk, phase)


@attrs.frozen
class DiskSync:
    """What one disk's sync did."""

    name: str
    changed_blocks: int
    data_bytes: int  # block data sent
    zero_bytes: int  # bytes made zero on the replica (sent as a range, no data)
    control_bytes: int  # digests and ranges exchanged to find and name the changed blocks
    source_checksum: str
    replica_checksum: str
    method: str  # "block-hash" or "cbt"

    @property
    def bytes_sent(self) -> int:
        return self.data_bytes + self.control_bytes

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class SyncResult:
    disks: tuple[DiskSync, ...]
    seconds: float
    journal: str
    point: int | None = None  # the replica point this sync made

    @property
    def bytes_sent(self) -> int:
        return sum(d.bytes_sent for d in self.disks)

    @property
    def data_bytes(self) -> int:
        return sum(d.data_bytes for d in self.disks)

    @property
    def verified(self) -> bool:
        return all(d.source_checksum == d.replica_checksum for d in self.disks)

    def __str__(self) -> str:
        lines = [f"sync done in {self.seconds:.2f} s; {self.bytes_sent} bytes sent"]
        for d in self.disks:
            lines.append(f"  disk {d.name}: {d.changed_blocks} blocks changed ({d.method}), {d.data_bytes} data "
                         f"bytes, {d.control_bytes} control bytes; checksum {d.replica_checksum}")  # fmt: skip
        if self.point is not None:
            lines.append(f"  replica point {self.point}")
        lines.append(f"  journal: {self.journal}")
        return "\n".join(lines)


@attrs.frozen
class DiskPair:
    name: str
    source_volume: str
    replica_volume: str
    size: int


ChangedFn = Callable[[DiskPair, Snapshot | None], "list[int] | None"]  # CBT: changed block indices, or None


def _writable_path(hv: Hypervisor, volume_id: str) -> tuple[str, DiskFormat]:
    vol = hv.volumes.get(volume_id)
    with hv.translating("local_path"):
        path = hv.backend.local_path(vol)
    if not path:
        reason = "the replica's volumes must be files on this machine (connection option local_files=true)"
        raise Unsupported(hv.kind, "replication into this volume", reason)
    fmt = vol.format if isinstance(vol.format, DiskFormat) else probe_format(path)
    return path, fmt


def source_snapshot(journal: Journal, hv: Hypervisor, vm_id: str) -> Snapshot | None:
    """The journal's source snapshot step: a snapshot of the running VM (kept until the sync ends), else None."""
    step = "source.snapshot"
    state, data = journal.state(step)
    if state == "done":
        return hv.snapshots.get(vm_id, data["snapshot"]) if data.get("snapshot") else None
    name = f"hvkit-replica-{journal.dir.name}"[:80]
    journal.begin(step, snapshot_name=name)
    vm = hv.vms.get(vm_id)
    found = [s for s in hv.snapshots.list(vm) if s.name == name]
    if found:
        snap: Snapshot | None = found[0]
    elif vm.power_state is PowerState.STOPPED:
        snap = None
    else:
        snap = hv.snapshots.create(vm, name, description="taken by hvkit replication")
    journal.done(step, snapshot=snap.id if snap else None, taken=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return snap


def drop_source_snapshot(journal: Journal, hv: Hypervisor, vm_id: str) -> None:
    data = journal.state("source.snapshot")[1]
    if data.get("snapshot") and not journal.is_done("source.cleanup"):
        journal.begin("source.cleanup")
        try:
            hv.snapshots.delete(hv.snapshots.get(vm_id, data["snapshot"]))
        except NotFound:
            pass
        journal.done("source.cleanup")


def sync_disks(
    journal: Journal,
    src: Hypervisor,
    src_vm: str,
    dst: Hypervisor,
    pairs: Sequence[DiskPair],
    *,
    changed: ChangedFn | None = None,
    progress: ProgressFn | None = None,
) -> list[DiskSync]:
    """Bring each pair's replica volume to the source's content as of a snapshot taken now (see the module)."""
    report = progress or (lambda disk, phase: None)
    vm = src.vms.get(src_vm)
    if vm.power_state not in (PowerState.RUNNING, PowerState.STOPPED, PowerState.PAUSED):
        raise InvalidState(f"the source VM {vm.name!r} is {vm.power_state.value}")
    snap = source_snapshot(journal, src, src_vm)
    out: list[DiskSync] = []
    for index, pair in enumerate(pairs):
        step = f"disk{index}.sync"
        state, data = journal.state(step)
        if state == "done":
            out.append(DiskSync(**data))
            continue
        journal.begin(step, disk=pair.name)
        result = _sync_one(journal, src, dst, pair, snap, changed, report)
        journal.done(step, **result.to_json())
        out.append(result)
    return out


def _sync_one(
    journal: Journal,
    src: Hypervisor,
    dst: Hypervisor,
    pair: DiskPair,
    snap: Snapshot | None,
    changed: ChangedFn | None,
    report: ProgressFn,
) -> DiskSync:
    staging = journal.staging
    staging.mkdir(exist_ok=True)
    target, target_fmt = _writable_path(dst, pair.replica_volume)
    report(pair.name, "export")
    with src.translating("export_disk"):
        image = src.backend.export_disk(src.volumes.get(pair.source_volume), str(staging), lambda a, b: None, snap)
    try:
        tracked = changed(pair, snap) if changed is not None else None
        with ImageReader(image, staging) as source:
            report(pair.name, "compare")
            if tracked is not None:  # the source says which blocks changed: only those are read and sent
                blocks, method, control = sorted(set(tracked)), "cbt", 0
            else:
                with (
                    ImageReader(DiskImage(target, target_fmt, pair.size, False), staging) as replica,
                    concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hvkit-blocks") as side,
                ):  # the replica's side is mapped beside the source's (as it would be on its own host)
                    their_map = side.submit(block_map, replica)
                    mine = block_map(source)
                    theirs = their_map.result()
                blocks, method = changed_blocks(mine, theirs), "block-hash"
                control = DIGEST_BYTES * len(theirs.digests)  # the replica's map, sent to the source side
            report(pair.name, "write")
            applied = apply_blocks(source, blocks, target, target_fmt, staging)
            control += DIGEST_BYTES * len(runs(blocks))  # each run named by (offset, length)
        report(pair.name, "verify")
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hvkit-checksum") as side:
            wanted = side.submit(checksum, image, size=pair.size, workdir=str(staging), workers=1)
            got = checksum(DiskImage(target, target_fmt, pair.size, False), size=pair.size, workdir=str(staging),
                           workers=1)  # fmt: skip
            want = wanted.result()
        if got.value != want.value:
            raise ChecksumMismatch(pair.name, want.value, got.value)
    finally:
        if image.temporary:
            Path(image.path).unlink(missing_ok=True)
    return DiskSync(pair.name, len(blocks), applied.data_bytes, applied.zero_bytes, control, want.value, got.value,
                    method)  # fmt: skip


def clear_staging(journal: Journal) -> None:
    shutil.rmtree(journal.staging, ignore_errors=True)


__all__ += ["BLOCK", "DiskPair", "clear_staging", "drop_source_snapshot", "source_snapshot"]
