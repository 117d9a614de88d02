"""A checksum of a disk's content as the guest sees it: the same whatever the image format or allocation.

Three versions exist. Migrations use ``hvkit-disk-v3`` (``ALGORITHM``, XXH3-128) unless asked for
``hvkit-disk-v2`` (BLAKE3, cryptographic); ``hvkit-disk-v1`` (SHA-256) stays for journals written by
earlier releases (a resume compares like with like). Both work on a disk of ``S``
guest-visible bytes cut into blocks of ``B = 65536`` bytes (the last one may be shorter); block ``k``
covers ``[k*B, min((k+1)*B, S))`` and is a *zero block* when every byte in it is 0. Blocks are grouped in
segments of ``G = 64 MiB`` (1024 blocks); segment ``j`` covers ``[j*G, min((j+1)*G, S))``. A segment's
digest is the hash of its records, in guest order; records never cross a segment boundary.

``hvkit-disk-v1`` (``"hvkit1:" + hex``), hash SHA-256:

* each maximal run of consecutive zero blocks inside the segment gives
  ``b"Z" + u64be(offset) + u64be(length)`` (the zeros themselves are not hashed);
* each other block gives ``b"D" + u64be(offset) + u64be(length) + content``;
* the checksum is ``SHA-256(b"hvkit-disk-v1\\0" + u64be(S) + digest_0 + digest_1 + ...)``.

``hvkit-disk-v2`` (``"hvkit2:" + hex``), hash BLAKE3 (default 32-byte output, unkeyed):

* windows of ``W = 4 MiB`` (64 blocks): window ``i`` covers ``[i*W, min((i+1)*W, S))``; a segment holds
  whole windows;
* each maximal run of consecutive zero blocks inside the segment gives
  ``b"Z" + u64be(offset) + u64be(length)`` (as in v1);
* each maximal run of consecutive non-zero blocks inside one window (a run of non-zero blocks is cut at
  every multiple of ``W``) gives ``b"D" + u64be(offset) + u64be(length) + content``;
* the checksum is ``BLAKE3(b"hvkit-disk-v2\\0" + u64be(S) + digest_0 + digest_1 + ...)``, each digest
  a segment's 32-byte BLAKE3 of its records.

``hvkit-disk-v3`` (``"hvkit3:" + hex``): the records of v2, hash XXH3-128 (16-byte digests, seed 0):
the checksum is ``XXH3_128(b"hvkit-disk-v3\\0" + u64be(S) + digest_0 + digest_1 + ...)``, each digest a
segment's XXH3-128 of its records (as big-endian bytes). It finds accidental damage (a bad conversion,
a torn transfer, bit rot) as surely as v2; it does not resist someone who crafts a colliding disk on
purpose, which v2 does.

Only content decides the records, so a raw file, a qcow2 with zero clusters and a preallocated vmdk
holding the same bytes give one checksum. Holes (from ``qemu-img map``) are known to be zero without
reading them, so the cost follows the allocated data, not the disk size; segments are hashed on
several threads (the hashes and os.pread release the GIL). v2 feeds the hash whole runs of data (up to
4 MiB at once), which BLAKE3 hashes with SIMD over many chunks at a time.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import hashlib
import os
import struct
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .._images import IN_FILE_OFFSETS, Extent, image_info, image_map, qemu_img
from ..models import DiskFormat
from ._layout import file_extents, plain_qcow2

if TYPE_CHECKING:
    from ..backend import DiskImage

__all__ = ["ALGORITHM", "ALGORITHMS", "BLOCK", "SEGMENT", "Checksum", "algorithm_of", "checksum", "checksum_bytes"]

BLOCK = 64 * 1024
SEGMENT = 64 * 1024 * 1024
WINDOW = 4 * 1024 * 1024
V1 = "hvkit-disk-v1"
V2 = "hvkit-disk-v2"
V3 = "hvkit-disk-v3"
ALGORITHMS = (V1, V2, V3)
ALGORITHM = V3  # what migrations use unless asked otherwise
PREFIX = b"hvkit-disk-v1\0"
_PREFIXES = {V1: PREFIX, V2: b"hvkit-disk-v2\0", V3: b"hvkit-disk-v3\0"}
_TAG = {V1: "hvkit1:", V2: "hvkit2:", V3: "hvkit3:"}
_ZERO = bytes(BLOCK)
_U64 = struct.Struct(">Q")
_REC = struct.Struct(">cQQ")


@attrs.frozen
class Checksum:
    """A disk checksum and what it cost."""

    value: str  # "hvkit3:<xxh3-128 hex>", "hvkit2:<blake3 hex>" or "hvkit1:<sha256 hex>"
    size: int  # guest-visible bytes covered
    data_bytes: int  # bytes read from the image (allocated data only)
    tail_zero: bool = True  # bytes beyond ``size`` (when the image is larger) are all zero

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class _Piece:
    start: int
    end: int
    offset: int | None  # file offset of the data; None: zeros


def _pieces(extents: Sequence[Extent], size: int) -> list[_Piece]:
    """Data pieces (with file offsets) and zero pieces covering [0, size); gaps count as zeros."""
    out: list[_Piece] = []
    pos = 0
    for e in extents:
        if e.start >= size:
            break
        if e.start > pos:
            out.append(_Piece(pos, e.start, None))
        end = min(e.end, size)
        if e.has_data:
            if e.offset is None:
                raise ValueError("data extent without a file offset")
            out.append(_Piece(e.start, end, int(e.offset)))
        else:
            out.append(_Piece(e.start, end, None))
        pos = end
    if pos < size:
        out.append(_Piece(pos, size, None))
    return out


class _Reader:
    """Reads guest bytes from a file whose data pieces are known; zero pieces are never read."""

    def __init__(self, path: str, pieces: list[_Piece]) -> None:
        self.path = path
        self.pieces = pieces
        self.starts = [p.start for p in pieces]
        self.read_bytes = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self.fd = os.open(path, os.O_RDONLY)

    def close(self) -> None:
        os.close(self.fd)

    def piece_at(self, pos: int) -> int:
        return bisect.bisect_right(self.starts, pos) - 1

    def read(self, start: int, end: int) -> memoryview:
        """Guest bytes [start, end) (at most WINDOW); valid until this thread's next read."""
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = bytearray(WINDOW)
        view = memoryview(buf)[: end - start]
        i = self.piece_at(start)
        pos = start
        n = 0
        while pos < end:
            p = self.pieces[i]
            b = min(p.end, end)
            if p.offset is None:
                view[pos - start : b - start] = bytes(b - pos)
            else:
                got = os.preadv(self.fd, [view[pos - start : b - start]], p.offset + (pos - p.start))
                if got != b - pos:
                    raise OSError(f"short read of {self.path}: {got} of {b - pos} bytes at {pos}")
                n += got
            pos = b
            i += 1
        with self._lock:
            self.read_bytes += n
        return view

    def next_data(self, pos: int, end: int) -> int:
        """The first guest offset >= pos (and < end) inside a data piece, else ``end``."""
        i = self.piece_at(pos)
        while i < len(self.pieces) and self.pieces[i].start < end:
            p = self.pieces[i]
            if p.offset is not None and p.end > pos:
                return max(p.start, pos)
            i += 1
        return end

    def data_end(self, pos: int, end: int) -> int:
        """The end of the run of data pieces starting at ``pos`` (capped at ``end``)."""
        i = self.piece_at(pos)
        stop = pos
        while i < len(self.pieces) and self.pieces[i].offset is not None and self.pieces[i].start <= stop:
            stop = self.pieces[i].end
            if stop >= end:
                return end
            i += 1
        return min(stop, end)


def _is_zero(block: memoryview) -> bool:
    # a memoryview compares item by item; bytes compare with memcmp (50x faster on zero blocks)
    if block[0] or block[-1]:
        return False
    return block.tobytes() == (_ZERO if len(block) == BLOCK else bytes(len(block)))


def _zero_blocks(view: memoryview) -> list[int]:
    """The indices of ``view``'s all-zero blocks (the last block may be short), with little Python work:
    only blocks whose first and last bytes are both zero are compared whole."""
    n = -(-len(view) // BLOCK)
    firsts = int.from_bytes(view[::BLOCK], "little")
    lasts = bytearray(view[BLOCK - 1 :: BLOCK])
    if len(lasts) < n:
        lasts.append(view[-1])
    both = (firsts | int.from_bytes(lasts, "little")).to_bytes(n, "little")
    out = []
    i = both.find(0)
    while i != -1:
        if _is_zero(view[i * BLOCK : (i + 1) * BLOCK]):
            out.append(i)
        i = both.find(0, i + 1)
    return out


def _segment_digest(reader: _Reader, start: int, end: int) -> bytes:
    h = hashlib.sha256()
    zero_from: int | None = None
    pos = start
    while pos < end:
        nxt = reader.next_data(pos, end)
        if nxt > pos:  # whole zero blocks up to the block holding the next data
            skip_to = min(end, start + ((nxt - start) // BLOCK) * BLOCK)
            if skip_to > pos:
                if zero_from is None:
                    zero_from = pos
                pos = skip_to
                continue
        wend = min(end, reader.data_end(max(nxt, pos), end), pos + WINDOW)
        wend = min(end, start + -(-(wend - start) // BLOCK) * BLOCK)  # round up to a block
        wend = max(wend, min(end, pos + BLOCK))
        view = reader.read(pos, wend)
        for off in range(0, wend - pos, BLOCK):
            block = view[off : off + BLOCK]
            if _is_zero(block):
                if zero_from is None:
                    zero_from = pos + off
                continue
            if zero_from is not None:
                h.update(_REC.pack(b"Z", zero_from, pos + off - zero_from))
                zero_from = None
            h.update(_REC.pack(b"D", pos + off, len(block)))
            h.update(block)
        pos = wend
    if zero_from is not None:
        h.update(_REC.pack(b"Z", zero_from, end - zero_from))
    return h.digest()


def _new_hash(algorithm: str, threads: int = 1) -> Any:
    """A fresh hash object for ``algorithm`` (v2: BLAKE3 with ``threads``; v3: XXH3-128)."""
    if algorithm == V3:
        import xxhash  # lazily: `import hvkit` stays light

        return xxhash.xxh3_128()
    if algorithm == V2:
        import blake3

        return blake3.blake3(max_threads=blake3.blake3.AUTO if threads < 1 else threads)
    return hashlib.sha256()


def _runs_segment_digest(reader: _Reader, start: int, end: int, algorithm: str, threads: int) -> bytes:
    """The hash of the segment's v2/v3 records: one read per window's stretch of data blocks, one update per run."""
    h = _new_hash(algorithm, threads)
    zero_from: int | None = None
    pos = start
    while pos < end:
        nxt = reader.next_data(pos, end)
        if nxt >= end:
            break
        a = max(pos, nxt - (nxt - start) % BLOCK)  # the block holding the next data
        wend = min(end, (a // WINDOW + 1) * WINDOW)
        # stretch [a, b) to every data block of the window that touches the previous one: blocks between
        # two reads are whole zero blocks, so a run of non-zero blocks never spans two reads
        q = nxt
        while True:
            de = reader.data_end(q, wend)
            b = min(wend, start + -(-(de - start) // BLOCK) * BLOCK)
            q = reader.next_data(b, wend)
            if q >= wend or q - (q - start) % BLOCK > b:
                break
        if a > pos and zero_from is None:
            zero_from = pos
        view = reader.read(a, b)
        run = a  # where the next run of non-zero blocks may start
        for z in (*_zero_blocks(view), None):
            stop = b if z is None else a + z * BLOCK
            if stop > run:  # [run, stop): non-zero blocks
                if zero_from is not None:
                    h.update(_REC.pack(b"Z", zero_from, run - zero_from))
                    zero_from = None
                h.update(_REC.pack(b"D", run, stop - run))
                h.update(view[run - a : stop - a])
            if z is None:
                break
            if zero_from is None:
                zero_from = stop
            run = min(stop + BLOCK, b)
        pos = b
    if pos < end and zero_from is None:
        zero_from = pos
    if zero_from is not None:
        h.update(_REC.pack(b"Z", zero_from, end - zero_from))
    digest: bytes = h.digest()
    return digest


def algorithm_of(value: str) -> str:
    """The algorithm a checksum value was made with, from its prefix."""
    for name, tag in _TAG.items():
        if value.startswith(tag):
            return name
    raise ValueError(f"not an hvkit disk checksum: {value!r}")


def _direct_pieces(path: str, fmt: DiskFormat, size: int, qemu_map: bool) -> list[_Piece] | None:
    """Pieces whose offsets point into ``path`` itself, or None when the format hides them."""
    if fmt not in IN_FILE_OFFSETS:
        return None
    # raw and plain qcow2: read from the file, no qemu-img process (unless asked for one)
    extents = None if qemu_map else file_extents(path, fmt)
    if extents is None:
        extents = _qemu_extents(path, fmt)
    if extents is None:
        return None
    if any(e.has_data and (e.offset is None or e.depth != 0) for e in extents):
        return None
    if any(not e.data and not e.zero for e in extents):  # unallocated without a known content
        return None
    return _pieces(extents, size)


def _qemu_extents(path: str, fmt: DiskFormat) -> list[Extent] | None:
    """``qemu-img map`` of ``path``, or None when its data is elsewhere or enciphered."""
    if fmt is DiskFormat.RAW or (fmt is DiskFormat.QCOW2 and plain_qcow2(path)):
        return image_map(path, fmt)
    # qemu-img info and map at once: two processes of ~10 ms each
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="hvkit-info") as side:
        info_future = side.submit(image_info, path, fmt)
        extents = image_map(path, fmt)
        info = info_future.result()
    specific = (info.get("format-specific") or {}).get("data") or {}
    if info.get("encrypted") or info.get("backing-filename") or specific.get("data-file"):
        return None
    return extents


def checksum(
    image: DiskImage,
    *,
    size: int | None = None,
    workers: int = 2,
    threads: int = 1,
    progress: Callable[[int, int], None] | None = None,
    workdir: str | None = None,
    algorithm: str = ALGORITHM,
    mapped: Callable[[int], None] | None = None,
    qemu_map: bool = False,
) -> Checksum:
    """The checksum (``algorithm``, default ``hvkit-disk-v3``) of ``image``'s first ``size`` guest bytes.

    Reads only allocated data. Formats whose data offsets qemu-img does not report (compressed or
    multi-file vmdk, encrypted or backed images) are first converted to a sparse raw file. ``workers``
    segments are hashed at once; ``threads`` (v2): BLAKE3 threads per segment (0: as many as it likes).
    ``mapped`` is called with the bytes of allocated data as soon as the map is known, before hashing.
    Raw and qcow2 layouts are read here (a few ms of Python) unless ``qemu_map``: then a qemu-img process
    maps them, which leaves other threads of this process alone meanwhile (and is an independent reader).
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown disk checksum algorithm {algorithm!r} (one of: {', '.join(ALGORITHMS)})")
    job = _Job(algorithm, workers, threads, progress)
    total = image.size if size is None else size
    length = max(total, image.size)
    pieces = _direct_pieces(image.path, image.format, length, qemu_map)
    if pieces is not None:
        if mapped is not None:
            mapped(_data_bytes(pieces))
        return _checksum_file(image.path, pieces, total, image.size, job)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="hvkit-verify-") as tmp:
        raw = Path(tmp) / "content.raw"
        qemu_img("convert", "-U", "-f", image.format.value, "-O", "raw", image.path, os.fspath(raw))
        pieces = _pieces(image_map(raw, DiskFormat.RAW), length)
        if mapped is not None:
            mapped(_data_bytes(pieces))
        return _checksum_file(os.fspath(raw), pieces, total, image.size, job)


def _data_bytes(pieces: list[_Piece]) -> int:
    return sum(p.end - p.start for p in pieces if p.offset is not None)


@attrs.frozen
class _Job:
    algorithm: str
    workers: int
    threads: int
    progress: Callable[[int, int], None] | None


def _checksum_file(path: str, pieces: list[_Piece], size: int, image_size: int, job: _Job) -> Checksum:
    reader = _Reader(path, pieces)
    progress, workers = job.progress, job.workers
    try:
        segments = [(s, min(s + SEGMENT, size)) for s in range(0, size, SEGMENT)]
        done = 0
        lock = threading.Lock()

        def one(seg: tuple[int, int]) -> bytes:
            nonlocal done
            if job.algorithm in (V2, V3):
                digest = _runs_segment_digest(reader, seg[0], seg[1], job.algorithm, job.threads)
            else:
                digest = _segment_digest(reader, *seg)
            if progress is not None:
                with lock:
                    done += seg[1] - seg[0]
                    progress(done, size)
            return digest

        if workers > 1 and len(segments) > 1:
            with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hvkit-verify") as pool:
                digests = list(pool.map(one, segments))
        else:
            digests = [one(s) for s in segments]
        tail_zero = True
        if image_size > size:
            pos = reader.next_data(size, image_size)
            while pos < image_size and tail_zero:
                stop = min(image_size, reader.data_end(pos, image_size), pos + WINDOW)
                if reader.read(pos, stop).tobytes().count(0) != stop - pos:
                    tail_zero = False
                pos = reader.next_data(stop, image_size)
        final = _new_hash(job.algorithm)
        final.update(_PREFIXES[job.algorithm] + _U64.pack(size))
        for d in digests:
            final.update(d)
        return Checksum(_TAG[job.algorithm] + final.hexdigest(), size, reader.read_bytes, tail_zero)
    finally:
        reader.close()


def checksum_bytes(content: bytes, algorithm: str = ALGORITHM) -> str:
    """The checksum of a disk holding exactly ``content`` (reference implementation, for tests)."""
    if algorithm in (V2, V3):
        return _checksum_bytes_runs(content, algorithm)
    if algorithm != V1:
        raise ValueError(f"unknown disk checksum algorithm {algorithm!r}")
    size = len(content)
    final = hashlib.sha256(PREFIX + _U64.pack(size))
    for s in range(0, size, SEGMENT):
        e = min(s + SEGMENT, size)
        h = hashlib.sha256()
        zero_from: int | None = None
        for b in range(s, e, BLOCK):
            block = content[b : min(b + BLOCK, e)]
            if not any(block):
                zero_from = b if zero_from is None else zero_from
                continue
            if zero_from is not None:
                h.update(_REC.pack(b"Z", zero_from, b - zero_from))
                zero_from = None
            h.update(_REC.pack(b"D", b, len(block)) + block)
        if zero_from is not None:
            h.update(_REC.pack(b"Z", zero_from, e - zero_from))
        final.update(h.digest())
    return "hvkit1:" + final.hexdigest()


def _checksum_bytes_runs(content: bytes, algorithm: str) -> str:
    """Reference ``hvkit-disk-v2`` / ``-v3``: block by block, straight from the definition."""
    size = len(content)
    final = _new_hash(algorithm)
    final.update(_PREFIXES[algorithm] + _U64.pack(size))
    for s in range(0, size, SEGMENT):
        e = min(s + SEGMENT, size)
        h = _new_hash(algorithm)
        records: list[tuple[bytes, int, int]] = []  # (kind, offset, length), runs merged below
        for b in range(s, e, BLOCK):
            n = min(b + BLOCK, e) - b
            kind = b"D" if any(content[b : b + n]) else b"Z"
            last = records[-1] if records else None
            same_window = kind == b"Z" or (last is not None and last[1] // WINDOW == b // WINDOW)
            if last is not None and last[0] == kind and last[1] + last[2] == b and same_window:
                records[-1] = (kind, last[1], last[2] + n)
            else:
                records.append((kind, b, n))
        for kind, off, length in records:
            h.update(_REC.pack(kind, off, length))
            if kind == b"D":
                h.update(content[off : off + length])
        final.update(h.digest())
    return _TAG[algorithm] + str(final.hexdigest())
