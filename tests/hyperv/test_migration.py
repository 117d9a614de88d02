"""Migrations to and from Hyper-V with the engine: KVM -> Hyper-V, Hyper-V -> KVM (boots), VMware -> Hyper-V.

The Hyper-V side is the host model behind the WinRM endpoint, its disks moved over a real Samba server;
KVM is the local libvirtd, VMware vcsim. Each path skips, saying why, when its other side is not here.
"""

from __future__ import annotations

import random
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit import migration
from hvkit.hypervisor import Hypervisor
from hvkit.migration import convert_image
from hvkit.migration._plan import can_export, can_import
from hvkit.migration._verify import checksum_bytes
from hvkit.testing.hyperv_sim import HyperVHost
from hvkit.testing.hyperv_sim._samba import samba_available

MIB = 1024 * 1024
BOOT_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def hyperv() -> Iterator[Hypervisor]:
    if not samba_available():
        pytest.skip("disk transfers to Hyper-V go over SMB: install samba (scripts/setup.d/50-hyperv.packages)")
    with HyperVHost(smb=True, switches=("default",)) as host:
        url = f"{host.url}?{host.options}"
        with hvkit.connect(url, password=host.password, ca_file=host.ca_file, timeout=60) as hv:
            assert can_export(hv) and can_import(hv)
            yield hv


@pytest.fixture(scope="module")
def kvm() -> Iterator[Hypervisor]:
    libvirt = pytest.importorskip("libvirt", reason="the kvm backend needs libvirt-python")
    try:
        conn = libvirt.open("qemu:///system")
        conn.storagePoolLookupByName("default")
        conn.networkLookupByName("default")
        conn.close()
    except libvirt.libvirtError as exc:
        pytest.skip(f"no usable libvirtd at qemu:///system ({exc.get_error_message()}); run scripts/setup.d/20-kvm.sh")
    with hvkit.connect("kvm:///system", virt_type="qemu") as hv:
        yield hv


@pytest.fixture(scope="module")
def vcenter() -> Iterator[Hypervisor]:
    pytest.importorskip("pyVmomi", reason="the vmware backend needs pyvmomi")
    if shutil.which("go") is None:
        pytest.skip("vcsim needs the Go compiler: see scripts/setup.d/30-vmware.packages")
    from hvkit.testing.vcsim import Vcsim, VcsimConfig

    config = VcsimConfig(esx=False, datastores=1, username="admin@vsphere.local", password="Mig-pa55word")
    with Vcsim(config) as sim, hvkit.connect(sim.url, password=sim.password, ca_file=sim.cert_file) as hv:
        yield hv


@pytest.fixture
def tag() -> str:
    return f"hvt-hv-{uuid.uuid4().hex[:6]}"


def _content(size: int, seed: int) -> bytes:
    rnd = random.Random(seed)
    data = bytearray(size)
    for off in (0, size // 3, size - 3 * 65536):
        data[off : off + 100_000] = rnd.randbytes(min(100_000, size - off))
    data[:16] = f"mig-marker-{seed:05d}".encode()
    return bytes(data)


def _source_on(hv: Hypervisor, tmp: Path, name: str, content: bytes, pool: str, network: str, bus: str) -> hvkit.VM:
    """A stopped VM whose one disk holds ``content``, written through the backend's volume upload."""
    raw = tmp / f"{name}.raw"
    raw.write_bytes(content)
    vol = hv.volumes.create(pool, f"{name}-src", max(len(content) / 1024**3, 0.01))
    hv.volumes.upload(vol.id, raw)
    spec = hvkit.VMSpec(
        name=name, cpus=1, memory_mib=256, disks=[hvkit.DiskSpec(volume=vol.id, bus=bus)], nics=[hvkit.NicSpec(network)]
    )
    vm: hvkit.VM = hv.vms.create(spec)
    return vm


def _read_back(hv: Hypervisor, volume: str, tmp: Path, size: int) -> bytes:
    work = tmp / f"back-{uuid.uuid4().hex[:6]}"
    with hv.translating("export_disk"):
        image = hv.backend.export_disk(hv.volumes.get(volume), str(work), lambda a, b: None)
    raw = convert_image(image, hvkit.DiskFormat.RAW, work)
    return Path(raw.path).read_bytes()[:size]


def _remove(hv: Hypervisor, name: str) -> None:
    for vm in hv.vms.list():
        if vm.name.startswith(name):
            hv.vms.delete(vm, force=True)
    for vol in hv.volumes.list():
        if vol.name.startswith(name):
            hv.volumes.delete(vol)


@pytest.mark.parametrize("source_kind", ["kvm", "vmware"])
def test_to_hyperv(
    request: pytest.FixtureRequest, source_kind: str, hyperv: Hypervisor, tmp_path: Path, tag: str
) -> None:
    """Into Hyper-V: converted to VHDX here, written over SMB, verified by checksum, read back the same."""
    src: Hypervisor = request.getfixturevalue({"kvm": "kvm", "vmware": "vcenter"}[source_kind])
    content = _content(8 * MIB, 21)
    pool = "default" if source_kind == "kvm" else src.pools.list()[0].name
    net = "default" if source_kind == "kvm" else src.networks.list()[0].name
    vm = _source_on(src, tmp_path, tag, content, pool, net, "scsi")
    try:
        plan = migration.plan(src, vm.name, hyperv, network_map={net: "External"}, storage_map={pool: "default"})
        assert plan.ok, plan.problems
        assert plan.disks[0].target_format is hvkit.DiskFormat.VHDX
        result = plan.run(journal_dir=tmp_path / "journal")
        assert result.verified
        expected = checksum_bytes(content + bytes(plan.disks[0].size - len(content)))
        assert result.disks[0].source_checksum == result.disks[0].target_checksum == expected
        made = hyperv.vms.get(result.vm.id)
        assert made.disks[0].pool == "default" and made.disks[0].format is hvkit.DiskFormat.VHDX
        assert [n.mac for n in made.nics] == [n.mac for n in src.vms.get(vm.id).nics]  # MAC kept
        assert _read_back(hyperv, made.disks[0].volume or "", tmp_path, len(content)) == content
    finally:
        _remove(src, tag)
        _remove(hyperv, tag)


@pytest.mark.slow
def test_hyperv_to_kvm_boots(hyperv: Hypervisor, kvm: Hypervisor, tmp_path: Path, tag: str) -> None:
    """The bootable test disk on Hyper-V (uploaded over SMB), migrated to KVM: it boots and prints its marker."""
    import os

    from hvkit.testing.guest_image import build_guest_image, wait_for_marker

    if os.geteuid() != 0:
        pytest.skip("building the bootable guest image needs root")
    image = build_guest_image("hvkit-migrated-from-hyperv").read_bytes()
    src = _source_on(hyperv, tmp_path, tag, image, "default", "External", "ide")
    try:
        plan = migration.plan(
            hyperv,
            src.name,
            kvm,
            network_map={"External": "default"},
            storage_map={"default": "default"},
            disk_bus="virtio",
        )
        assert plan.ok, plan.problems
        result = plan.run(start=True, journal_dir=tmp_path / "journal")
        assert result.verified and result.started
        assert result.disks[0].source_checksum == checksum_bytes(image + bytes(plan.disks[0].size - len(image)))
        assert result.disks[0].bytes_moved > 0
        vm = kvm.vms.get(result.vm.id)
        assert [n.mac for n in vm.nics] == [n.mac for n in src.nics]  # MAC kept
        assert wait_for_marker(vm.extra["serial_log"], "hvkit-migrated-from-hyperv", BOOT_TIMEOUT)
        assert hyperv.vms.get(src.id).power_state is hvkit.PowerState.STOPPED
    finally:
        _remove(kvm, tag)
        _remove(hyperv, tag)
