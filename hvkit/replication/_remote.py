"""One disk's sync into a replica volume that is not a file on this machine (e.g. Proxmox over SSH).

The target backend sums up the replica where it lies (:meth:`hvkit.driver.Backend.scan_volume`: an
``hvkit-disk-v1`` checksum and BLAKE2b-128 block digests) and writes a patch into it in place
(:meth:`hvkit.driver.Backend.patch_volume`): a qcow2 holding only the changed blocks, zeroed ranges as zero
clusters. What crosses the wire is counted: the patch as sent (``patch_bytes``: compressed, its qcow2
metadata included) and, as control bytes, the scans' programs and outputs (the replica's digests among
them). The source side's checksum is taken in ``hvkit-disk-v1`` too, so both sides compare like with like.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import TYPE_CHECKING

from ..driver import Backend, DiskImage, VolumeScan
from ..errors import Unsupported
from ..hypervisor import Hypervisor
from ..migration import ChecksumMismatch, checksum
from ..models import Snapshot, Volume
from ._blocks import BLOCK, BlockMap, ImageReader, block_map, build_patch, changed_blocks, read_pieces

if TYPE_CHECKING:
    from ._sync import ChangedFn, DiskPair, DiskSync, MapStore, ProgressFn

__all__ = ["HASHER", "sync_remote"]

HASHER = "blake2b"  # what scan_volume's block digests are
ALGORITHM = "hvkit-disk-v1"  # what scan_volume's checksum is
_NEEDS = ("the replica's volumes must be files on this machine (connection option local_files=true), or its "
          "backend must scan and patch volumes where they lie (scan_volume, patch_volume; Proxmox: SSH access "
          "to the node, options ssh_key/ssh_known_hosts/ssh_host_map)")  # fmt: skip


def _check_hooks(dst: Hypervisor) -> None:
    """Unsupported, naming what is needed, when the target's backend does not serve both hooks."""
    kind = type(dst.backend)
    if kind.scan_volume is Backend.scan_volume or kind.patch_volume is Backend.patch_volume:
        raise Unsupported(dst.kind, "replication into this volume", _NEEDS)


def _scan(dst: Hypervisor, volume: Volume, digests: bool) -> VolumeScan:
    with dst.translating("scan_volume"):
        return dst.backend.scan_volume(volume, digests)


def _patch(
    dst: Hypervisor, volume: Volume, reader: ImageReader, blocks: list[int], staging: Path
) -> tuple[int, int, int]:
    """Write ``blocks`` of the source into the replica volume; (data bytes, zero bytes, bytes sent)."""
    pieces = read_pieces(reader, blocks)
    data = sum(n for _, n, d in pieces if d is not None)
    zeros = sum(n for _, n, d in pieces if d is None)
    if not pieces:
        return 0, 0, 0
    patch = build_patch(pieces, reader.size, staging)
    try:
        with dst.translating("patch_volume"):
            sent = dst.backend.patch_volume(volume, patch)
    finally:
        Path(patch.path).unlink(missing_ok=True)
    return data, zeros, sent


def sync_remote(
    src: Hypervisor,
    dst: Hypervisor,
    pair: DiskPair,
    snap: Snapshot | None,
    changed: ChangedFn | None,
    report: ProgressFn,
    maps: MapStore | None,
    staging: Path,
) -> DiskSync:
    """Bring the replica volume of ``pair`` to the source's content as of ``snap`` (see the module)."""
    from ._sync import DiskSync

    _check_hooks(dst)
    volume = dst.volumes.get(pair.replica_volume)
    known = maps.load(pair, HASHER) if maps is not None else None
    # the replica's digests cross once (unless the last sync left its map here); CBT needs none
    first = _scan(dst, volume, digests=True) if known is None and changed is None else None
    report(pair.name, "export")
    with src.translating("export_disk"):
        image = src.backend.export_disk(src.volumes.get(pair.source_volume), str(staging), lambda a, b: None, snap)
    side = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hvkit-replica")
    try:
        wanted = side.submit(_source_checksum, image, pair.size, staging)
        tracked = changed(pair, snap) if changed is not None else None
        control = first.bytes_moved if first is not None else 0
        with ImageReader(image, staging) as source:
            report(pair.name, "compare")
            mine: BlockMap | None = None
            if tracked is not None:
                blocks, method = sorted(set(tracked)), "cbt"
            else:
                mine = block_map(source, hasher=HASHER)
                if known is not None:
                    theirs = known
                else:
                    if first is None:  # CBT was offered but had nothing to say
                        first = _scan(dst, volume, digests=True)
                        control += first.bytes_moved
                    theirs = BlockMap(pair.size, BLOCK, dict(first.digests or {}))
                blocks, method = changed_blocks(mine, theirs), "block-hash"
            report(pair.name, "write")
            data, zeros, sent = _patch(dst, volume, source, blocks, staging)
            report(pair.name, "verify")
            after = _scan(dst, volume, digests=False)
            control += after.bytes_moved
            want = wanted.result()
            if after.checksum != want and known is not None and mine is not None:
                # the replica changed behind the last sync's back: compare with what it holds now
                now = _scan(dst, volume, digests=True)
                again = changed_blocks(mine, BlockMap(pair.size, BLOCK, dict(now.digests or {})))
                more = _patch(dst, volume, source, again, staging)
                blocks = sorted(set(blocks) | set(again))
                data, zeros, sent = data + more[0], zeros + more[1], sent + more[2]
                after = _scan(dst, volume, digests=False)
                control += now.bytes_moved + after.bytes_moved
        if after.checksum != want:
            if maps is not None:
                maps.forget(pair)
            raise ChecksumMismatch(pair.name, want, after.checksum)
        if maps is not None:
            if mine is not None:
                maps.save(pair, mine, after.checksum, HASHER)
            else:
                maps.forget(pair)
    finally:
        side.shutdown(wait=True)
        if image.temporary:
            Path(image.path).unlink(missing_ok=True)
    return DiskSync(pair.name, len(blocks), data, zeros, control, want, after.checksum, method, sent)


def _source_checksum(image: DiskImage, size: int, staging: Path) -> str:
    return checksum(image, size=size, workdir=str(staging), workers=1, algorithm=ALGORITHM).value
