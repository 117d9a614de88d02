"""Replication sim -> sim: first sync, incremental syncs by block hashes, points, failover, failback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hvkit import replication
from hvkit.driver import DiskImage
from hvkit.hypervisor import Hypervisor
from hvkit.migration import checksum
from hvkit.models import DiskFormat, PowerState
from hvkit.replication import BLOCK

from .conftest import MIB, make_source, random_writes, volume_file, write_blocks


def _checksum_of(hv: Hypervisor, volume: str, size: int) -> str:
    path, fmt = volume_file(hv, volume)
    return checksum(DiskImage(path, DiskFormat(fmt), size, False), size=size).value


def test_first_sync_then_only_changed_blocks_move(pair: tuple[Hypervisor, Hypervisor], tmp_path: Path) -> None:
    src, dst = pair
    vm = make_source(src, tmp_path)
    replica = replication.create(src, vm, dst, keep=2)
    assert src.vms.get(vm.id).power_state is PowerState.RUNNING  # the source kept running
    assert [p.number for p in replica.points] == [1]
    for d in replica.state.disks:
        assert _checksum_of(dst, d.replica_volume, d.size) == _checksum_of(src, d.source_volume, d.size) == d.checksum
    assert not src.snapshots.list(vm)  # the first sync's snapshot is gone

    unchanged = replica.sync(src, dst)
    assert unchanged.data_bytes == 0 and unchanged.verified

    disk0 = vm.disks[0]
    writes = [*random_writes(disk0.size_bytes, 5, 64 * 1024, 7), (3 * MIB + 100, b"x" * 5000)]  # 4 KiB-aligned
    write_blocks(src, disk0.volume or "", writes, tmp_path)
    touched = {b for off, data in writes for b in range(off // BLOCK, (off + len(data) - 1) // BLOCK + 1)}
    result = replica.sync(src, dst)
    assert result.verified and result.disks[1].data_bytes == 0
    assert result.disks[0].changed_blocks == len(touched) and result.data_bytes == len(touched) * BLOCK
    assert result.bytes_sent < result.data_bytes * 1.1
    assert [p.number for p in replica.points] == [2, 3]  # keep=2
    assert 0 < result.disks[0].control_bytes <= 16 * len(touched)  # ranges only: the replica's map was kept
    for d in replica.state.disks:
        assert _checksum_of(dst, d.replica_volume, d.size) == _checksum_of(src, d.source_volume, d.size)
    # the replica written behind the replication's back: its kept block map no longer holds; the sync finds out
    # (checksums differ), compares with what the replica holds and repairs it
    stray = replica.state.disks[1]
    write_blocks(dst, stray.replica_volume, [(MIB, b"stray" * 1000)], tmp_path)
    repaired = replica.sync(src, dst)
    assert repaired.verified and repaired.disks[1].data_bytes + repaired.disks[1].zero_bytes == BLOCK
    assert _checksum_of(dst, stray.replica_volume, stray.size) == _checksum_of(src, stray.source_volume, stray.size)
    again = replication.load(replica.state.name)
    assert [p.number for p in again.points] == [3, 4] and again.state.replica_vm == replica.state.replica_vm


def test_zeroed_blocks_become_zero_without_data(pair: tuple[Hypervisor, Hypervisor], tmp_path: Path) -> None:
    src, dst = pair
    vm = make_source(src, tmp_path, running=False)
    replica = replication.create(src, vm, dst, keep=0)
    disk1 = vm.disks[1]
    path, _ = volume_file(src, disk1.volume or "")
    with Path(path).open("r+b") as f:  # a raw disk: zero 1 MiB that held data
        content = f.read()
        start = next(i for i in range(0, len(content), 65536) if any(content[i : i + 65536])) // 65536 * 65536
        f.seek(start)
        f.write(bytes(MIB))
    result = replica.sync(src, dst)
    assert result.verified and result.disks[1].data_bytes == 0 and result.disks[1].zero_bytes > 0


def test_failover_and_failback(pair: tuple[Hypervisor, Hypervisor], tmp_path: Path) -> None:
    src, dst = pair
    vm = make_source(src, tmp_path)
    replica = replication.create(src, vm, dst)
    up = replica.failover(dst, source=src, stop_source=True)
    assert up.power_state is PowerState.RUNNING
    assert src.vms.get(vm.id).power_state is PowerState.STOPPED
    d0 = replica.state.disks[0]
    write_blocks(dst, d0.replica_volume, [(2 * MIB, b"written at the replica" * 100)], tmp_path)
    back = replica.failback(src, dst)
    assert back.verified and back.disks[0].data_bytes == 64 * 1024
    assert src.vms.get(vm.id).power_state is PowerState.RUNNING
    assert dst.vms.get(replica.state.replica_vm).power_state is PowerState.STOPPED
    assert _checksum_of(src, d0.source_volume, d0.size) == _checksum_of(dst, d0.replica_volume, d0.size)
    assert replica.sync(src, dst).data_bytes == 0  # replicating again, nothing new


def test_a_failed_first_sync_leaves_nothing(pair: tuple[Hypervisor, Hypervisor], tmp_path: Path) -> None:
    from hvkit.errors import HvkitError

    src, dst = pair
    vm = make_source(src, tmp_path)
    try:
        replication.create(src, vm, dst, network_map={"default": "missing"})
    except HvkitError as exc:
        assert "missing" in str(exc)
    else:
        raise AssertionError("a plan with problems must fail")
    assert not [v for v in dst.vms.list() if v.name == "web-1-replica"] and not dst.volumes.list()
    assert not (replication.default_root() / "web-1").exists()
    assert src.vms.get(vm.id).power_state is PowerState.RUNNING and not src.snapshots.list(vm)


def test_an_interrupted_sync_is_resumed(
    pair: tuple[Hypervisor, Hypervisor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hvkit.errors import BackendError
    from hvkit.replication import _blocks, _sync

    src, dst = pair
    vm = make_source(src, tmp_path)
    replica = replication.create(src, vm, dst)
    for disk in vm.disks:
        write_blocks(src, disk.volume or "", random_writes(disk.size_bytes, 3, BLOCK, 11), tmp_path)
    real = _blocks.apply_blocks  # what _sync imported
    calls = []

    def failing(*args: Any, **kwargs: Any) -> _blocks.Applied:
        calls.append(1)
        if len(calls) == 2:  # the second disk: its writes fail midway
            raise BackendError("the link went down")
        return real(*args, **kwargs)

    monkeypatch.setattr(_sync, "apply_blocks", failing)
    with pytest.raises(BackendError, match="link went down"):
        replica.sync(src, dst)
    monkeypatch.setattr(_sync, "apply_blocks", real)
    assert src.snapshots.list(vm)  # the sync's snapshot stays for the resume
    done = replica.resume(src, dst)
    assert done is not None and done.verified
    assert done.disks[0].data_bytes > 0 and done.disks[1].data_bytes > 0  # disk0 from the journal, disk1 redone
    assert not src.snapshots.list(vm)
    for d in replica.state.disks:
        assert _checksum_of(dst, d.replica_volume, d.size) == _checksum_of(src, d.source_volume, d.size)
    assert replica.resume(src, dst) is None  # nothing left to resume


def test_remove_ends_the_replication(pair: tuple[Hypervisor, Hypervisor], tmp_path: Path) -> None:
    src, dst = pair
    vm = make_source(src, tmp_path)
    replica = replication.create(src, vm, dst)
    replica.remove(src, dst)
    assert not [v for v in dst.vms.list() if v.name == "web-1-replica"] and not dst.volumes.list()
    assert not (replication.default_root() / "web-1").exists()
    assert src.vms.get(vm.id).power_state is PowerState.RUNNING


@pytest.mark.parametrize("point", ["disk0.sync:acted", "disk1.sync:done"])
def test_a_killed_sync_is_resumed(tmp_path: Path, point: str) -> None:
    import os
    import subprocess
    import sys
    import uuid

    import hvkit

    from .conftest import forget

    tag = uuid.uuid4().hex[:6]
    src_url = f"sim://ks{tag}?state_dir={tmp_path / 'src'}"
    dst_url = f"sim://kd{tag}?state_dir={tmp_path / 'dst'}"
    try:
        with hvkit.connect(src_url) as src, hvkit.connect(dst_url) as dst:
            vm = make_source(src, tmp_path)
            replication.create(src, vm, dst, name="killed")
            for disk in vm.disks:
                write_blocks(src, disk.volume or "", random_writes(disk.size_bytes, 3, BLOCK, 21), tmp_path)
        code = (
            "import hvkit\nfrom hvkit import replication\n"
            f"with hvkit.connect({src_url!r}) as s, hvkit.connect({dst_url!r}) as d:\n"
            "    replication.load('killed').sync(s, d)\n"
        )
        env = {**os.environ, "HVKIT_REPLICATION_CRASH_AT": point}
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == -9, proc.stderr
        with hvkit.connect(src_url) as src, hvkit.connect(dst_url) as dst:
            replica = replication.load("killed")
            done = replica.resume(src, dst)
            assert done is not None and done.verified
            assert not src.snapshots.list(vm.id)
            for d in replica.state.disks:
                assert _checksum_of(dst, d.replica_volume, d.size) == _checksum_of(src, d.source_volume, d.size)
            assert replica.sync(src, dst).data_bytes == 0
    finally:
        forget(f"ks{tag}", f"kd{tag}")
