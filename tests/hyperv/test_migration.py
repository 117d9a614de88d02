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
from hvkit.driver import DiskImage, ProgressFn
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
def hyperv_host() -> Iterator[HyperVHost]:
    if not samba_available():
        pytest.skip("disk transfers to Hyper-V go over SMB: install samba (scripts/setup.d/50-hyperv.packages)")
    with HyperVHost(smb=True, switches=("default",)) as host:
        yield host


@pytest.fixture(scope="module")
def hyperv(hyperv_host: HyperVHost) -> Iterator[Hypervisor]:
    host = hyperv_host
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


def test_a_vm_with_a_checkpoint_to_sim(hyperv: Hypervisor, hyperv_host: HyperVHost, tmp_path: Path, tag: str) -> None:
    """A VM with a checkpoint runs on a differencing .avhdx: its state of now (the checkpoint's data and the writes
    after it) migrates, merged on the host by Convert-VHD, checksums verified; the checkpoint still deletes after."""
    import subprocess

    content = data_content(8 * MIB, 41)
    src = source_on(hyperv, tmp_path, tag, content, "default", "External", "scsi")
    base = src.disks[0].volume or ""
    snap = hyperv.snapshots.create(src, "before-move")
    leaf = hyperv.vms.get(src.id).disks[0].volume or ""
    assert leaf.lower().endswith(".avhdx")
    listed = {v.id: v for v in hyperv.volumes.list("default")}
    assert listed[leaf].backing == base and listed[leaf].extra["differencing"]
    later = bytes([0x5A]) * 65536  # the guest writes after the checkpoint: into the .avhdx
    subprocess.run(
        ["qemu-io", "-c", f"write -P 0x5a {MIB} 64k", str(hyperv_host.state.local(leaf))],
        check=True,
        capture_output=True,
    )
    expected = content[:MIB] + later + content[MIB + len(later) :]
    with hvkit.connect(f"sim://{tag}") as sim:
        try:
            plan = migration.plan(
                hyperv,
                src.name,
                sim,
                network_map={"External": sim.networks.list()[0].name},
                storage_map={"default": sim.pools.list()[0].name},
            )
            assert any("snapshot" in p for p in plan.problems)  # the checkpoint would be lost: said, not done
            plan = migration.plan(
                hyperv,
                src.name,
                sim,
                network_map={"External": sim.networks.list()[0].name},
                storage_map={"default": sim.pools.list()[0].name},
                allow_snapshot_loss=True,
            )
            assert plan.ok, plan.problems
            assert plan.disks[0].source_volume == leaf
            result = plan.run(journal_dir=tmp_path / "journal")
            assert result.verified
            checksum = checksum_bytes(expected + bytes(plan.disks[0].size - len(expected)))
            assert result.disks[0].source_checksum == result.disks[0].target_checksum == checksum
            made = sim.vms.get(result.vm.id)
            assert read_back(sim, made.disks[0].volume or "", tmp_path, len(expected)) == expected
        finally:
            remove(sim, tag)
    # the source is as it was: still on its .avhdx, the checkpoint there, no export file left beside the disks
    assert hyperv.vms.get(src.id).disks[0].volume == leaf
    assert [s.name for s in hyperv.snapshots.list(src)] == ["before-move"]
    assert {v.id for v in hyperv.volumes.list("default") if v.name.startswith(tag)} == {base, leaf}
    assert not [v for v in hyperv.volumes.list("default") if v.name.startswith(".hvkit-export")]
    try:
        hyperv.snapshots.delete(snap)  # merges the .avhdx into the .vhdx: the VM keeps its latest data
        assert hyperv.vms.get(src.id).disks[0].volume == base
        assert {v.id for v in hyperv.volumes.list("default") if v.name.startswith(tag)} == {base}
        assert read_back(hyperv, base, tmp_path, len(expected)) == expected
    finally:
        remove(hyperv, tag)


def test_a_running_vm_with_a_checkpoint_to_sim_from_a_snapshot(
    hyperv: Hypervisor, hyperv_host: HyperVHost, tmp_path: Path, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """snapshot=True: hvkit checkpoints the running VM and exports each disk as that checkpoint holds it (its
    .avhdx merged with the chain under it); the guest's later writes stay out; hvkit's checkpoint goes, the user's
    stays, the VM runs on."""
    import subprocess

    def write(path: str, byte: int, offset: int) -> None:
        local = str(hyperv_host.state.local(path))
        subprocess.run(["qemu-io", "-c", f"write -P {byte:#x} {offset} 64k", local], check=True, capture_output=True)

    content = data_content(8 * MIB, 43)
    src = source_on(hyperv, tmp_path, tag, content, "default", "External", "scsi")
    hyperv.snapshots.create(src, "users")
    write(hyperv.vms.get(src.id).disks[0].volume or "", 0x5A, MIB)  # after the user's checkpoint: in its .avhdx
    expected = content[:MIB] + bytes([0x5A]) * 65536 + content[MIB + 65536 :]
    hyperv.vms.start(src)
    with hvkit.connect(f"sim://{tag}") as sim:
        try:
            plan = migration.plan(
                hyperv,
                src.name,
                sim,
                network_map={"External": sim.networks.list()[0].name},
                storage_map={"default": sim.pools.list()[0].name},
                snapshot=True,
                allow_snapshot_loss=True,
            )
            assert plan.ok, plan.problems
            taken = plan.disks[0].source_volume
            # the guest writes on while the disks are read: into hvkit's checkpoint's child, not exported
            original = hyperv.backend.export_disk

            def export_while_writing(
                volume: hvkit.Volume, workdir: str, progress: ProgressFn, snapshot: hvkit.Snapshot | None = None
            ) -> DiskImage:
                write(hyperv.vms.get(src.id).disks[0].volume or "", 0x77, 2 * MIB)
                return original(volume, workdir, progress, snapshot)

            with monkeypatch.context() as patch:
                patch.setattr(hyperv.backend, "export_disk", export_while_writing)
                result = plan.run(journal_dir=tmp_path / "journal")
            assert result.verified
            checksum = checksum_bytes(expected + bytes(plan.disks[0].size - len(expected)))
            assert result.disks[0].source_checksum == result.disks[0].target_checksum == checksum
            made = sim.vms.get(result.vm.id)
            assert read_back(sim, made.disks[0].volume or "", tmp_path, len(expected)) == expected
        finally:
            remove(sim, tag)
    try:
        after = hyperv.vms.get(src.id)
        assert after.power_state is hvkit.PowerState.RUNNING
        assert [s.name for s in hyperv.snapshots.list(src)] == ["users"]  # hvkit's checkpoint merged away
        assert after.disks[0].volume == taken  # back on the .avhdx the user's checkpoint made
        assert not [v for v in hyperv.volumes.list("default") if v.name.startswith(".hvkit-export")]
        hyperv.vms.stop(src, force=True)
        now = read_back(hyperv, taken, tmp_path, len(expected))
        assert now[2 * MIB : 2 * MIB + 65536] == bytes([0x77]) * 65536  # the guest's write kept on the source
    finally:
        remove(hyperv, tag)
