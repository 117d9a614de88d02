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
import hashlib
import json
import os
import shutil
import signal
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..driver import DiskImage, probe_format
from ..errors import InvalidState, NotFound
from ..hypervisor import Hypervisor
from ..migration import ChecksumMismatch, Journal, checksum
from ..models import DiskFormat, PowerState, Snapshot
from ._blocks import BLOCK, DIGEST_BYTES, Applied, BlockMap, ImageReader, apply_blocks, block_map, changed_blocks, runs

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
    # a replica that is not a file here: the bytes of the patch that carried the blocks (compressed on the wire,
    # its qcow2 metadata included), sent instead of the block data itself
    patch_bytes: int | None = None

    @property
    def bytes_sent(self) -> int:
        return (self.data_bytes if self.patch_bytes is None else self.patch_bytes) + self.control_bytes

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
            patch = "" if d.patch_bytes is None else f" (as a {d.patch_bytes}-byte patch)"
            lines.append(f"  disk {d.name}: {d.changed_blocks} blocks changed ({d.method}), {d.data_bytes} data "
                         f"bytes{patch}, {d.control_bytes} control bytes; checksum {d.replica_checksum}")  # fmt: skip
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


CRASH_ENV = "HVKIT_REPLICATION_CRASH_AT"  # tests: "step:point,..." -> the process kills itself (SIGKILL) there


def crash_point(name: str) -> None:
    """A named place in a sync where tests kill the process."""
    if name in (os.environ.get(CRASH_ENV) or "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)


def _writable_path(hv: Hypervisor, volume_id: str) -> tuple[str, DiskFormat] | None:
    """The replica volume's image file on this machine and its format; None when it lies elsewhere."""
    vol = hv.volumes.get(volume_id)
    with hv.translating("local_path"):
        path = hv.backend.local_path(vol)
    if not path:
        return None
    fmt = vol.format if isinstance(vol.format, DiskFormat) else probe_format(path)
    return path, fmt


def source_snapshot(journal: Journal, hv: Hypervisor, vm_id: str) -> Snapshot | None:
    """The journal's source snapshot step: a snapshot of the running VM (kept until the sync ends), else None."""
    step = "source.snapshot"
    state, data = journal.state(step)
    attempt = int(data.get("attempt", 0))
    if state == "done":
        if not data.get("snapshot"):
            return None
        try:
            return hv.snapshots.get(vm_id, data["snapshot"])
        except NotFound:  # gone (deleted, or the hypervisor lost it): a new snapshot, and every disk again
            attempt += 1
    name = f"hvkit-replica-{journal.dir.name}" + (f"-{attempt}" if attempt else "")
    journal.begin(step, snapshot_name=name[:80], attempt=attempt)
    vm = hv.vms.get(vm_id)
    found = [s for s in hv.snapshots.list(vm) if s.name == name[:80]]
    if found:
        snap: Snapshot | None = found[0]
    elif vm.power_state is PowerState.STOPPED:
        snap = None
    else:
        snap = hv.snapshots.create(vm, name[:80], description="taken by hvkit replication")
    journal.done(step, snapshot=snap.id if snap else None, attempt=attempt,
                 taken=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))  # fmt: skip
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
    maps: MapStore | None = None,
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
        attempt = int(journal.state("source.snapshot")[1].get("attempt", 0))
        if state == "done" and int(data.get("attempt", 0)) == attempt:  # done as of this snapshot
            fields = {f.name for f in attrs.fields(DiskSync)}
            out.append(DiskSync(**{k: v for k, v in data.items() if k in fields}))
            continue
        journal.begin(step, disk=pair.name, attempt=attempt)
        result = _sync_one(journal, src, dst, pair, snap, changed, report, maps)
        crash_point(f"{step}:acted")
        journal.done(step, **result.to_json())
        crash_point(f"{step}:done")
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
    maps: MapStore | None,
) -> DiskSync:
    staging = journal.staging
    staging.mkdir(exist_ok=True)
    local = _writable_path(dst, pair.replica_volume)
    if local is None:  # written in place where it lies, by the target's backend (scan_volume, patch_volume)
        from ._remote import sync_remote

        return sync_remote(src, dst, pair, snap, changed, report, maps, staging)
    target, target_fmt = local
    replica_image = DiskImage(target, target_fmt, pair.size, False)
    report(pair.name, "export")
    with src.translating("export_disk"):
        image = src.backend.export_disk(src.volumes.get(pair.source_volume), str(staging), lambda a, b: None, snap)
    side = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hvkit-replica")
    try:
        # the source side's checksum (its snapshot does not change) runs beside the comparison and the writes
        wanted = side.submit(checksum, image, size=pair.size, workdir=str(staging), workers=1)
        tracked = changed(pair, snap) if changed is not None else None
        known = maps.load(pair) if maps is not None and tracked is None else None
        with ImageReader(image, staging) as source:
            report(pair.name, "compare")
            mine: BlockMap | None = None
            if tracked is not None:  # the source says which blocks changed: only those are read and sent
                blocks, method, control = sorted(set(tracked)), "cbt", 0
            else:
                mine = block_map(source)
                theirs = known if known is not None else _replica_map(replica_image, staging)
                blocks, method = changed_blocks(mine, theirs), "block-hash"
                # the replica's map crosses once, unless the last sync left it here
                control = 0 if known is not None else DIGEST_BYTES * len(theirs.digests)
            report(pair.name, "write")
            applied = apply_blocks(source, blocks, target, target_fmt, staging)
            control += DIGEST_BYTES * len(runs(blocks))  # each run named by (offset, length)
            report(pair.name, "verify")
            got = checksum(replica_image, size=pair.size, workdir=str(staging), workers=1)
            want = wanted.result()
            if got.value != want.value and known is not None and mine is not None:
                # the replica changed after the last sync (someone wrote to it): compare with what it holds
                theirs = _replica_map(replica_image, staging)
                again = changed_blocks(mine, theirs)
                more = apply_blocks(source, again, target, target_fmt, staging)
                blocks = sorted(set(blocks) | set(again))
                control += DIGEST_BYTES * (len(theirs.digests) + len(runs(again)))
                applied = Applied(applied.data_bytes + more.data_bytes, applied.zero_bytes + more.zero_bytes,
                                  applied.runs + more.runs)  # fmt: skip
                got = checksum(replica_image, size=pair.size, workdir=str(staging), workers=1)
        if got.value != want.value:
            if maps is not None:
                maps.forget(pair)
            raise ChecksumMismatch(pair.name, want.value, got.value)
        if maps is not None:
            if mine is not None:
                maps.save(pair, mine, got.value)
            else:
                maps.forget(pair)  # CBT: no full map was made; the next block-hash sync reads the replica
    finally:
        side.shutdown(wait=True)
        if image.temporary:
            Path(image.path).unlink(missing_ok=True)
    return DiskSync(pair.name, len(blocks), applied.data_bytes, applied.zero_bytes, control, want.value, got.value,
                    method)  # fmt: skip


def _replica_map(image: DiskImage, staging: Path) -> BlockMap:
    with ImageReader(image, staging) as replica:
        return block_map(replica)


class MapStore:
    """The block map each replica volume held after the last sync, kept beside the replication's record (16
    bytes per non-zero 64 KiB block); used only while the replica's checksum is still the one recorded."""

    def __init__(self, directory: Path, expected: dict[str, str]) -> None:
        self.directory = directory
        self.expected = expected  # replica volume id -> the checksum it had after the last sync

    def _path(self, pair: DiskPair) -> Path:
        return self.directory / (hashlib.sha256(pair.replica_volume.encode()).hexdigest()[:24] + ".map")

    def load(self, pair: DiskPair, hasher: str = "xxh3") -> BlockMap | None:
        path = self._path(pair)
        if not path.is_file():
            return None
        head, _, body = path.read_bytes().partition(b"\n")
        meta = json.loads(head)
        if meta.get("checksum") != self.expected.get(pair.replica_volume) or meta.get("size") != pair.size:
            return None
        if meta.get("hash", "xxh3") != hasher:  # digests of another kind compare with nothing here
            return None
        record = struct.Struct(">Q16s")
        digests = {i: d for i, d in record.iter_unpack(body)}
        return BlockMap(pair.size, int(meta["block"]), digests)

    def save(self, pair: DiskPair, blocks: BlockMap, value: str, hasher: str = "xxh3") -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        record = struct.Struct(">Q16s")
        head = json.dumps({"checksum": value, "size": blocks.size, "block": blocks.block, "hash": hasher}).encode()
        body = b"".join(record.pack(i, d) for i, d in sorted(blocks.digests.items()))
        tmp = self._path(pair).with_suffix(".tmp")
        tmp.write_bytes(head + b"\n" + body)
        tmp.replace(self._path(pair))
        self.expected[pair.replica_volume] = value

    def forget(self, pair: DiskPair) -> None:
        self._path(pair).unlink(missing_ok=True)


def clear_staging(journal: Journal) -> None:
    shutil.rmtree(journal.staging, ignore_errors=True)


__all__ += ["BLOCK", "DiskPair", "MapStore", "clear_staging", "drop_source_snapshot", "source_snapshot"]
