"""Replication sim -> Proxmox simulator, the replica's volumes written in place on the node over SSH.

The node is this machine behind the loopback OpenSSH server (scripts/setup.d/60-migration.sh): the
replica's block digests and checksum are computed there (python3 + qemu-img), changed blocks are shipped as a
qcow2 patch and committed into the volume. The replica's content is checked independently here: its file
is copied back with export_disk and checksummed like the source's.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest

import hvkit
from hvkit import replication
from hvkit.driver import DiskImage
from hvkit.errors import Unsupported
from hvkit.hypervisor import Hypervisor
from hvkit.migration import checksum
from hvkit.models import DiskFormat, PowerState
from hvkit.replication import BLOCK

from .conftest import MIB, forget, make_source, random_writes, volume_file, write_blocks

pytest.importorskip("proxmoxer", reason="the proxmox backend needs proxmoxer")


class _Maps(TypedDict):
    network_map: dict[str, str]
    storage_map: dict[str, str]


MAPS: _Maps = {"network_map": {"default": "vmbr0"}, "storage_map": {"default": "local"}}


def _ssh_options() -> dict[str, str]:
    ssh_dir = Path(os.environ.get("HVKIT_MIGRATION_SSH_DIR", "/var/lib/hvkit/migration-ssh"))
    if not (ssh_dir / "known_hosts").is_file() or not os.access(ssh_dir / "client_ed25519", os.R_OK):
        pytest.skip(f"no loopback SSH server set up in {ssh_dir}: run scripts/setup.d/60-migration.sh")
    return {"ssh_port": os.environ.get("HVKIT_MIGRATION_SSH_PORT", "2222"), "ssh_key": str(ssh_dir / "client_ed25519"),
            "ssh_known_hosts": str(ssh_dir / "known_hosts"), "ssh_host_map": "pve1=127.0.0.1"}  # fmt: skip


@pytest.fixture(scope="module")
def pve_options() -> Iterator[tuple[str, dict[str, Any]]]:
    """The Proxmox simulator's URL and the connection options (its token, CA, SSH access to its node)."""
    from hvkit.testing.proxmox_sim import ProxmoxSimulator

    ssh = _ssh_options()
    with ProxmoxSimulator(nodes=1, task_delay=0.0) as sim:
        yield sim.url, {"token": sim.token, "ca_file": sim.ca_file, "timeout": 10, **ssh}


@pytest.fixture(scope="module")
def pve(pve_options: tuple[str, dict[str, Any]]) -> Iterator[Hypervisor]:
    url, options = pve_options
    with hvkit.connect(url, **options) as hv:
        yield hv


@pytest.fixture
def src() -> Iterator[Hypervisor]:
    tag = f"rps{uuid.uuid4().hex[:8]}"
    with hvkit.connect(f"sim://{tag}") as hv:
        yield hv
    forget(tag)


def _source_sum(hv: Hypervisor, volume: str, size: int) -> str:
    path, fmt = volume_file(hv, volume)
    return checksum(DiskImage(path, DiskFormat(fmt), size, False), size=size).value


def _replica_sum(pve: Hypervisor, volume: str, size: int, tmp: Path) -> str:
    image = pve.backend.export_disk(pve.volumes.get(volume), str(tmp), lambda a, b: None)
    try:
        return checksum(image, size=size).value
    finally:
        Path(image.path).unlink(missing_ok=True)


def _node_file(pve: Hypervisor, volume: str) -> tuple[str, str]:
    from hvkit.backends.proxmox._patch import _volume_file

    _, path, fmt = _volume_file(pve.backend.session, pve.volumes.get(volume))  # type: ignore[attr-defined]
    return path, fmt.value


def _same(src: Hypervisor, pve: Hypervisor, replica: replication.Replica, tmp: Path) -> None:
    for d in replica.state.disks:
        assert _replica_sum(pve, d.replica_volume, d.size, tmp) == _source_sum(src, d.source_volume, d.size)


def test_replica_on_proxmox_over_ssh(src: Hypervisor, pve: Hypervisor, tmp_path: Path) -> None:
    vm = make_source(src, tmp_path)
    replica = replication.create(src, vm, pve, replica_name=f"web-{uuid.uuid4().hex[:6]}", keep=2, **MAPS)
    assert src.vms.get(vm.id).power_state is PowerState.RUNNING
    _same(src, pve, replica, tmp_path)

    unchanged = replica.sync(src, pve)  # the replica's digests cross once (24 bytes a block), no data
    assert unchanged.verified and unchanged.data_bytes == 0
    assert all(d.replica_checksum.startswith("hvkit1:") for d in unchanged.disks)

    disk0 = vm.disks[0]
    writes = [*random_writes(disk0.size_bytes, 40, 64 * 1024, 3), (3 * MIB + 100, b"x" * 5000)]
    write_blocks(src, disk0.volume or "", writes, tmp_path)
    touched = {b for off, data in writes for b in range(off // BLOCK, (off + len(data) - 1) // BLOCK + 1)}
    result = replica.sync(src, pve)
    assert result.verified and result.disks[1].data_bytes == 0 and result.disks[1].changed_blocks == 0
    assert result.disks[0].changed_blocks == len(touched) and result.data_bytes == len(touched) * BLOCK
    # all that crossed SSH: the patch (block data + qcow2 metadata, gzip'd: the blocks' zeros and the
    # metadata's shrink) and the verifying scan (its program and summary); the replica's map was kept
    patch = result.disks[0].patch_bytes
    assert patch is not None and 0 < patch < result.data_bytes + 16384
    assert result.bytes_sent < result.data_bytes + 4 * 8192
    assert result.disks[1].patch_bytes == 0 and result.disks[1].bytes_sent < 8192  # no changes: the scan only
    _same(src, pve, replica, tmp_path)
    assert [p.number for p in replica.points] == [2, 3]  # keep=2

    # the replica written behind the replication's back: the kept map no longer holds; the sync finds out
    stray = replica.state.disks[1]
    path, fmt = _node_file(pve, stray.replica_volume)
    subprocess.run(["qemu-io", "-f", fmt, "-c", f"write -P 0x5a {MIB} 4096", path], check=True, capture_output=True)
    repaired = replica.sync(src, pve)
    assert repaired.verified and repaired.disks[1].data_bytes + repaired.disks[1].zero_bytes == BLOCK
    _same(src, pve, replica, tmp_path)

    up = replica.failover(pve, source=src, stop_source=True)
    assert up.power_state is PowerState.RUNNING and src.vms.get(vm.id).power_state is PowerState.STOPPED
    back = replica.failback(src, pve)  # the replica is read back over SSH into the source's files
    assert back.verified and back.data_bytes == 0
    assert src.vms.get(vm.id).power_state is PowerState.RUNNING
    assert pve.vms.get(replica.state.replica_vm).power_state is PowerState.STOPPED


def test_zeroed_blocks_become_zero_clusters(src: Hypervisor, pve: Hypervisor, tmp_path: Path) -> None:
    vm = make_source(src, tmp_path, running=False)
    replica = replication.create(src, vm, pve, replica_name=f"web-{uuid.uuid4().hex[:6]}", keep=0, **MAPS)
    path, _ = volume_file(src, vm.disks[1].volume or "")  # a raw disk: zero 1 MiB that held data
    with Path(path).open("r+b") as f:
        content = f.read()
        start = next(i for i in range(0, len(content), BLOCK) if any(content[i : i + BLOCK])) // BLOCK * BLOCK
        f.seek(start)
        f.write(bytes(MIB))
    result = replica.sync(src, pve)
    assert result.verified and result.disks[1].data_bytes == 0 and result.disks[1].zero_bytes > 0
    # no block data: the patch's metadata and zero clusters (compressed), the scans and the replica's digests
    assert result.disks[1].bytes_sent < 64 * 1024
    _same(src, pve, replica, tmp_path)


class _NodeWithoutPrograms:
    """A node whose shell finds no programs (no python3, qemu-img, gzip): commands run here with an empty PATH."""

    host, user, port = "127.0.0.1", "root", 22

    def argv(self, command: str) -> list[str]:
        return ["env", "PATH=/nonexistent", "/bin/sh", "-c", command]


def test_a_node_without_the_programs_says_what_it_needs(
    src: Hypervisor, pve: Hypervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hvkit.backends.proxmox import _patch

    vm = make_source(src, tmp_path, running=False)
    replica = replication.create(src, vm, pve, replica_name=f"web-{uuid.uuid4().hex[:6]}", keep=0, **MAPS)
    monkeypatch.setattr(_patch, "ssh_node", lambda session, node: _NodeWithoutPrograms())
    volume = pve.volumes.get(replica.state.disks[0].replica_volume)
    with pytest.raises(Unsupported, match="needs qemu-img, python3 and gzip"):
        pve.backend.scan_volume(volume, True)
    with pytest.raises(Unsupported, match="needs qemu-img, python3 and gzip"):
        replica.sync(src, pve)


def test_an_interrupted_sync_into_proxmox_is_resumed(
    src: Hypervisor, pve: Hypervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hvkit.errors import BackendError

    vm = make_source(src, tmp_path)
    replica = replication.create(src, vm, pve, replica_name=f"web-{uuid.uuid4().hex[:6]}", keep=0, **MAPS)
    for disk in vm.disks:
        write_blocks(src, disk.volume or "", random_writes(disk.size_bytes, 3, BLOCK, 11), tmp_path)
    backend = pve.backend
    real = backend.patch_volume
    calls: list[int] = []

    def failing(volume: object, patch: DiskImage) -> int:
        calls.append(1)
        if len(calls) == 2:  # the second disk: the link goes down while its patch travels
            raise BackendError("the link went down")
        return real(volume, patch)  # type: ignore[arg-type]

    monkeypatch.setattr(backend, "patch_volume", failing)
    with pytest.raises(BackendError, match="link went down"):
        replica.sync(src, pve)
    monkeypatch.setattr(backend, "patch_volume", real)
    done = replica.resume(src, pve)
    assert done is not None and done.verified
    assert done.disks[0].data_bytes > 0 and done.disks[1].data_bytes > 0  # disk0 from the journal, disk1 redone
    assert not src.snapshots.list(vm)
    _same(src, pve, replica, tmp_path)


def test_a_target_that_cannot_patch_says_what_it_needs(
    src: Hypervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = f"rpd{uuid.uuid4().hex[:8]}"
    with hvkit.connect(f"sim://{tag}") as dst:
        vm = make_source(src, tmp_path)
        replica = replication.create(src, vm, dst, keep=0)
        monkeypatch.setattr(dst.backend, "local_path", lambda volume: None)  # its volumes lie elsewhere
        with pytest.raises(Unsupported, match="scan_volume, patch_volume") as caught:
            replica.sync(src, dst)
        assert caught.value.backend == "sim" and caught.value.operation == "replication into this volume"
    forget(tag)


@pytest.mark.parametrize("point", ["disk0.sync:acted", "disk1.sync:done"])
def test_a_killed_sync_into_proxmox_is_resumed(
    pve_options: tuple[str, dict[str, Any]], pve: Hypervisor, tmp_path: Path, point: str
) -> None:
    import sys

    tag = f"rpk{uuid.uuid4().hex[:8]}"
    src_url = f"sim://{tag}?state_dir={tmp_path / 'src'}"
    url, options = pve_options
    try:
        with hvkit.connect(src_url) as src:
            vm = make_source(src, tmp_path, running=False)
            name = f"killed-{tag}"
            replication.create(src, vm, pve, name=name, replica_name=f"web-{tag}", keep=0, **MAPS)
            for disk in vm.disks:
                write_blocks(src, disk.volume or "", random_writes(disk.size_bytes, 3, BLOCK, 21), tmp_path)
        code = (
            "import hvkit\nfrom hvkit import replication\n"
            f"with hvkit.connect({src_url!r}) as s, hvkit.connect({url!r}, **{options!r}) as d:\n"
            f"    replication.load({name!r}).sync(s, d)\n"
        )
        env = {**os.environ, "HVKIT_REPLICATION_CRASH_AT": point}
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == -9, proc.stderr  # killed (SIGKILL) right after the patch went in, or its record
        with hvkit.connect(src_url) as src:
            replica = replication.load(name)
            done = replica.resume(src, pve)
            assert done is not None and done.verified
            _same(src, pve, replica, tmp_path)
            assert replica.sync(src, pve).data_bytes == 0
    finally:
        forget(tag)
