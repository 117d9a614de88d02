"""Fixtures: two sim hypervisors, a source VM with data, and a helper that changes blocks of a disk."""

from __future__ import annotations

import random
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit.hypervisor import Hypervisor

MIB = 1024 * 1024


def forget(*names: str) -> None:
    from hvkit.backends.sim._world import forget as _forget

    for name in names:
        _forget(name)


@pytest.fixture(autouse=True)
def replication_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "replications"
    monkeypatch.setenv("HVKIT_REPLICATION_DIR", str(root))
    monkeypatch.setenv("HVKIT_MIGRATION_DIR", str(tmp_path / "migrations"))
    return root


@pytest.fixture
def pair() -> Iterator[tuple[Hypervisor, Hypervisor]]:
    tag = uuid.uuid4().hex[:8]
    src = hvkit.connect(f"sim://rsrc{tag}")
    dst = hvkit.connect(f"sim://rdst{tag}")
    yield src, dst
    src.close()
    dst.close()
    forget(f"rsrc{tag}", f"rdst{tag}")


def volume_file(hv: Hypervisor, volume: str) -> tuple[str, str]:
    vol = hv.volumes.get(volume)
    path = hv.backend.local_path(vol)
    assert path, "the volume must be a file on this machine"
    return path, (vol.format.value if vol.format else "raw")


def write_blocks(hv: Hypervisor, volume: str, writes: list[tuple[int, bytes]], tmp: Path) -> int:
    """Write ``(offset, data)`` pieces into a volume's image (any format, through qemu-io); return bytes written."""
    path, fmt = volume_file(hv, volume)
    args = ["qemu-io", "-f", fmt]
    for n, (offset, data) in enumerate(writes):
        chunk = tmp / f"w{uuid.uuid4().hex[:6]}-{n}.bin"
        chunk.write_bytes(data)
        args += ["-c", f"write -s {chunk} {offset} {len(data)}"]
    subprocess.run([*args, path], check=True, capture_output=True)
    return sum(len(d) for _, d in writes)


def random_writes(size: int, count: int, length: int, seed: int) -> list[tuple[int, bytes]]:
    rnd = random.Random(seed)
    return [(rnd.randrange(0, (size - length) // 4096) * 4096, rnd.randbytes(length)) for _ in range(count)]


def make_source(hv: Hypervisor, tmp: Path, *, running: bool = True) -> hvkit.VM:
    # a running VM's disks are exported from an internal snapshot: qcow2; a stopped one may have raw disks
    second = "qcow2" if running else "raw"
    specs = [hvkit.DiskSpec(size_gib=16 / 1024, format="qcow2"), hvkit.DiskSpec(size_gib=8 / 1024, format=second)]
    vm = hv.vms.create(hvkit.VMSpec(name="web-1", cpus=1, memory_mib=512, disks=specs, nics=[hvkit.NicSpec("default")]))
    for i, disk in enumerate(vm.disks):
        write_blocks(hv, disk.volume or "", random_writes(disk.size_bytes, 8, 256 * 1024, i), tmp)
    if running:
        hv.vms.start(vm)
    return hv.vms.get(vm.id)
