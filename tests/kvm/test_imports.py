"""Disk imports into a local directory pool on real libvirt: the convert runs beside libvirt's volume creation
and its file is exchanged into the volume; a failure leaves neither the volume nor the partial file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvkit.driver import DiskImage, partial_path, qemu_img
from hvkit.errors import AlreadyExists, BackendError
from hvkit.hypervisor import Hypervisor
from hvkit.migration import checksum
from hvkit.models import DiskFormat, StoragePool

MIB = 1024 * 1024


@pytest.fixture
def local_hv(qemu_hv: Hypervisor) -> Iterator[Hypervisor]:
    pool = _dir_pool(qemu_hv)
    if pool is None:
        pytest.skip("no active directory pool on this libvirtd")
    yield qemu_hv


def _dir_pool(hv: Hypervisor) -> StoragePool | None:
    for p in hv.pools.list():
        folder = p.extra.get("path")
        if folder and Path(folder).is_dir() and os.access(folder, os.W_OK):
            return p
    return None


def _image(tmp: Path, data: bytes, size: int) -> DiskImage:
    raw = tmp / "src.raw"
    with raw.open("wb") as f:
        f.truncate(size)
        f.seek(3 * MIB)
        f.write(data)
    return DiskImage(str(raw), DiskFormat.RAW, size, temporary=False)


def test_import_writes_the_volume_libvirt_created(local_hv: Hypervisor, prefix: str, tmp_path: Path) -> None:
    pool = _dir_pool(local_hv)
    assert pool is not None
    image = _image(tmp_path, os.urandom(MIB), 64 * MIB)
    name = f"{prefix}imp.qcow2"
    vol = local_hv.backend.import_disk(pool, name, image, DiskFormat.QCOW2, str(tmp_path), lambda a, b: None)
    try:
        assert vol.name == name and vol.format is DiskFormat.QCOW2 and vol.capacity_bytes == 64 * MIB
        assert vol.path == str(Path(pool.extra["path"]) / name)
        assert not partial_path(pool.extra["path"], name).exists()
        listed = {v.id: v for v in local_hv.volumes.list(pool.name)}
        assert vol.id in listed and (listed[vol.id].allocation_bytes or 0) >= MIB  # libvirt reads the new file
        want = checksum(image, size=64 * MIB).value
        got = checksum(DiskImage(vol.path or "", DiskFormat.QCOW2, 64 * MIB, False), size=64 * MIB).value
        assert got == want
        assert "compat: 1.1" in qemu_img("info", "-U", vol.path or "")
    finally:
        local_hv.volumes.delete(vol.id)


def test_a_taken_name_leaves_the_volume_there_and_no_partial_file(
    local_hv: Hypervisor, prefix: str, tmp_path: Path
) -> None:
    pool = _dir_pool(local_hv)
    assert pool is not None
    name = f"{prefix}taken.qcow2"
    theirs = local_hv.volumes.create(pool.name, name, size_gib=0.0625, format="qcow2")
    try:
        before = Path(theirs.path or "").read_bytes()
        image = _image(tmp_path, os.urandom(MIB), 64 * MIB)
        with pytest.raises(AlreadyExists), local_hv.translating("import_disk"):
            local_hv.backend.import_disk(pool, name, image, DiskFormat.QCOW2, str(tmp_path), lambda a, b: None)
        assert Path(theirs.path or "").read_bytes() == before
        assert not partial_path(pool.extra["path"], name).exists()
    finally:
        local_hv.volumes.delete(theirs.id)


def test_a_failed_convert_removes_the_volume_it_created(local_hv: Hypervisor, prefix: str, tmp_path: Path) -> None:
    pool = _dir_pool(local_hv)
    assert pool is not None
    name = f"{prefix}bad.qcow2"
    broken = tmp_path / "broken.qcow2"
    broken.write_bytes(b"QFI\xfb" + b"\xff" * 508)  # a qcow2 header qemu-img refuses
    with pytest.raises(BackendError), local_hv.translating("import_disk"):
        local_hv.backend.import_disk(
            pool, name, DiskImage(str(broken), DiskFormat.QCOW2, MIB, False), DiskFormat.QCOW2, str(tmp_path),
            lambda a, b: None,
        )  # fmt: skip
    assert name not in {v.name for v in local_hv.volumes.list(pool.name)}
    assert not (Path(pool.extra["path"]) / name).exists()
    assert not partial_path(pool.extra["path"], name).exists()


def test_a_partial_file_of_someone_else_is_left_alone(local_hv: Hypervisor, prefix: str, tmp_path: Path) -> None:
    pool = _dir_pool(local_hv)
    assert pool is not None
    name = f"{prefix}other.qcow2"
    part = partial_path(pool.extra["path"], name)
    part.write_bytes(b"not ours")
    try:
        image = _image(tmp_path, os.urandom(MIB), 64 * MIB)
        vol = local_hv.backend.import_disk(pool, name, image, DiskFormat.QCOW2, str(tmp_path), lambda a, b: None)
        try:
            assert part.read_bytes() == b"not ours"
            got = checksum(DiskImage(vol.path or "", DiskFormat.QCOW2, 64 * MIB, False), size=64 * MIB).value
            assert got == checksum(image, size=64 * MIB).value
        finally:
            local_hv.volumes.delete(vol.id)
    finally:
        part.unlink(missing_ok=True)


CHILD = """
import os, signal, sys
import hvkit
from hvkit import migration
from hvkit.backends.kvm import _imports

where, src_url, dst_url, journal, name = sys.argv[1:6]
convert = _imports._convert_new
swap = _imports._swap_in

def die(*a, **kw):
    os.kill(os.getpid(), signal.SIGKILL)

if where == "before-convert":
    _imports._convert_new = die
else:
    _imports._swap_in = die
with hvkit.connect(src_url) as s, hvkit.connect(dst_url) as d:
    plan = migration.plan(s, "src-vm", d, name=name, storage_map={"default": "default"}, power_off=True)
    plan.run(journal_dir=journal, parallel=1)
"""


@pytest.mark.parametrize("where", ["before-convert", "before-swap"])
@pytest.mark.parametrize("then", ["rollback", "resume"])
def test_a_migration_killed_inside_the_import_leaves_no_partial_file(
    local_hv: Hypervisor, prefix: str, tmp_path: Path, where: str, then: str
) -> None:
    import subprocess
    import sys
    import uuid

    import hvkit
    from hvkit import migration

    pool = local_hv.pools.get("default") if any(p.name == "default" for p in local_hv.pools.list()) else None
    if pool is None or not pool.extra.get("path"):
        pytest.skip("no directory pool named default")
    src_url = f"sim://imp-{uuid.uuid4().hex[:6]}?state_dir={tmp_path / 'sim'}"
    dst_url = "kvm:///system?virt_type=qemu"
    name = f"{prefix}{where[:6]}-{then[:3]}"
    data = os.urandom(2 * MIB)
    with hvkit.connect(src_url) as src:
        vm = src.vms.create(
            hvkit.VMSpec(name="src-vm", cpus=1, memory_mib=256, disks=[hvkit.DiskSpec(size_gib=16 / 1024)])
        )
        content = tmp_path / "content.raw"
        with content.open("wb") as f:
            f.truncate(16 * MIB)
            f.seek(5 * MIB)
            f.write(data)
        src.volumes.upload(vm.disks[0].volume or "", content)
        journal = tmp_path / "journal"
        proc = subprocess.run([sys.executable, "-c", CHILD, where, src_url, dst_url, str(journal), name],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == -9, proc.stderr
        partials = list(Path(pool.extra["path"]).glob(f".{name}*"))
        assert partials, "the kill came before the import claimed its partial file"
        if then == "rollback":
            migration.rollback(journal, src, local_hv)
            assert not [v for v in local_hv.volumes.list(pool.name) if v.name.startswith(name)]
            assert not [vm for vm in local_hv.vms.list() if vm.name == name]
        else:
            result = migration.resume(journal, src, local_hv)
            try:
                assert result.verified
            finally:
                local_hv.vms.delete(result.vm)
        assert not list(Path(pool.extra["path"]).glob(f".{name}*"))
