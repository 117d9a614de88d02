"""vbox+ssh://: VBoxManage on a "remote" workstation, reached through the real OpenSSH server on loopback
that scripts/setup.d/60-migration.sh starts (the stand-in's wrapper is the remote VBoxManage)."""

from __future__ import annotations

import os
import random
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit.backend import DiskImage
from hvkit.hypervisor import Hypervisor
from hvkit.testing.vbox_sim import VBoxSim

MIB = 1024 * 1024


def _ssh_dir() -> Path:
    ssh_dir = Path(os.environ.get("HVKIT_MIGRATION_SSH_DIR", "/var/lib/hvkit/migration-ssh"))
    if not (ssh_dir / "known_hosts").is_file() or not os.access(ssh_dir / "client_ed25519", os.R_OK):
        pytest.skip(f"no loopback SSH server set up in {ssh_dir}: run scripts/setup.d/60-migration.sh")
    return ssh_dir


def ssh_url(sim: VBoxSim, **extra: str) -> str:
    ssh_dir = _ssh_dir()
    query = {
        "ssh_key": str(ssh_dir / "client_ed25519"),
        "ssh_known_hosts": str(ssh_dir / "known_hosts"),
        "vboxmanage": str(sim.vboxmanage),
        "lock_backoff": "0.01",
        **extra,
    }
    port = os.environ.get("HVKIT_MIGRATION_SSH_PORT", "2222")
    return f"vbox+ssh://root@127.0.0.1:{port}/?{urllib.parse.urlencode(query)}"


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[tuple[VBoxSim, Hypervisor]]:
    sim = VBoxSim(tmp_path / "remote-vbox", version="7.0")  # not on this process's PATH: only the remote runs it
    with hvkit.connect(ssh_url(sim)) as hv:
        yield sim, hv


def test_inventory_and_odd_names_over_ssh(remote: tuple[VBoxSim, Hypervisor]) -> None:
    _, hv = remote
    assert hv.version.startswith("7.0.")
    name = 'it\'s a "vm" $(id) ; rm -rf ~ && `x`'
    vm = hv.vms.create(
        hvkit.VMSpec(
            name=name,
            cpus=2,
            memory_mib=256,
            disks=[hvkit.DiskSpec(size_gib=4 / 1024)],
            nics=[hvkit.NicSpec("nat")],
            notes="line one\nline 'two'",
        )
    )
    assert (vm.name, vm.cpus, vm.notes) == (name, 2, "line one\nline 'two'")
    assert [v.name for v in hv.vms.list()] == [name]
    assert hv.vms.start(vm).power_state is hvkit.PowerState.RUNNING
    snap = hv.snapshots.create(vm, "over ssh")
    assert snap.memory
    hv.vms.delete(vm, force=True)
    assert hv.vms.list() == []
    assert hv.pools.list()[0].capacity_bytes > 0  # df over ssh


def test_lock_errors_and_warning_over_ssh(remote: tuple[VBoxSim, Hypervisor]) -> None:
    sim, hv = remote
    sim.faults(lock={"storagectl": 2}, warning="WARNING: The vboxdrv kernel module is not loaded.")
    vm = hv.vms.create(hvkit.VMSpec(name="locked", disks=[hvkit.DiskSpec(size_gib=1 / 1024)]))
    assert len(vm.disks) == 1


def test_disk_both_directions_over_ssh(remote: tuple[VBoxSim, Hypervisor], tmp_path: Path) -> None:
    """import_disk sends a raw image over SSH and clonemedium writes it; export_disk streams it back."""
    _, hv = remote
    rnd = random.Random(5)
    content = bytearray(8 * MIB)
    for off in (0, 3 * MIB + 512, 7 * MIB):
        content[off : off + 65536] = rnd.randbytes(65536)
    raw = tmp_path / "in.raw"
    raw.write_bytes(bytes(content))
    pool = hv.pools.get("default")
    with hv.translating("import_disk"):
        vol = hv.backend.import_disk(
            pool,
            "carried",
            DiskImage(str(raw), hvkit.DiskFormat.RAW, len(content)),
            hvkit.DiskFormat.VMDK,
            str(tmp_path / "work"),
            lambda a, b: None,
        )
        assert vol.format is hvkit.DiskFormat.VMDK and vol.capacity_bytes == len(content)
        image = hv.backend.export_disk(vol, str(tmp_path / "out"), lambda a, b: None)
    assert image.bytes_moved == len(content)
    assert Path(image.path).read_bytes() == bytes(content)
    assert [v.name for v in hv.volumes.list()] == ["carried"]  # the transfer files are gone


def test_ssh_failure_is_a_connection_error(tmp_path: Path) -> None:
    sim = VBoxSim(tmp_path / "v", version="6.1")
    url = ssh_url(sim).replace(":" + os.environ.get("HVKIT_MIGRATION_SSH_PORT", "2222") + "/", ":1/")
    with pytest.raises(hvkit.errors.ConnectionError, match="ssh"):
        hvkit.connect(url)


def test_volume_streams_over_ssh(remote: tuple[VBoxSim, Hypervisor]) -> None:
    """hv.volumes.upload / download: the raw content travels over SSH, clonemedium does the rest."""
    import io

    _, hv = remote
    vol = hv.volumes.create("default", "streamed", 4 / 1024, format="vpc")
    data = random.Random(8).randbytes(MIB) + bytes(2 * MIB) + b"hvkit-marker"
    hv.volumes.upload(vol, io.BytesIO(data))
    out = io.BytesIO()
    assert hv.volumes.download(vol, out) == 4 * MIB
    assert out.getvalue()[: len(data)] == data
    assert [v.name for v in hv.volumes.list()] == ["streamed"]
