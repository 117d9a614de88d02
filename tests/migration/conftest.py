"""Fixtures: pairs of sim hypervisors and source VMs whose disks hold real data."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

import hvkit
from hvkit.hypervisor import Hypervisor
from hvkit.migration._verify import checksum_bytes

MIB = 1024 * 1024


@attrs.frozen
class SourceVM:
    vm: hvkit.VM
    contents: tuple[bytes, ...]  # each disk's full content

    @property
    def checksums(self) -> list[str]:
        return [checksum_bytes(c) for c in self.contents]


def sim_url(name: str, *, local: bool = True, state_dir: Path | None = None) -> str:
    """A sim URL; sim volumes are local files read in place, ``local=False`` makes them go through streams."""
    query = []
    if not local:
        query.append("local_files=false")
    if state_dir is not None:
        query.append(f"state_dir={state_dir}")
    return f"sim://{name}" + ("?" + "&".join(query) if query else "")


def forget(*names: str) -> None:
    from hvkit.backends.sim._world import forget as _forget

    for name in names:
        _forget(name)


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:8]
    pair = (f"src{tag}", f"dst{tag}")
    yield pair
    forget(*pair)


@pytest.fixture
def pair(names: tuple[str, str]) -> Iterator[tuple[Hypervisor, Hypervisor]]:
    src = hvkit.connect(sim_url(names[0]))
    dst = hvkit.connect(sim_url(names[1]))
    yield src, dst
    src.close()
    dst.close()


def fill(hv: Hypervisor, volume: str, size: int, seed: int, tmp: Path) -> bytes:
    """Write sparse random data into a volume (through hv.volumes.upload); return its full content."""
    rnd = random.Random(seed)
    content = bytearray(size)
    for _ in range(6):
        length = rnd.choice([4096, 65536, 300_000, MIB])
        off = rnd.randrange(0, size - length)
        content[off : off + length] = rnd.randbytes(length)
    content[:16] = f"disk-marker-{seed:04d}".encode()[:16]
    raw = tmp / f"fill-{uuid.uuid4().hex[:6]}.raw"
    raw.write_bytes(bytes(content))
    hv.volumes.upload(volume, raw)
    raw.unlink()
    return bytes(content)


def make_source(
    hv: Hypervisor,
    tmp: Path,
    name: str = "web-1",
    *,
    disks: tuple[tuple[int, str, str], ...] = ((16, "default", "qcow2"), (8, "fast", "raw")),
    running: bool = False,
) -> SourceVM:
    specs = [hvkit.DiskSpec(size_gib=mib / 1024, pool=pool, format=fmt) for mib, pool, fmt in disks]
    nics = [hvkit.NicSpec("lan"), hvkit.NicSpec("default")]
    vm = hv.vms.create(hvkit.VMSpec(name=name, cpus=2, memory_mib=1024, disks=specs, nics=nics))
    contents = tuple(fill(hv, d.volume or "", d.size_bytes, i + 1, tmp) for i, d in enumerate(vm.disks))
    if running:
        hv.vms.start(vm)
    return SourceVM(hv.vms.get(vm.id), contents)


def inventory(hv: Hypervisor) -> tuple[list[str], list[str]]:
    """What a hypervisor holds: VM names and volume ids (to prove a rollback left nothing)."""
    return sorted(v.name for v in hv.vms.list()), sorted(v.id for v in hv.volumes.list())


def volume_content(hv: Hypervisor, volume: str, tmp: Path) -> bytes:
    out = tmp / f"dl-{uuid.uuid4().hex[:6]}.raw"
    hv.volumes.download(volume, out)
    data = out.read_bytes()
    out.unlink()
    return data


@pytest.fixture
def journal_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "journals"
    monkeypatch.setenv("HVKIT_MIGRATION_DIR", str(root))
    return root


def env_without_crash() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "HVKIT_MIGRATION_CRASH_AT"}
