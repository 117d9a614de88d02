"""Migrations to and from Hyper-V with the engine: KVM -> Hyper-V, Hyper-V -> KVM (boots), VMware -> Hyper-V.

The Hyper-V side is the host model behind the WinRM endpoint, its disks moved over a real Samba server;
KVM is the local libvirtd, VMware vcsim. Each path skips, saying why, when its other side is not here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit import migration
from hvkit.hypervisor import Hypervisor
from hvkit.migration._plan import can_export, can_import
from hvkit.migration._verify import checksum_bytes
from hvkit.testing.hyperv_sim import HyperVHost
from hvkit.testing.hyperv_sim._samba import samba_available
from tests.migration._paths import data_content, kvm_hypervisor, read_back, remove, source_on, vcenter_hypervisor

MIB = 1024 * 1024
BOOT_TIMEOUT = 180.0

kvm = pytest.fixture(scope="module", name="kvm")(kvm_hypervisor)
vcenter = pytest.fixture(scope="module", name="vcenter")(vcenter_hypervisor)


@pytest.fixture(scope="module")
def hyperv() -> Iterator[Hypervisor]:
    if not samba_available():
        pytest.skip("disk transfers to Hyper-V go over SMB: install samba (scripts/setup.d/50-hyperv.packages)")
    with HyperVHost(smb=True, switches=("default",)) as host:
        url = f"{host.url}?{host.options}"
        with hvkit.connect(url, password=host.password, ca_file=host.ca_file, timeout=60) as hv:
            assert can_export(hv) and can_import(hv)
            yield hv


@pytest.fixture
def tag() -> str:
    return f"hvt-hv-{uuid.uuid4().hex[:6]}"


@pytest.mark.parametrize("source_kind", ["kvm", "vmware"])
def test_to_hyperv(
    request: pytest.FixtureRequest, source_kind: str, hyperv: Hypervisor, tmp_path: Path, tag: str
) -> None:
    """Into Hyper-V: converted to VHDX here, written over SMB, verified by checksum, read back the same."""
    src: Hypervisor = request.getfixturevalue({"kvm": "kvm", "vmware": "vcenter"}[source_kind])
    content = data_content(8 * MIB, 21)
    pool = "default" if source_kind == "kvm" else src.pools.list()[0].name
    net = "default" if source_kind == "kvm" else src.networks.list()[0].name
    vm = source_on(src, tmp_path, tag, content, pool, net, "scsi")
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
        assert read_back(hyperv, made.disks[0].volume or "", tmp_path, len(content)) == content
    finally:
        remove(src, tag)
        remove(hyperv, tag)


@pytest.mark.slow
def test_hyperv_to_kvm_boots(hyperv: Hypervisor, kvm: Hypervisor, tmp_path: Path, tag: str) -> None:
    """The bootable test disk on Hyper-V (uploaded over SMB), migrated to KVM: it boots and prints its marker."""
    import os

    from hvkit.testing.guest_image import build_guest_image, wait_for_marker

    if os.geteuid() != 0:
        pytest.skip("building the bootable guest image needs root")
    image = build_guest_image("hvkit-migrated-from-hyperv").read_bytes()
    src = source_on(hyperv, tmp_path, tag, image, "default", "External", "ide")
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
        remove(kvm, tag)
        remove(hyperv, tag)
