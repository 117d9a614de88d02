"""Replication on real QEMU (libvirtd at qemu:///system): a marker written into a running guest's disk reaches
the replica through an incremental sync (QEMU dirty bitmaps: libvirt checkpoints and a backup job), the
replica fails over and boots showing the marker; and sim -> KVM by block hashes, checksums equal."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit import replication
from hvkit.driver import DiskImage
from hvkit.hypervisor import Hypervisor
from hvkit.migration import checksum
from hvkit.models import DiskSpec, PowerState, VMSpec

from .conftest import MIB, make_source, random_writes, write_blocks

libvirt = pytest.importorskip("libvirt")
from tests.kvm.conftest import _qemu_available, sweep  # noqa: E402

pytestmark = pytest.mark.slow
BOOT_TIMEOUT = 180.0
MARKER_BEFORE = "hvkit-replica-before"
MARKER_AFTER = "hvkit-replica-after"


@pytest.fixture
def kvm() -> Iterator[tuple[Hypervisor, Hypervisor, str]]:
    """Two connections to this machine's libvirtd (source and target side) and a name prefix swept afterwards."""
    reason = _qemu_available()
    if reason:
        pytest.skip(reason)
    prefix = f"hvt-r{uuid.uuid4().hex[:6]}-"
    with (
        hvkit.connect("kvm:///system", virt_type="qemu") as src,
        hvkit.connect("kvm:///system", virt_type="qemu") as dst,
    ):
        try:
            yield src, dst, prefix
        finally:
            sweep(src, prefix)


def _volume_checksum(hv: Hypervisor, volume: str, size: int) -> str:
    vol = hv.volumes.get(volume)
    path = hv.backend.local_path(vol)
    assert path and vol.format
    return checksum(DiskImage(path, vol.format, size, False), size=size).value


def _write_through_qemu(domain: str, writes: list[tuple[int, bytes]]) -> None:
    """Write into a running guest's disk through QEMU's block layer (HMP qemu-io), as the guest would: QEMU's
    dirty bitmaps see these writes."""
    folder = Path(tempfile.mkdtemp(prefix="hvkit-replica-"))
    folder.chmod(0o755)  # QEMU runs as its own user
    try:
        for n, (offset, data) in enumerate(writes):
            chunk = folder / f"{n}.bin"
            chunk.write_bytes(data)
            chunk.chmod(0o644)
            command = (
                f'qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend "write -s {chunk} {offset} {len(data)}"'
            )
            out = subprocess.run(["virsh", "-c", "qemu:///system", "qemu-monitor-command", domain, "--hmp", command],
                                 capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
            assert not out.stdout.strip(), out.stdout
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_marker_written_in_a_running_guest_reaches_the_replica_which_boots_with_it(
    kvm: tuple[Hypervisor, Hypervisor, str], replication_root: Path
) -> None:
    from hvkit.testing.guest_image import build_guest_image, wait_for_marker

    src, dst, prefix = kvm
    before = build_guest_image(MARKER_BEFORE).read_bytes()
    after = build_guest_image(MARKER_AFTER).read_bytes()
    changes = [
        (i, after[i : i + 4096]) for i in range(0, len(after), 4096) if before[i : i + 4096] != after[i : i + 4096]
    ]
    assert 0 < len(changes) <= 4  # the marker file's block (debugfs rewrites it in place)

    image = Path(tempfile.mkdtemp()) / "guest.raw"
    image.write_bytes(before)
    vol = src.volumes.create("default", f"{prefix}src.qcow2", len(before) / 1024**3, format="qcow2")
    vol = src.volumes.upload(vol, image)
    shutil.rmtree(image.parent)
    vm = src.vms.create(VMSpec(prefix + "src", cpus=1, memory_mib=128, disks=[DiskSpec(volume=vol.id)]))
    vm = src.vms.start(vm)  # boot 1: the source runs through every sync

    replica = replication.create(src, vm, dst, replica_name=prefix + "replica", keep_macs=False, keep=2)
    assert replica.state.cbt, "QEMU tracks changed blocks: a checkpoint was made before the first snapshot"
    assert src.vms.get(vm.id).power_state is PowerState.RUNNING
    disk = replica.state.disks[0]
    assert _volume_checksum(dst, disk.replica_volume, disk.size) == disk.checksum

    _write_through_qemu(vm.name, changes)
    result = replica.sync(src, dst)
    print(result)
    sync = result.disks[0]
    assert sync.method == "cbt" and result.verified
    changed_64k = {off // (64 * 1024) for off, _ in changes}
    assert sync.changed_blocks >= len(changed_64k)  # the guest's own writes (if any) come along, nothing is missed
    assert sync.data_bytes <= sync.changed_blocks * 64 * 1024 < 4 * MIB
    assert _volume_checksum(dst, disk.replica_volume, disk.size) == sync.source_checksum
    assert len(src.snapshots.list(vm.id)) == 0  # the sync's snapshot is gone; the checkpoint chain moved on

    src.vms.stop(vm.id, force=True)  # the site is lost; fail over
    up = replica.failover(dst, source=src)
    assert up.power_state is PowerState.RUNNING and up.name == prefix + "replica"
    assert wait_for_marker(Path(up.extra["serial_log"]), MARKER_AFTER, BOOT_TIMEOUT) == MARKER_AFTER  # boot 2
    dst.vms.stop(up.id, force=True)


def test_sim_to_kvm_by_block_hashes(kvm: tuple[Hypervisor, Hypervisor, str], tmp_path: Path) -> None:
    _, dst, prefix = kvm
    tag = uuid.uuid4().hex[:8]
    with hvkit.connect(f"sim://rk{tag}") as src:
        vm = make_source(src, tmp_path)
        replica = replication.create(src, vm, dst, replica_name=prefix + "from-sim", network_map={"default": "default"})
        assert not replica.state.cbt  # the sim has no changed-block tracking
        disk = vm.disks[0]
        write_blocks(src, disk.volume or "", random_writes(disk.size_bytes, 4, 64 * 1024, 3), tmp_path)
        result = replica.sync(src, dst)
        assert result.verified and result.disks[0].method == "block-hash"
        assert 0 < result.disks[0].data_bytes <= 8 * 64 * 1024 and result.disks[1].data_bytes == 0
        for d in replica.state.disks:
            assert _volume_checksum(dst, d.replica_volume, d.size) == d.checksum
    from hvkit.backends.sim._world import forget

    forget(f"rk{tag}")
