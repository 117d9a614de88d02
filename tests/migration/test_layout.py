"""hvkit's own reading of raw and qcow2 layouts agrees with qemu-img map, and declines what it does not read."""

from __future__ import annotations

import random
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvkit._images import Extent, image_map, qemu_img
from hvkit.backend import DiskImage
from hvkit.migration import checksum
from hvkit.migration._layout import file_extents, plain_qcow2
from hvkit.migration._verify import checksum_bytes
from hvkit.models import DiskFormat

MIB = 1024 * 1024
pytestmark = pytest.mark.skipif(shutil.which("qemu-io") is None, reason="needs qemu-io (qemu-utils)")


def normalized(extents: list[Extent], size: int) -> list[tuple[int, int, int | None]]:
    """(start, end, file offset or None for zeros), merged where they continue each other, gaps as zeros."""
    out: list[tuple[int, int, int | None]] = []

    def add(start: int, end: int, offset: int | None) -> None:
        if out:
            s, e, o = out[-1]
            if e == start and (o is None) == (offset is None) and (o is None or o + (e - s) == offset):
                out[-1] = (s, end, o)
                return
        out.append((start, end, offset))

    pos = 0
    for x in sorted(extents, key=lambda x: x.start):
        if x.start >= size:
            break
        if x.start > pos:
            add(pos, x.start, None)
        end = min(x.end, size)
        add(x.start, end, x.offset if x.data and not x.zero else None)
        pos = end
    if pos < size:
        add(pos, size, None)
    return out


def qemu_io(path: Path, fmt: str, *commands: str) -> None:
    args = ["qemu-io", "-f", fmt]
    for c in commands:
        args += ["-c", c]
    subprocess.run([*args, str(path)], check=True, capture_output=True)


OPS = st.lists(
    st.tuples(st.sampled_from(["write", "write -z", "discard"]), st.floats(0, 1), st.integers(1, 3 * MIB)),
    max_size=10,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cluster=st.sampled_from([512, 4096, 65536, 2 * MIB]),
    compat=st.sampled_from(["0.10", "1.1"]),
    size=st.integers(1, 12 * MIB),
    ops=OPS,
)
def test_qcow2_extents_agree_with_qemu_img_map(
    tmp_path: Path, cluster: int, compat: str, size: int, ops: list[tuple[str, float, int]]
) -> None:
    path = tmp_path / f"{uuid.uuid4().hex}.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", f"cluster_size={cluster},compat={compat}", str(path), str(size))
    commands = []
    for op, where, length in ops:  # in this order: clusters land in the file out of guest order
        length = min(length, size)
        start = int(where * (size - length))
        if op == "write -z" and compat == "0.10":
            op = "write"
        pattern = "" if op != "write" else f"-P {1 + start % 250} "
        commands.append(f"{op} {pattern}{start} {length}")
    if commands:
        qemu_io(path, "qcow2", *commands)
    ours = file_extents(str(path), DiskFormat.QCOW2)
    assert ours is not None
    virtual = int(qemu_img("info", "--output=json", str(path)).split('"virtual-size": ')[1].split(",")[0])
    assert normalized(ours, virtual) == normalized(image_map(path, DiskFormat.QCOW2), virtual)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(1, 8 * MIB), ops=OPS)
def test_raw_extents_agree_with_qemu_img_map(tmp_path: Path, size: int, ops: list[tuple[str, float, int]]) -> None:
    path = tmp_path / f"{uuid.uuid4().hex}.raw"
    with path.open("wb") as f:
        f.truncate(size)
        for _, where, length in ops:
            length = min(length, size)
            f.seek(int(where * (size - length)))
            f.write(random.Random(length).randbytes(length))
    ours = file_extents(str(path), DiskFormat.RAW)
    assert ours is not None
    assert normalized(ours, size) == normalized(image_map(path, DiskFormat.RAW), size)


def test_what_is_not_read_here_goes_to_qemu_img(tmp_path: Path) -> None:
    raw = tmp_path / "c.raw"
    content = random.Random(3).randbytes(MIB) + b"compressible" * (2 * MIB // 12) + bytes(MIB + 2 * MIB % 12)
    raw.write_bytes(content)
    cases = {
        "compressed": ["convert", "-c", "-f", "raw", "-O", "qcow2", str(raw)],
        "subclusters": ["convert", "-f", "raw", "-O", "qcow2", "-o", "extended_l2=on", str(raw)],
        "external data file": [
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            "-o",
            f"data_file={tmp_path / 'x.data'}",
            str(raw),
        ],
    }
    for name, args in cases.items():
        out = tmp_path / f"{name.replace(' ', '-')}.qcow2"
        qemu_img(*args, str(out))
        assert file_extents(str(out), DiskFormat.QCOW2) is None, name
        image = DiskImage(str(out), DiskFormat.QCOW2, len(content))
        assert checksum(image).value == checksum_bytes(content), name  # read through qemu-img instead
    plain = tmp_path / "plain.qcow2"
    qemu_img("convert", "-f", "raw", "-O", "qcow2", str(raw), str(plain))
    dirty = tmp_path / "dirty.qcow2"
    header = bytearray(plain.read_bytes())
    header[79] |= 1  # incompatible feature bit 0: dirty (a writer did not close it)
    dirty.write_bytes(header)
    assert plain_qcow2(str(dirty)) and file_extents(str(dirty), DiskFormat.QCOW2) is None
    overlay = tmp_path / "overlay.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(plain), "-F", "qcow2", str(overlay))
    assert file_extents(str(overlay), DiskFormat.QCOW2) is None
    assert file_extents(str(raw), DiskFormat.VMDK) is None
    assert file_extents(str(raw), DiskFormat.QCOW2) is None  # not a qcow2 at all


@pytest.mark.parametrize("prealloc", ["metadata", "falloc", "full"])
def test_preallocated_qcow2_reads_as_its_content(tmp_path: Path, prealloc: str) -> None:
    """Clusters allocated but never written (holes or zeros in the file) read as zeros."""
    path = tmp_path / "p.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", f"preallocation={prealloc}", str(path), str(6 * MIB))
    qemu_io(path, "qcow2", f"write -P 7 {MIB + 5} 3000")
    content = bytearray(6 * MIB)
    content[MIB + 5 : MIB + 3005] = b"\x07" * 3000
    assert file_extents(str(path), DiskFormat.QCOW2) is not None
    assert checksum(DiskImage(str(path), DiskFormat.QCOW2, 6 * MIB)).value == checksum_bytes(bytes(content))
