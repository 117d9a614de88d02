"""Disks in both directions through clonemedium (VDI, VMDK, VHD) and the migration paths VirtualBox <-> KVM."""

from __future__ import annotations

import json
import os
import random
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit import migration
from hvkit.backend import DiskImage
from hvkit.hypervisor import Hypervisor
from hvkit.migration._verify import checksum_bytes
from hvkit.testing.vbox_sim import VBoxSim
from tests.migration._paths import kvm_hypervisor

from .conftest import FAST, on_path

MIB = 1024 * 1024
BOOT_TIMEOUT = 180.0
FORMATS = {hvkit.DiskFormat.VDI: "vdi", hvkit.DiskFormat.VMDK: "vmdk", hvkit.DiskFormat.VHD: "vpc"}


@pytest.fixture
def vbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hypervisor]:
    on_path(VBoxSim(tmp_path / "vbox", version="7.0"), monkeypatch)
    with hvkit.connect("vbox:///", **FAST) as hv:
        yield hv


def _content(size: int, seed: int) -> bytes:
    rnd = random.Random(seed)
    data = bytearray(size)
    for off in (0, size // 3 + 4096, size - 3 * 65536):
        data[off : off + 100_000] = rnd.randbytes(min(100_000, size - off))
    data[:16] = f"vbox-marker-{seed:04d}".encode()
    return bytes(data)


def _import(hv: Hypervisor, tmp: Path, name: str, content: bytes, fmt: hvkit.DiskFormat) -> hvkit.Volume:
    raw = tmp / f"{name}.raw"
    raw.write_bytes(content)
    with hv.translating("import_disk"):
        return hv.backend.import_disk(hv.pools.get("default"), name, DiskImage(str(raw), hvkit.DiskFormat.RAW,
                                      len(content)), fmt, str(tmp / "work"), lambda a, b: None)  # fmt: skip


@pytest.mark.parametrize("fmt", list(FORMATS), ids=lambda f: f.name)
def test_disk_round_trip_through_clonemedium(vbox: Hypervisor, tmp_path: Path, fmt: hvkit.DiskFormat) -> None:
    content = _content(6 * MIB, 3)
    vol = _import(vbox, tmp_path, f"rt-{fmt.name.lower()}", content, fmt)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", vol.path or ""], capture_output=True,
                                     check=True, text=True).stdout)  # fmt: skip
    assert info["format"] == FORMATS[fmt] and info["virtual-size"] == len(content)  # a real image of that format
    with vbox.translating("export_disk"):
        image = vbox.backend.export_disk(vol, str(tmp_path / "out"), lambda a, b: None)
    assert image.temporary and image.format is hvkit.DiskFormat.VDI
    raw = migration.convert_image(image, hvkit.DiskFormat.RAW, tmp_path / "raw")
    assert Path(raw.path).read_bytes() == content
    assert [v.id for v in vbox.volumes.list()] == [vol.id]  # the export's copy is not left registered


def test_linked_clone_exports_flattened(vbox: Hypervisor, tmp_path: Path) -> None:
    content = _content(4 * MIB, 9)
    vol = _import(vbox, tmp_path, "base-disk", content, hvkit.DiskFormat.VDI)
    src = vbox.vms.create(hvkit.VMSpec(name="base", disks=[hvkit.DiskSpec(volume=vol.id, bus="sata")]))
    clone = vbox.vms.clone(src, "base-linked", linked=True)
    child = vbox.volumes.get(clone.disks[0].volume or "")
    assert child.backing == vol.id
    with vbox.translating("export_disk"):
        image = vbox.backend.export_disk(child, str(tmp_path / "out"), lambda a, b: None)
    raw = migration.convert_image(image, hvkit.DiskFormat.RAW, tmp_path / "raw")
    assert Path(raw.path).read_bytes() == content


def test_sim_to_vbox_and_back(vbox: Hypervisor, tmp_path: Path) -> None:
    """The migration engine both ways between the in-process simulator and VirtualBox; checksums agree."""
    tag = f"vbx{uuid.uuid4().hex[:6]}"
    with hvkit.connect(f"sim://{tag}") as sim:
        content = _content(8 * MIB, 21)
        vol = sim.volumes.create("default", f"{tag}-d", 8 / 1024)
        raw = tmp_path / "c.raw"
        raw.write_bytes(content)
        sim.volumes.upload(vol, raw)
        src = sim.vms.create(hvkit.VMSpec(name=tag, cpus=2, memory_mib=512, disks=[hvkit.DiskSpec(volume=vol.id)],
                                          nics=[hvkit.NicSpec("default")]))  # fmt: skip
        plan = migration.plan(sim, src.name, vbox, network_map={"default": "nat"}, storage_map={"default": "default"})
        assert plan.ok, plan.problems
        assert plan.disks[0].target_format in (hvkit.DiskFormat.VDI, hvkit.DiskFormat.VMDK, hvkit.DiskFormat.VHD)
        there = plan.run(journal_dir=tmp_path / "j1")
        assert there.verified
        made = vbox.vms.get(there.vm.id)
        assert (made.cpus, made.memory_mib, [n.mac for n in made.nics]) == (2, 512, [n.mac for n in src.nics])
        back = migration.plan(
            vbox, made.name, sim, name=f"{tag}-back", network_map={"nat": "default"}, keep_macs=False
        ).run(journal_dir=tmp_path / "j2")
        assert back.verified
        assert back.disks[0].target_checksum == there.disks[0].source_checksum == checksum_bytes(content)


# -- VirtualBox <-> KVM --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kvm() -> Iterator[Hypervisor]:
    yield from kvm_hypervisor()


@pytest.fixture
def tag(kvm: Hypervisor) -> Iterator[str]:
    name = f"hvt-vbox-{uuid.uuid4().hex[:6]}"
    yield name
    for vm in [v for v in kvm.vms.list() if v.name.startswith(name)]:
        kvm.vms.delete(vm, force=True)
    for vol in [v for v in kvm.volumes.list() if v.name.startswith(name)]:
        kvm.volumes.delete(vol)


def test_kvm_to_vbox(kvm: Hypervisor, vbox: Hypervisor, tmp_path: Path, tag: str) -> None:
    content = _content(8 * MIB, 31)
    vol = kvm.volumes.create("default", f"{tag}-src", 8 / 1024)
    raw = tmp_path / "k.raw"
    raw.write_bytes(content)
    kvm.volumes.upload(vol.id, raw)
    src = kvm.vms.create(hvkit.VMSpec(name=tag, cpus=1, memory_mib=256, disks=[hvkit.DiskSpec(volume=vol.id)],
                                      nics=[hvkit.NicSpec("default")]))  # fmt: skip
    plan = migration.plan(kvm, src.name, vbox, network_map={"default": "nat"}, storage_map={"default": "default"})
    assert plan.ok, plan.problems
    assert plan.disks[0].target_bus in (hvkit.DiskBus.VIRTIO, hvkit.DiskBus.SATA)
    result = plan.run(journal_dir=tmp_path / "journal")
    assert result.verified
    assert result.disks[0].source_checksum == checksum_bytes(content + bytes(src.disks[0].size_bytes - len(content)))
    made = vbox.vms.get(result.vm.id)
    assert [n.mac for n in made.nics] == [n.mac for n in src.nics]
    with vbox.translating("export_disk"):
        image = vbox.backend.export_disk(vbox.volumes.get(made.disks[0].volume or ""), str(tmp_path / "b"),
                                         lambda a, b: None)  # fmt: skip
    back = migration.convert_image(image, hvkit.DiskFormat.RAW, tmp_path / "raw")
    assert Path(back.path).read_bytes()[: len(content)] == content


@pytest.mark.slow
def test_vbox_to_kvm_boots(kvm: Hypervisor, vbox: Hypervisor, tmp_path: Path, tag: str) -> None:
    """The bootable test disk, imported into VirtualBox, migrated to KVM: it boots and prints its marker."""
    from hvkit.testing.guest_image import build_guest_image, wait_for_marker

    if os.geteuid() != 0:
        pytest.skip("building the bootable guest image needs root")
    marker = "hvkit-migrated-from-vbox"
    image = build_guest_image(marker).read_bytes()
    vol = _import(vbox, tmp_path, f"{tag}-boot", image, hvkit.DiskFormat.VMDK)
    src = vbox.vms.create(hvkit.VMSpec(name=tag, memory_mib=256, disks=[hvkit.DiskSpec(volume=vol.id, bus="sata")],
                                       nics=[hvkit.NicSpec("nat")]))  # fmt: skip
    plan = migration.plan(vbox, src.name, kvm, network_map={"nat": "default"}, storage_map={"default": "default"},
                          disk_bus="virtio")  # fmt: skip
    assert plan.ok, plan.problems
    result = plan.run(start=True, journal_dir=tmp_path / "journal")
    assert result.verified and result.started
    vm = kvm.vms.get(result.vm.id)
    assert [n.mac for n in vm.nics] == [n.mac for n in src.nics]
    assert wait_for_marker(vm.extra["serial_log"], marker, BOOT_TIMEOUT) == marker
