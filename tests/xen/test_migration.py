"""Migration paths with Xen: VMware (vcsim) -> Xen and Xen -> KVM (the KVM side boots what it received)."""

from __future__ import annotations

import os
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
from hvkit.migration._verify import checksum_bytes
from hvkit.testing.xapi_sim import XapiSimulator
from tests.migration._paths import kvm_hypervisor

MIB = 1024 * 1024
POOL = "NFS storage"
NET = "Pool-wide network associated with eth0"
BOOT_TIMEOUT = 180.0


@pytest.fixture
def xen(xapi: XapiSimulator) -> Iterator[Hypervisor]:
    with hvkit.connect(xapi.url, password=xapi.password, ca_file=xapi.ca_file, timeout=30) as hv:
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


@pytest.fixture(scope="module")
def kvm() -> Iterator[Hypervisor]:
    yield from kvm_hypervisor()


@pytest.fixture
def tag() -> str:
    return f"hvt-xen-{uuid.uuid4().hex[:6]}"


def _content(size: int, seed: int) -> bytes:
    rnd = random.Random(seed)
    data = bytearray(size)
    for off in (0, size // 3, size - 3 * 65536):
        data[off : off + 100_000] = rnd.randbytes(min(100_000, size - off))
    data[:16] = f"xen-marker-{seed:05d}".encode()
    return bytes(data)


def _source(hv: Hypervisor, tmp: Path, name: str, content: bytes, pool: str, network: str) -> hvkit.VM:
    raw = tmp / f"{name}.raw"
    raw.write_bytes(content)
    vol = hv.volumes.create(pool, f"{name}-src", max(len(content) / 1024**3, 0.01))
    hv.volumes.upload(vol.id, raw)
    spec = hvkit.VMSpec(
        name=name, cpus=1, memory_mib=256, disks=[hvkit.DiskSpec(volume=vol.id)], nics=[hvkit.NicSpec(network)]
    )
    vm: hvkit.VM = hv.vms.create(spec)
    return vm


def _read_back(hv: Hypervisor, volume: str, tmp: Path, size: int) -> bytes:
    work = tmp / f"back-{uuid.uuid4().hex[:6]}"
    with hv.translating("export_disk"):
        image = hv.backend.export_disk(hv.volumes.get(volume), str(work), lambda a, b: None)
    return Path(convert_image(image, hvkit.DiskFormat.RAW, work).path).read_bytes()[:size]


def _remove(hv: Hypervisor, prefix: str) -> None:
    for vm in hv.vms.list():
        if vm.name.startswith(prefix):
            hv.vms.delete(vm, force=True)
    for vol in hv.volumes.list():
        if vol.name.startswith(prefix):
            hv.volumes.delete(vol)


def test_vmware_to_xen(vcenter: Hypervisor, xen: Hypervisor, tmp_path: Path, tag: str) -> None:
    content = _content(8 * MIB, 31)
    pool = vcenter.pools.list()[0].name
    src = _source(vcenter, tmp_path, tag, content, pool, "VM Network")
    try:
        plan = migration.plan(vcenter, src.name, xen, network_map={"VM Network": NET}, storage_map={pool: POOL})
        assert plan.ok, plan.problems
        assert plan.disks[0].target_format is hvkit.DiskFormat.VHD
        assert any("VMware Tools" in w for w in plan.warnings)
        result = plan.run(journal_dir=tmp_path / "journal")
        assert result.verified
        expected = checksum_bytes(content + bytes(plan.disks[0].size - len(content)))
        assert result.disks[0].source_checksum == result.disks[0].target_checksum == expected
        made = xen.vms.get(result.vm.id)
        assert made.disks[0].pool == POOL and [n.network for n in made.nics] == [NET]
        assert [n.mac for n in made.nics] == [n.mac for n in src.nics]  # MAC kept
        assert _read_back(xen, made.disks[0].volume or "", tmp_path, len(content)) == content
    finally:
        _remove(vcenter, tag)
        _remove(xen, tag)


@pytest.mark.slow
def test_xen_to_kvm_boots(xen: Hypervisor, kvm: Hypervisor, tmp_path: Path, tag: str) -> None:
    """The bootable test disk uploaded to Xen, migrated to KVM: it boots and prints the marker on its disk."""
    from hvkit.testing.guest_image import build_guest_image, wait_for_marker

    if os.geteuid() != 0:
        pytest.skip("building the bootable guest image needs root")
    marker = "hvkit-migrated-from-xen"
    image = build_guest_image(marker).read_bytes()
    src = _source(xen, tmp_path, tag, image, POOL, NET)
    try:
        plan = migration.plan(xen, src.name, kvm, network_map={NET: "default"}, storage_map={POOL: "default"},
                              disk_bus="virtio")  # fmt: skip
        assert plan.ok, plan.problems
        result = plan.run(start=True, journal_dir=tmp_path / "journal")
        assert result.verified and result.started
        assert result.disks[0].source_checksum == checksum_bytes(image + bytes(plan.disks[0].size - len(image)))
        vm = kvm.vms.get(result.vm.id)
        assert [n.mac for n in vm.nics] == [n.mac for n in src.nics]  # MAC kept
        assert wait_for_marker(vm.extra["serial_log"], marker, BOOT_TIMEOUT) == marker
        assert xen.vms.get(src.id).power_state is hvkit.PowerState.STOPPED
    finally:
        _remove(kvm, tag)
        _remove(xen, tag)
