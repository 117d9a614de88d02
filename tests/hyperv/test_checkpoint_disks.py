"""A VM with checkpoints runs on differencing disks (.avhdx beside their parents): they are volumes like any other.

Listed with their parents and users, read by id, guarded against deletes and writes that would break a checkpoint.
"""

from __future__ import annotations

import io
import subprocess

import pytest

from hvkit import errors
from hvkit.hypervisor import Hypervisor
from hvkit.models import DiskSpec, NicSpec, VMSpec
from hvkit.testing.hyperv_sim import HyperVHost


def _spec(name: str) -> VMSpec:
    return VMSpec(
        name=name,
        cpus=1,
        memory_mib=128,
        disks=[DiskSpec(size_gib=0.01, pool="default")],
        nics=[NicSpec(network="External")],
    )


def _write(host: HyperVHost, path: str, byte: int) -> None:
    """64 KiB of ``byte`` at offset 0 of the disk file (the guest writing)."""
    subprocess.run(
        ["qemu-io", "-c", f"write -P {byte:#x} 0 64k", str(host.state.local(path))], check=True, capture_output=True
    )


def _head(hv: Hypervisor, volume: str) -> bytes:
    """The first bytes of the volume as the guest reads it (over SMB; a differencing disk merged on the host)."""
    sink = io.BytesIO()
    hv.volumes.download(volume, sink)
    return sink.getvalue()[:2]


def test_listing_shows_checkpoint_disks_with_parent_and_users(hv: Hypervisor) -> None:
    vm = hv.vms.create(_spec("hvk-avhdx"))
    base = vm.disks[0].volume or ""
    try:
        first = hv.snapshots.create(vm, "first")
        leaf = hv.vms.get(vm).disks[0].volume or ""
        assert leaf.lower().endswith(".avhdx") and leaf.rpartition("\\")[0] == base.rpartition("\\")[0]
        listed = {v.id: v for v in hv.volumes.list("default") if v.name.startswith("hvk-avhdx")}
        assert set(listed) == {base, leaf}
        current = listed[leaf]
        assert current.backing == base and current.pool == "default"
        assert current.extra["differencing"] and current.extra["checkpoint_disk"] and current.extra["vhd_type"] == 4
        assert current.extra["attached_to"] == vm.id and current.extra["read_by"] == (vm.id,)
        assert current.capacity_bytes == listed[base].capacity_bytes  # a differencing disk has its parent's size
        parent = listed[base]
        assert parent.backing is None and not parent.extra["differencing"]
        assert parent.extra["attached_to"] is None and parent.extra["read_by"] == (vm.id,)
        assert hv.volumes.get(leaf) == current  # the id a VM's disk names resolves
        for path in (leaf, base):  # the VM's current disk, and what it reads through
            with pytest.raises(errors.InvalidState, match=r"in use|used by"):
                hv.volumes.delete(path)
        with pytest.raises(errors.InvalidState, match="read by differencing disks"):
            hv.volumes.upload(base, io.BytesIO(b"\0" * 65536))

        # a branch: 'second' freezes the first .avhdx, a revert to 'first' leaves it read by 'second' only
        second = hv.snapshots.create(vm, "second")
        hv.snapshots.revert(first)
        held = {v.id: v for v in hv.volumes.list("default") if v.name.startswith("hvk-avhdx")}
        assert leaf in held and held[leaf].extra["attached_to"] is None and held[leaf].extra["read_by"] == (vm.id,)
        with pytest.raises(errors.InvalidState, match="checkpoints"):
            hv.volumes.delete(leaf)
        hv.snapshots.delete(second)
        hv.snapshots.delete(first)
        assert [v.id for v in hv.volumes.list("default") if v.name.startswith("hvk-avhdx")] == [base]
        assert hv.vms.get(vm).disks[0].volume == base
    finally:
        hv.vms.delete(vm)


def test_a_linked_clones_disk_in_a_pool_subfolder_resolves(hv: Hypervisor) -> None:
    vm = hv.vms.create(_spec("hvk-lsrc"))
    clone = hv.vms.clone(vm, "hvk-lclone", linked=True)
    try:
        disk = clone.disks[0]
        vol = hv.volumes.get(disk.volume or "")
        assert vol.pool == disk.pool == "default" and vol.backing == vm.disks[0].volume
        assert vol.extra["differencing"] and not vol.extra["checkpoint_disk"]
        assert vol.extra["attached_to"] == clone.id
        assert set(hv.volumes.get(vm.disks[0].volume or "").extra["read_by"]) == {vm.id, clone.id}
    finally:
        hv.vms.delete(clone)
        hv.vms.delete(vm)


@pytest.mark.parametrize("ref", ["hvk-none.vhdx", "C:hvk.vhdx", "C:\\Hyper-V\\", "\\\\server\\share"])
def test_a_volume_id_is_a_full_path(hv: Hypervisor, ref: str) -> None:
    before = hv.backend.round_trips  # type: ignore[attr-defined]
    with pytest.raises(errors.NotFound, match="full path"):
        hv.volumes.get(ref)
    assert hv.backend.round_trips == before  # type: ignore[attr-defined]  # refused before any call


def test_checkpoint_semantics_unchanged_with_writes_in_the_avhdx(hv: Hypervisor, host: HyperVHost) -> None:
    """A write after the checkpoint lands in the .avhdx: revert drops it, delete merges it into the .vhdx."""
    if host.samba is None:
        pytest.skip("volume downloads go over SMB: install samba (scripts/setup.d/50-hyperv.packages)")
    vm = hv.vms.create(_spec("hvk-sem"))
    base = vm.disks[0].volume or ""
    try:
        _write(host, base, 0x11)
        snap = hv.snapshots.create(vm, "s")
        _write(host, hv.vms.get(vm).disks[0].volume or "", 0x22)
        assert _head(hv, hv.vms.get(vm).disks[0].volume or "") == b"\x22\x22"  # merged read
        assert _head(hv, base) == b"\x11\x11"  # the checkpoint's state, untouched
        hv.snapshots.revert(snap)
        assert _head(hv, hv.vms.get(vm).disks[0].volume or "") == b"\x11\x11"
        _write(host, hv.vms.get(vm).disks[0].volume or "", 0x33)
        hv.snapshots.delete(snap)
        assert hv.vms.get(vm).disks[0].volume == base
        assert _head(hv, base) == b"\x33\x33"
    finally:
        hv.vms.delete(vm)


def test_a_running_vms_checkpoint_disk_is_not_read_under_it(hv: Hypervisor, host: HyperVHost) -> None:
    """The .avhdx a running VM writes is open in its worker process: Convert-VHD cannot read it (the host model
    refuses as Hyper-V does); stopped, it reads."""
    if host.samba is None:
        pytest.skip("volume downloads go over SMB: install samba (scripts/setup.d/50-hyperv.packages)")
    vm = hv.vms.create(_spec("hvk-busy"))
    try:
        hv.snapshots.create(vm, "s", memory=False)
        leaf = hv.vms.get(vm).disks[0].volume or ""
        hv.vms.start(vm)
        with pytest.raises(errors.InvalidState, match="being used by another process"):
            _head(hv, leaf)
        assert not [v for v in hv.volumes.list("default") if v.name.startswith(".hvkit-export")]
        hv.vms.stop(vm, force=True)
        assert _head(hv, leaf) == b"\0\0"
    finally:
        hv.vms.delete(vm)
