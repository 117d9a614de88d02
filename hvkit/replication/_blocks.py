"""Block maps of disk images and writing changed blocks into an image, whatever its format.

A block map holds one XXH3-128 digest per non-zero block (64 KiB by default) of an image's guest-visible
content; zero blocks have none. Holes (``qemu-img map``) are never read. Two maps compared give the blocks
that differ; :func:`apply_blocks` writes those into the replica's image (raw: in place, zero runs punched
as holes; other formats: through ``qemu-io``, which writes through the image format).
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import attrs

from ..driver import DiskImage, convert_image, image_map, qemu_img
from ..errors import BackendError
from ..models import DiskFormat

__all__ = [
    "BLOCK",
    "DIGEST_BYTES",
    "Applied",
    "BlockMap",
    "ImageReader",
    "apply_blocks",
    "block_map",
    "build_patch",
    "changed_blocks",
    "read_pieces",
]

BLOCK = 64 * 1024
DIGEST_BYTES = 16
_ZERO = bytes(BLOCK)
_DIRECT = (DiskFormat.RAW, DiskFormat.QCOW2)
_QEMU_IO_BATCH = 400  # commands per qemu-io process
_READ = 4 * 1024 * 1024
Piece = tuple[int, int, bytes | bytearray | None]  # (offset, length, data or None for zeros)


@attrs.frozen
class BlockMap:
    """Digests of the non-zero blocks of ``size`` guest bytes, by block index."""

    size: int
    block: int
    digests: dict[int, bytes]

    @property
    def data_bytes(self) -> int:
        return sum(min(self.block, self.size - i * self.block) for i in self.digests)


class ImageReader:
    """Guest-visible content of an image file, read at the file offsets ``qemu-img map`` reports.

    Formats other than raw and uncompressed, unbacked qcow2 are first converted to a sparse raw file
    under ``workdir`` (removed on :meth:`close`).
    """

    def __init__(self, image: DiskImage, workdir: str | os.PathLike[str]) -> None:
        self.size = image.size
        self._temp: DiskImage | None = None
        if image.format not in _DIRECT:
            image = self._raw_copy(image, workdir)
        extents = image_map(image.path, image.format)
        if any(e.data and (e.offset is None or e.depth != 0) for e in extents) and image.format is not DiskFormat.RAW:
            image = self._raw_copy(image, workdir)
            extents = image_map(image.path, image.format)
        self.data = [(e.start, e.start + e.length, int(e.offset)) for e in extents if e.data and e.offset is not None]
        self._starts = [s for s, _, _ in self.data]
        self._fd = os.open(image.path, os.O_RDONLY)

    def _raw_copy(self, image: DiskImage, workdir: str | os.PathLike[str]) -> DiskImage:
        self._temp = convert_image(image, DiskFormat.RAW, workdir)
        return self._temp

    def close(self) -> None:
        os.close(self._fd)
        if self._temp is not None and self._temp.temporary:
            Path(self._temp.path).unlink(missing_ok=True)

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def blocks_with_data(self, block: int) -> Iterator[int]:
        """Indices of the blocks that touch allocated data, in order, each once."""
        last = -1
        for start, end, _ in self.data:
            first = max(start // block, last + 1)
            for index in range(first, (min(end, self.size) - 1) // block + 1):
                yield index
                last = index

    def read(self, start: int, end: int) -> bytearray:
        """Guest bytes ``[start, end)`` (zeros where nothing is allocated), read straight into one buffer."""
        end = min(end, self.size)
        out = bytearray(end - start)
        view = memoryview(out)
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        data = self.data
        while i < len(data) and data[i][0] < end:
            s, e, off = data[i]
            lo, hi = max(s, start), min(e, end)
            if lo < hi:
                os.preadv(self._fd, [view[lo - start : hi - start]], off + (lo - s))
            i += 1
        return out


def _hasher(algorithm: str = "xxh3") -> Callable[[bytes | memoryview], bytes]:
    """The block digest: XXH3-128 (``xxh3``, maps compared here) or BLAKE2b-128 (``blake2b``, what
    :meth:`hvkit.driver.Backend.scan_volume` computes where a volume lies)."""
    if algorithm == "blake2b":
        return lambda data: hashlib.blake2b(data, digest_size=16).digest()
    import xxhash

    return xxhash.xxh3_128_digest  # type: ignore[no-any-return]


def block_map(
    reader: ImageReader, block: int = BLOCK, only: Iterable[int] | None = None, hasher: str = "xxh3"
) -> BlockMap:
    """The block map of ``reader``'s content; ``only``: just those block indices (changed-block tracking);
    ``hasher``: ``xxh3`` or ``blake2b`` (see :func:`_hasher`)."""
    digest = _hasher(hasher)
    digests: dict[int, bytes] = {}
    indices = list(reader.blocks_with_data(block)) if only is None else sorted(set(only))
    for first, count in runs(indices, max(1, _READ // block)):  # one read per run of up to 4 MiB
        view = memoryview(reader.read(first * block, (first + count) * block))
        for n in range(count):
            data = view[n * block : (n + 1) * block]
            if len(data) and data != _ZERO[: len(data)]:
                digests[first + n] = digest(data)
    return BlockMap(reader.size, block, digests)


def changed_blocks(source: BlockMap, replica: BlockMap, only: Iterable[int] | None = None) -> list[int]:
    """Block indices whose content differs (``only``: among those), in order."""
    if source.block != replica.block:
        raise ValueError("block maps of different block sizes")
    candidates = set(source.digests) | set(replica.digests) if only is None else set(only)
    return sorted(i for i in candidates if source.digests.get(i) != replica.digests.get(i))


def runs(indices: Sequence[int], max_blocks: int = 64) -> list[tuple[int, int]]:
    """Consecutive block indices as ``(first, count)`` runs of at most ``max_blocks``."""
    out: list[tuple[int, int]] = []
    for i in indices:
        if out and out[-1][0] + out[-1][1] == i and out[-1][1] < max_blocks:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


@attrs.frozen
class Applied:
    data_bytes: int  # bytes of block data written
    zero_bytes: int  # bytes turned into zeros (no data sent)
    runs: int


def apply_blocks(
    reader: ImageReader,
    blocks: Sequence[int],
    target: str,
    fmt: DiskFormat,
    workdir: str | os.PathLike[str],
    block: int = BLOCK,
) -> Applied:
    """Write the source's content of ``blocks`` into the image file ``target`` (in ``fmt``)."""
    pieces = read_pieces(reader, blocks, block)
    data_bytes = sum(n for _, n, d in pieces if d is not None)
    zero_bytes = sum(n for _, n, d in pieces if d is None)
    if fmt is DiskFormat.RAW:
        _apply_raw(pieces, target)
    else:
        _apply_qemu_io(pieces, target, fmt, workdir)
    return Applied(data_bytes, zero_bytes, len(pieces))


def read_pieces(reader: ImageReader, blocks: Sequence[int], block: int = BLOCK) -> list[Piece]:
    """The source's content of ``blocks``, as runs: ``(offset, length, data)``, data None for a run of zeros."""
    pieces: list[Piece] = []
    for first, count in runs(blocks):
        start, end = first * block, min((first + count) * block, reader.size)
        data = reader.read(start, end)
        pieces.append((start, end - start, None if data == bytes(len(data)) else data))
    return pieces


def build_patch(pieces: list[Piece], size: int, workdir: str | os.PathLike[str]) -> DiskImage:
    """A qcow2 image of ``size`` guest bytes, no backing file, holding only ``pieces``: data as data clusters,
    zero runs as zero clusters, the rest unallocated (see :meth:`hvkit.driver.Backend.patch_volume`).

    Written through qemu-io while a sparse placeholder of the disk's size is its backing file (so zero
    writes become zero clusters, not holes), which is then dropped from the header (``rebase -u``)."""
    Path(workdir).mkdir(parents=True, exist_ok=True)
    stem = f"patch-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    placeholder = Path(workdir) / f"{stem}.base"
    out = Path(workdir) / f"{stem}.qcow2"
    with placeholder.open("wb") as f:
        f.truncate(size)
    try:
        qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", "-b", os.fspath(placeholder),
                 "-F", "raw", os.fspath(out), str(size))  # fmt: skip
        if pieces:
            _apply_qemu_io(pieces, os.fspath(out), DiskFormat.QCOW2, workdir)
        qemu_img("rebase", "-u", "-f", "qcow2", "-b", "", os.fspath(out))
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    finally:
        placeholder.unlink(missing_ok=True)
    return DiskImage(os.fspath(out), DiskFormat.QCOW2, size, temporary=True)


def _apply_raw(pieces: list[Piece], target: str) -> None:
    fd = os.open(target, os.O_WRONLY)
    try:
        for offset, length, data in pieces:
            if data is not None:
                os.pwrite(fd, data, offset)
                continue
            try:
                _punch_hole(fd, offset, length)
            except OSError:
                os.pwrite(fd, bytes(length), offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def _punch_hole(fd: int, offset: int, length: int) -> None:
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    mode = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE
    if libc.fallocate(fd, mode, ctypes.c_long(offset), ctypes.c_long(length)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _apply_qemu_io(pieces: list[Piece], target: str, fmt: DiskFormat, workdir: str | os.PathLike[str]) -> None:
    exe = shutil.which("qemu-io")
    if exe is None:
        raise BackendError("qemu-io is not installed (Debian/Ubuntu: apt-get install qemu-utils)")
    Path(workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=workdir, prefix="blocks-") as tmp:
        for batch_start in range(0, len(pieces), _QEMU_IO_BATCH):
            # no flush between writes (qcow2 with internal snapshots would flush its metadata per write, 10x slower):
            # the file is synced once at the end; a crash midway is a sync redone (the journal), the blocks compared
            args = [exe, "-t", "unsafe", "-f", fmt.value]
            for n, (offset, length, data) in enumerate(pieces[batch_start : batch_start + _QEMU_IO_BATCH]):
                if data is None:
                    args += ["-c", f"write -z {offset} {length}"]
                else:
                    chunk = Path(tmp) / f"{n}.bin"
                    chunk.write_bytes(data)
                    args += ["-c", f"write -s {chunk} {offset} {length}"]
            args += ["-c", "flush", target]
            proc = subprocess.run(args, capture_output=True, text=True, timeout=3600, check=False)
            if proc.returncode != 0 or "error" in proc.stdout.lower() or "failed" in proc.stdout.lower():
                raise BackendError(f"qemu-io could not write into {Path(target).name}: "
                                   f"{(proc.stderr or proc.stdout).strip()[:400]}")  # fmt: skip
            fd = os.open(target, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            for leftover in Path(tmp).glob("*.bin"):
                with contextlib.suppress(OSError):
                    leftover.unlink()
