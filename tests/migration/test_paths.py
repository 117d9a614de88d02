"""Cross-vendor paths end to end, with real data on every disk: VMware (vcsim), KVM (libvirtd + QEMU), Proxmox.

Each path skips, saying why, while a backend (or what it needs on this machine) is not there. The
pipeline is the same for all of them; a backend joins by implementing the disk export/import contract
(``Backend.export_disk`` / ``import_disk``, or the volume download/upload streams the defaults use).
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import hvkit
from hvkit import migration
from hvkit.backend import DiskImage
from hvkit.hypervisor import Hypervisor
from hvkit.migration._plan import can_export, can_import
from hvkit.migration._verify import checksum_bytes

from ._paths import data_content, kvm_hypervisor, read_back, remove, source_on, vcenter_hypervisor

MIB = 1024 * 1024
BOOT_TIMEOUT = 180.0

kvm = pytest.fixture(scope="module", name="kvm")(kvm_hypervisor)
vcenter = pytest.fixture(scope="module", name="vcenter")(vcenter_hypervisor)


# -- backends -----------------------------------------------------------------------------------------------
def _ssh_dir() -> Path:
    ssh_dir = Path(os.environ.get("HVKIT_MIGRATION_SSH_DIR", "/var/lib/hvkit/migration-ssh"))
    if not (ssh_dir / "known_hosts").is_file() or not os.access(ssh_dir / "client_ed25519", os.R_OK):
        pytest.skip(f"no loopback SSH server set up in {ssh_dir}: run scripts/setup.d/60-migration.sh")
    return ssh_dir


@pytest.fixture(scope="module")
def proxmox() -> Iterator[Hypervisor]:
    """The Proxmox simulator; its node's disks are read over the loopback OpenSSH server (export over SSH)."""
    pytest.importorskip("proxmoxer", reason="the proxmox backend needs proxmoxer")
    from hvkit.testing.proxmox_sim import ProxmoxSimulator

    ssh_dir = _ssh_dir()
    ssh: dict[str, Any] = {
        "ssh_port": os.environ.get("HVKIT_MIGRATION_SSH_PORT", "2222"),
        "ssh_key": str(ssh_dir / "client_ed25519"),
        "ssh_known_hosts": str(ssh_dir / "known_hosts"),
        "ssh_host_map": "pve1=127.0.0.1",
    }
    with (
        ProxmoxSimulator(nodes=1, task_delay=0.0) as sim,
        hvkit.connect(sim.url, token=sim.token, ca_file=sim.ca_file, **ssh) as hv,
    ):
        assert can_export(hv) and can_import(hv)
        yield hv


@pytest.fixture
def tag() -> str:
    return f"hvt-mig-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def cleanup() -> Iterator[list[tuple[Hypervisor, str]]]:
    made: list[tuple[Hypervisor, str]] = []
    yield made
    for hv, name in reversed(made):
        try:  # listing can race with other tests on a shared libvirtd
            remove(hv, name)
        except hvkit.errors.HvkitError:
            pass


@pytest.fixture(scope="module")
def guest_image() -> Iterator[Path]:
    """The bootable test disk (it prints the marker kept on its own disk on the serial console)."""
    from hvkit.testing.guest_image import build_guest_image

    if os.geteuid() != 0:
        pytest.skip("building the bootable guest image needs root")
    yield build_guest_image("hvkit-migrated-from-vmware")


# -- the paths -----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_vmware_to_kvm_boots(
    vcenter: Hypervisor,
    kvm: Hypervisor,
    guest_image: Path,
    tmp_path: Path,
    tag: str,
    cleanup: list[tuple[Hypervisor, str]],
) -> None:
    """The bootable disk, uploaded to vcsim, migrated to KVM: it boots and prints the marker on its disk."""
    from hvkit.testing.guest_image import wait_for_marker

    cleanup += [(vcenter, tag), (kvm, tag)]
    pool = vcenter.pools.list()[0].name
    src = source_on(vcenter, tmp_path, tag, guest_image.read_bytes(), pool, "VM Network", "scsi")
    plan = migration.plan(vcenter, src.name, kvm, network_map={"VM Network": "default"},
                          storage_map={pool: "default"}, disk_bus="virtio")  # fmt: skip
    assert plan.ok, plan.problems
    assert any("VMware Tools" in w for w in plan.warnings)
    assert any("scsi bus to virtio" in w for w in plan.warnings)
    result = plan.run(start=True, journal_dir=tmp_path / "journal")
    assert result.verified and result.started
    image = guest_image.read_bytes()
    assert plan.disks[0].size >= len(image)
    assert result.disks[0].source_checksum == checksum_bytes(image + bytes(plan.disks[0].size - len(image)))
    vm = kvm.vms.get(result.vm.id)
    assert [n.mac for n in vm.nics] == [n.mac for n in src.nics]  # MAC kept
    marker = "hvkit-migrated-from-vmware"
    assert wait_for_marker(vm.extra["serial_log"], marker, BOOT_TIMEOUT) == marker
    assert vcenter.vms.get(src.id).power_state is hvkit.PowerState.STOPPED


def test_kvm_to_vmware(
    kvm: Hypervisor, vcenter: Hypervisor, tmp_path: Path, tag: str, cleanup: list[tuple[Hypervisor, str]]
) -> None:
    cleanup += [(kvm, tag), (vcenter, tag)]
    content = data_content(8 * MIB, 7)
    src = source_on(kvm, tmp_path, tag, content, "default", "default", "virtio")
    pool = vcenter.pools.list()[0].name
    plan = migration.plan(kvm, src.name, vcenter, network_map={"default": "VM Network"}, storage_map={"default": pool})
    assert plan.ok, plan.problems
    assert plan.disks[0].target_format is hvkit.DiskFormat.VMDK
    assert plan.disks[0].target_bus is hvkit.DiskBus.SCSI  # VMware has no virtio bus
    assert any("virtio bus to scsi" in w for w in plan.warnings)
    result = plan.run(journal_dir=tmp_path / "journal")
    assert result.verified
    assert result.disks[0].source_checksum == checksum_bytes(content + bytes(src.disks[0].size_bytes - len(content)))
    assert read_back(vcenter, result.vm.disks[0].volume or "", tmp_path, len(content)) == content


@pytest.mark.parametrize("content_mib", [0, 8], ids=["new-disk", "with-data"])
def test_vmware_to_sim_keeps_vmdk(
    vcenter: Hypervisor, tmp_path: Path, tag: str, cleanup: list[tuple[Hypervisor, str]], content_mib: int
) -> None:
    """vcsim -> sim keeping vmdk: the target disk has the source disk's size, even when vcsim reports no
    capacity for it (a disk vcsim made itself: its extent is empty, so the download is 0 bytes)."""
    cleanup.append((vcenter, tag))
    pool = vcenter.pools.list()[0].name
    if content_mib:
        content = data_content(content_mib * MIB, 5)
        src = source_on(vcenter, tmp_path, tag, content, pool, "VM Network", "scsi")
    else:
        content = b""
        disk = hvkit.DiskSpec(size_gib=0.0625, pool=pool)
        spec = hvkit.VMSpec(name=tag, cpus=1, memory_mib=256, disks=[disk], nics=[hvkit.NicSpec("VM Network")])
        src = vcenter.vms.create(spec)
    size = src.disks[0].size_bytes or len(content)
    with hvkit.connect(f"sim://{tag}?state_dir={tmp_path}/sim&local_files=true") as sim:
        plan = migration.plan(vcenter, src.name, sim, network_map={"VM Network": "default"},
                              storage_map={pool: "default"}, disk_format="vmdk")  # fmt: skip
        assert plan.ok, plan.problems
        assert plan.disks[0].target_format is hvkit.DiskFormat.VMDK
        result = plan.run(journal_dir=tmp_path / "journal")
        assert result.verified
        source_bytes = content + bytes(plan.disks[0].size - len(content))
        assert result.disks[0].source_checksum == checksum_bytes(source_bytes)
        assert result.disks[0].target_checksum == result.disks[0].source_checksum
        volume = sim.volumes.get(result.vm.disks[0].volume or "")
        assert volume.format is hvkit.DiskFormat.VMDK
        assert volume.capacity_bytes == plan.disks[0].size >= size > 0
        assert read_back(sim, volume.id, tmp_path, plan.disks[0].size) == source_bytes


def test_sim_to_sim_keeps_vmdk(tmp_path: Path, tag: str) -> None:
    """sim -> sim with a vmdk source kept vmdk: the disk moves and verifies as it is."""
    content = data_content(8 * MIB, 9)
    with (
        hvkit.connect(f"sim://{tag}-a?state_dir={tmp_path}/a") as src_hv,
        hvkit.connect(f"sim://{tag}-b?state_dir={tmp_path}/b") as dst,
    ):
        raw = tmp_path / "content.raw"
        raw.write_bytes(content)
        vol = src_hv.volumes.create("default", f"{tag}-src", len(content) / 1024**3, format="vmdk")
        src_hv.volumes.upload(vol.id, raw)
        spec = hvkit.VMSpec(name=tag, cpus=1, memory_mib=256, disks=[hvkit.DiskSpec(volume=vol.id)],
                            nics=[hvkit.NicSpec("default")])  # fmt: skip
        src = src_hv.vms.create(spec)
        plan = migration.plan(src_hv, src.name, dst, storage_map={"default": "default"})
        assert plan.disks[0].source_format is plan.disks[0].target_format is hvkit.DiskFormat.VMDK
        result = plan.run(journal_dir=tmp_path / "journal")
        assert result.verified
        assert result.disks[0].source_checksum == checksum_bytes(content)
        assert read_back(dst, result.vm.disks[0].volume or "", tmp_path, len(content)) == content


def test_kvm_to_sim_and_back(kvm: Hypervisor, tmp_path: Path, tag: str, cleanup: list[tuple[Hypervisor, str]]) -> None:
    """libvirt volume streams out and in again; the second leg proves the checksums agree across vendors."""
    kvm = hvkit.connect("kvm:///system", virt_type="qemu", local_files=False)  # streams, not files in place
    cleanup.append((kvm, tag))
    content = data_content(8 * MIB, 11)
    src = source_on(kvm, tmp_path, tag, content, "default", "default", "virtio")
    with hvkit.connect(f"sim://{tag}") as sim:
        there = migration.plan(kvm, src.name, sim, name=f"{tag}-x", storage_map={"default": "default"}).run(
            journal_dir=tmp_path / "j1"
        )
        assert there.verified
        cleanup.append((kvm, f"{tag}-back"))
        back = migration.plan(sim, there.vm.name, kvm, name=f"{tag}-back").run(journal_dir=tmp_path / "j2")
        assert back.verified
        assert back.disks[0].target_checksum == there.disks[0].source_checksum
        assert read_back(kvm, back.vm.disks[0].volume or "", tmp_path, len(content)) == content


@pytest.mark.parametrize("direction", ["vmware->proxmox", "kvm->proxmox"])
def test_to_proxmox(request: pytest.FixtureRequest, direction: str, tmp_path: Path, tag: str) -> None:
    """Into the Proxmox simulator: upload content=import + sha256, import-from at create, read back over SSH."""
    source_kind = direction.split("->")[0]
    src: Hypervisor = request.getfixturevalue({"vmware": "vcenter", "kvm": "kvm"}[source_kind])
    dst: Hypervisor = request.getfixturevalue("proxmox")
    content = data_content(8 * MIB, 13)
    pool = "default" if source_kind == "kvm" else src.pools.list()[0].name
    net = "default" if source_kind == "kvm" else src.networks.list()[0].name
    vm = source_on(src, tmp_path, tag, content, pool, net, "scsi")
    try:
        plan = migration.plan(src, vm.name, dst, network_map={net: "vmbr0"}, storage_map={pool: "local-lvm"})
        assert plan.ok, plan.problems
        assert plan.disks[0].target_format is hvkit.DiskFormat.RAW  # lvmthin takes raw only
        result = plan.run(journal_dir=tmp_path / "journal")
        assert result.verified
        expected = checksum_bytes(content + bytes(plan.disks[0].size - len(content)))
        assert result.disks[0].source_checksum == result.disks[0].target_checksum == expected
        made = dst.vms.get(result.vm.id)
        assert made.disks[0].pool == "local-lvm" and made.disks[0].bus is hvkit.DiskBus.SCSI
        assert [n.mac for n in made.nics] == [n.mac for n in src.vms.get(vm.id).nics]  # MAC kept
        assert not [v for v in dst.volumes.list() if "import/" in v.id and tag in v.id]  # import file dropped
        assert read_back(dst, made.disks[0].volume or "", tmp_path, len(content)) == content
    finally:
        for hv in (src, dst):
            for v in hv.vms.list():
                if v.name == tag:
                    hv.vms.delete(v, force=True)


@pytest.mark.slow
def test_proxmox_to_kvm_boots(
    proxmox: Hypervisor,
    kvm: Hypervisor,
    guest_image: Path,
    tmp_path: Path,
    tag: str,
    cleanup: list[tuple[Hypervisor, str]],
) -> None:
    """The bootable disk, imported into the Proxmox simulator, exported over SSH, migrated to KVM: it boots."""
    from hvkit.testing.guest_image import wait_for_marker

    cleanup.append((kvm, tag))
    image = guest_image.read_bytes()
    src = source_on(proxmox, tmp_path, tag, image, "local", "vmbr0", "scsi")
    try:
        plan = migration.plan(proxmox, src.name, kvm, network_map={"vmbr0": "default"},
                              storage_map={"local": "default"}, disk_bus="virtio")  # fmt: skip
        assert plan.ok, plan.problems
        result = plan.run(start=True, journal_dir=tmp_path / "journal")
        assert result.verified and result.started
        assert result.disks[0].source_checksum == checksum_bytes(image + bytes(plan.disks[0].size - len(image)))
        assert result.disks[0].bytes_moved > 0
        vm = kvm.vms.get(result.vm.id)
        assert [n.mac for n in vm.nics] == [n.mac for n in src.nics]  # MAC kept
        assert wait_for_marker(vm.extra["serial_log"], "hvkit-migrated-from-vmware", BOOT_TIMEOUT)
        assert proxmox.vms.get(src.id).power_state is hvkit.PowerState.STOPPED
    finally:
        proxmox.vms.delete(src, force=True)


@pytest.fixture
def ssh_node() -> migration.SshNode:
    ssh_dir = _ssh_dir()
    port = int(os.environ.get("HVKIT_MIGRATION_SSH_PORT", "2222"))
    return migration.SshNode("127.0.0.1", port, "root", str(ssh_dir / "client_ed25519"), str(ssh_dir / "known_hosts"))


@pytest.mark.parametrize("fmt", [hvkit.DiskFormat.RAW, hvkit.DiskFormat.QCOW2], ids=lambda f: f.value)
def test_ssh_export_moves_only_data(ssh_node: migration.SshNode, tmp_path: Path, fmt: hvkit.DiskFormat) -> None:
    """A node's image file copied over a real OpenSSH server: same content, only the data travels."""
    import subprocess

    from hvkit.migration import checksum

    size = 64 * MIB
    content = bytearray(size)
    rnd = random.Random(23)
    for off in (0, 17 * MIB + 4096, 50 * MIB):
        content[off : off + MIB] = rnd.randbytes(MIB)
    raw = tmp_path / "node" / "disk.raw"
    raw.parent.mkdir()
    with raw.open("wb") as f:
        f.truncate(size)
        for off in (0, 17 * MIB + 4096, 50 * MIB):
            f.seek(off)
            f.write(content[off : off + MIB])
    node_file = raw
    if fmt is not hvkit.DiskFormat.RAW:
        node_file = raw.with_suffix(f".{fmt.value}")
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmt.value, str(raw), str(node_file)], check=True)
    seen: list[int] = []
    local, vsize, moved = migration.ssh_export(ssh_node, str(node_file), fmt, tmp_path / "staging",
                                               lambda done, total: seen.append(done))  # fmt: skip
    assert vsize == size
    assert checksum(DiskImage(str(local), fmt, vsize)).value == checksum_bytes(bytes(content))
    assert 3 * MIB <= moved <= 3 * MIB + 2 * MIB  # the data (plus qcow2 metadata), not 64 MiB
    assert seen and seen[-1] == moved
    with pytest.raises(hvkit.errors.BackendError):
        migration.ssh_export(ssh_node, str(tmp_path / "missing.raw"), fmt, tmp_path / "staging")
    bad = attrs.evolve(ssh_node, port=1)
    with pytest.raises(hvkit.errors.ConnectionError):
        migration.ssh_export(bad, str(node_file), fmt, tmp_path / "staging")


def test_loopback_ssh_server_streams_a_disk(tmp_path: Path) -> None:
    """The OpenSSH server of scripts/setup.d/60-migration.sh serves an image byte for byte (export over SSH)."""
    import subprocess

    from hvkit._images import SparseWriter
    from hvkit.backend import DiskImage
    from hvkit.migration import checksum

    ssh_dir = Path(os.environ.get("HVKIT_MIGRATION_SSH_DIR", "/var/lib/hvkit/migration-ssh"))
    port = os.environ.get("HVKIT_MIGRATION_SSH_PORT", "2222")
    if not (ssh_dir / "known_hosts").is_file() or not os.access(ssh_dir / "client_ed25519", os.R_OK):
        pytest.skip(f"no loopback SSH server set up in {ssh_dir}: run scripts/setup.d/60-migration.sh")
    content = data_content(4 * MIB, 17)
    node_file = tmp_path / "node-disk.raw"
    node_file.write_bytes(content)
    argv = ["ssh", "-i", str(ssh_dir / "client_ed25519"), "-o", f"UserKnownHostsFile={ssh_dir / 'known_hosts'}",
            "-o", "BatchMode=yes", "-p", port, "root@127.0.0.1", "cat", str(node_file)]  # fmt: skip
    local = tmp_path / "exported.raw"
    with subprocess.Popen(argv, stdout=subprocess.PIPE) as proc, local.open("wb") as out:
        writer = SparseWriter(out)
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1024 * 1024):
            writer.write(chunk)
        writer.finish()
    assert proc.returncode == 0
    got = checksum(DiskImage(str(local), hvkit.DiskFormat.RAW, len(content)))
    assert got.value == checksum_bytes(content)
    assert got.data_bytes < len(content)  # the zeros stayed holes
