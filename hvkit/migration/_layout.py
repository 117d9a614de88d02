"""Where a raw or qcow2 image keeps its data, read from the file itself (no qemu-img process).

``file_extents`` gives the same extents ``qemu-img map`` does, for the plain cases only: a raw file
(``SEEK_DATA`` / ``SEEK_HOLE``, as qemu's own file driver asks), and a qcow2 (v2 or v3) without a backing
file, encryption, an external data file, subclusters, compressed clusters or a dirty or corrupt mark,
read from its L1 and L2 tables. Anything else gives None, and the caller asks qemu-img. Saving the
~10 ms a qemu-img process costs matters on a migration's critical path: the target is mapped after
its convert, before it is read back.
"""

from __future__ import annotations

import array
import errno
import os
import re
import struct
import sys

from .._images import Extent
from ..models import DiskFormat

__all__ = ["file_extents", "plain_qcow2"]

_HEADER = struct.Struct(">IIQIIQIIQ")  # magic, version, backing offset/size, cluster bits, size, crypt, l1 size/offset
_MAGIC = 0x514649FB
_INCOMPATIBLE = 72  # v3: u64 incompatible feature bits
_DIRTY, _CORRUPT, _DATA_FILE, _COMPRESSION_TYPE, _EXTENDED_L2 = (1 << b for b in range(5))
_OFFSET = 0x00FF_FFFF_FFFF_FE00  # bits 9-55: a host offset
_COMPRESSED = 1 << 62
_COPIED = 1 << 63
_ZERO = 1  # v3: the cluster reads as zeros
_L1_RESERVED = ~(_OFFSET | _COPIED) & (2**64 - 1)
_L2_RESERVED = ~(_OFFSET | _COPIED | _ZERO) & (2**64 - 1)
_MAX_CLUSTER_BITS = 21
_ZERO_ENTRIES = re.compile(rb"\x00{8,}")


def _header(path: str) -> tuple[tuple[int, ...], int] | None:
    try:
        with open(path, "rb") as f:  # noqa: PTH123 - one read of the header
            head = f.read(104)
    except OSError:
        return None
    if len(head) < 80 or _HEADER.unpack_from(head)[0] != _MAGIC:
        return None
    fields = _HEADER.unpack_from(head)
    incompatible = struct.unpack_from(">Q", head, _INCOMPATIBLE)[0] if fields[1] == 3 else 0
    return fields, incompatible


def plain_qcow2(path: str, *, harmless: int = _DIRTY | _COMPRESSION_TYPE | _EXTENDED_L2) -> bool:
    """True when ``path`` is a qcow2 (v2 or v3) whose data lies in the file itself at the offsets its
    tables give: no backing file, no encryption, no external data file, not marked corrupt, and no
    incompatible feature outside ``harmless``."""
    got = _header(path)
    if got is None:
        return False
    (_, version, backing, _, _, _, crypt, _, _), incompatible = got
    return version in (2, 3) and not backing and not crypt and not incompatible & ~harmless


def file_extents(path: str, fmt: DiskFormat) -> list[Extent] | None:
    """The image's extents in guest order, or None when this module does not read this image."""
    if fmt is DiskFormat.RAW:
        return _raw_extents(path)
    if fmt is DiskFormat.QCOW2 and plain_qcow2(path, harmless=_COMPRESSION_TYPE):
        return _qcow2_extents(path)
    return None


def _raw_extents(path: str) -> list[Extent] | None:
    out: list[Extent] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole is left
                    data = size
                elif exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # no hole queries here: qemu-img decides
                    return None
                else:
                    raise
            if data > pos:
                out.append(Extent(pos, data - pos, False, True))
            if data >= size:
                break
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), size)
            out.append(Extent(data, hole - data, True, False, data))
            pos = hole
    finally:
        os.close(fd)
    return out


def _qcow2_extents(path: str) -> list[Extent] | None:
    got = _header(path)
    if got is None:
        return None
    (_, _, _, _, cluster_bits, size, _, l1_size, l1_offset), _ = got
    if not 9 <= cluster_bits <= _MAX_CLUSTER_BITS:
        return None
    cluster = 1 << cluster_bits
    per_table = cluster // 8
    if l1_size * per_table * cluster < size:
        return None
    runs = _Runs()
    fd = os.open(path, os.O_RDONLY)
    try:
        l1 = _entries(os.pread(fd, l1_size * 8, l1_offset), l1_size)
        if l1 is None:
            return None
        for i, entry in enumerate(l1):
            base = i * per_table * cluster
            if base >= size:
                break
            table = entry & _OFFSET
            if entry & _L1_RESERVED or table & (cluster - 1):
                return None
            if not table:
                runs.add(base, min(per_table * cluster, size - base), 0)
                continue
            raw = os.pread(fd, cluster, table)
            l2 = _entries(raw, per_table)
            if l2 is None:
                return None
            count = min(per_table, -(-(size - base) // cluster))
            if not _add_table(runs, raw[: count * 8], l2, base, cluster):
                return None
    finally:
        os.close(fd)
    return runs.extents(size)


def _add_table(runs: _Runs, raw: bytes, l2: array.array[int], base: int, cluster: int) -> bool:
    """Add the clusters of one L2 table (``raw``: its first entries, big-endian); False: not readable here.

    Runs of zero entries (unallocated: zeros) are found by a regular expression over the bytes, and a
    stretch of allocated entries is one comparison when its clusters follow each other in the file (as
    qemu-img convert writes them); only other stretches are looked at entry by entry."""
    pos = 0
    count = len(raw) // 8
    for m in _ZERO_ENTRIES.finditer(raw):
        first, end = -(-m.start() // 8), m.end() // 8  # whole entries inside the run of zero bytes
        if end <= first:
            continue
        if first > pos and not _add_allocated(runs, l2, pos, first, base, cluster):
            return False
        runs.add(base + first * cluster, (end - first) * cluster, 0)
        pos = end
    return pos >= count or _add_allocated(runs, l2, pos, count, base, cluster)


def _add_allocated(runs: _Runs, l2: array.array[int], a: int, b: int, base: int, cluster: int) -> bool:
    """Entries [a, b) of ``l2``, none of them zero."""
    head, tail = l2[a], l2[b - 1]
    ok = _usable(head, cluster) and _usable(tail, cluster) and not head & _ZERO
    if ok and l2[a:b] == array.array("Q", range(head, head + (b - a) * cluster, cluster)):
        runs.add(base + a * cluster, (b - a) * cluster, head & _OFFSET)
        return True
    for j in range(a, b):
        e = l2[j]
        if not _usable(e, cluster):
            return False
        host = e & _OFFSET
        runs.add(base + j * cluster, cluster, 0 if e & _ZERO or not host else host)
    return True


def _usable(entry: int, cluster: int) -> bool:
    """A standard L2 entry this module reads: no reserved bits, not compressed, cluster-aligned."""
    return not (entry & _L2_RESERVED or entry & _COMPRESSED or entry & _OFFSET & (cluster - 1))


def _entries(raw: bytes, count: int) -> array.array[int] | None:
    if len(raw) != count * 8:
        return None
    table = array.array("Q", raw)
    if sys.byteorder == "little":
        table.byteswap()
    return table


class _Runs:
    """Clusters merged into extents: a run of zeros, or of data contiguous in the guest and in the file."""

    def __init__(self) -> None:
        self.out: list[Extent] = []
        self.start = self.length = self.host = 0  # host 0: zeros (no data cluster sits at offset 0: the header)

    def add(self, start: int, length: int, host: int) -> None:
        if self.length and (host == 0) == (self.host == 0) and (host == 0 or host == self.host + self.length):
            self.length += length
            return
        self._flush()
        self.start, self.length, self.host = start, length, host

    def _flush(self) -> None:
        if self.length:
            if self.host:
                self.out.append(Extent(self.start, self.length, True, False, self.host))
            else:
                self.out.append(Extent(self.start, self.length, False, True))

    def extents(self, size: int) -> list[Extent]:
        self._flush()
        self.length = 0
        if self.out and self.out[-1].end > size:  # the last cluster may reach past the disk's end
            last = self.out[-1]
            self.out[-1] = Extent(last.start, size - last.start, last.data, last.zero, last.offset)
        return self.out
