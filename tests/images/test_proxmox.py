"""Images on the Proxmox simulator: an import volume (content=import, uploaded with its sha256), VMs made
from it with import-from (a full copy), verify read back over the loopback SSH server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hvkit
from hvkit.hypervisor import Hypervisor
from hvkit.images import ImageChecksumMismatch, Images
from hvkit.migration._verify import checksum_bytes

from .conftest import MIB, Served, disk_content, qcow2_of, sha256

pytest.importorskip("proxmoxer")


def _ssh_options() -> dict[str, Any]:  # backend options of connect()
    ssh_dir = Path(os.environ.get("HVKIT_MIGRATION_SSH_DIR", "/var/lib/hvkit/migration-ssh"))
    if not (ssh_dir / "known_hosts").is_file() or not os.access(ssh_dir / "client_ed25519", os.R_OK):
        return {}
    return {"ssh_port": os.environ.get("HVKIT_MIGRATION_SSH_PORT", "2222"), "ssh_key": str(ssh_dir / "client_ed25519"),
            "ssh_known_hosts": str(ssh_dir / "known_hosts"), "ssh_host_map": "pve1=127.0.0.1"}  # fmt: skip


@pytest.fixture(scope="module")
def proxmox() -> Iterator[tuple[Hypervisor, bool]]:
    from hvkit.testing.proxmox_sim import ProxmoxSimulator

    ssh = _ssh_options()
    with (
        ProxmoxSimulator(nodes=1, task_delay=0.0) as sim,
        hvkit.connect(sim.url, token=sim.token, ca_file=sim.ca_file, timeout=10, **ssh) as hv,
    ):
        yield hv, bool(ssh)


def test_proxmox_import_vm_verify(
    proxmox: tuple[Hypervisor, bool], served: Served, catalog: Path, tmp_path: Path
) -> None:
    hv, has_ssh = proxmox
    images = Images(hv, catalog)
    content = disk_content(6 * MIB, 21)
    data = qcow2_of(content, tmp_path)
    url = served.put("pve-image.qcow2", data)
    vols_before = {v.id for v in hv.volumes.list()}
    image = images.import_("pve-image", url, sha256=sha256(data))
    assert image.volume not in vols_before and image.volume.endswith("import/image-pve-image.qcow2")
    assert image.content_checksum == checksum_bytes(content)
    try:
        vm = images.create_vm(hvkit.VMSpec(name="pve-from-image", disks=[hvkit.DiskSpec(image="pve-image")]))
        try:
            assert len(vm.disks) == 1 and vm.disks[0].volume != image.volume  # import-from made a copy
            if has_ssh:
                copy = hv.volumes.get(vm.disks[0].volume)
                with hv.translating("export"):
                    exported = hv.backend.export_disk(copy, str(tmp_path), lambda a, b: None, None)
                from hvkit.migration import checksum

                assert checksum(exported).value == image.content_checksum
        finally:
            hv.vms.delete(vm, force=True)
        if not has_ssh:
            pytest.skip("no loopback SSH server (scripts/setup.d/60-migration.sh): verify not exercised")
        assert images.verify("pve-image").checksum == image.content_checksum
    finally:
        images.delete("pve-image")
    assert {v.id for v in hv.volumes.list()} == vols_before


def test_proxmox_mismatch_leaves_nothing(
    proxmox: tuple[Hypervisor, bool], served: Served, catalog: Path, tmp_path: Path
) -> None:
    hv, _ = proxmox
    images = Images(hv, catalog)
    data = qcow2_of(disk_content(2 * MIB, 22), tmp_path)
    url = served.put("pve-bad.qcow2", data)
    before = {v.id for v in hv.volumes.list()}
    with pytest.raises(ImageChecksumMismatch):
        images.import_("pve-bad", url, sha256="cd" * 32)
    assert {v.id for v in hv.volumes.list()} == before and images.list() == []


def test_proxmox_linked_disk_is_unsupported_before_anything(
    proxmox: tuple[Hypervisor, bool], served: Served, catalog: Path, tmp_path: Path
) -> None:
    hv, _ = proxmox
    images = Images(hv, catalog)
    content = disk_content(MIB, 23)
    path = tmp_path / "pve-linked.raw"
    path.write_bytes(content)
    image = images.import_("pve-linked", path, sha256=sha256(content))
    try:
        before = ({v.id for v in hv.volumes.list()}, [vm.id for vm in hv.vms.list()])
        spec = hvkit.VMSpec(name="pve-linked-vm", disks=[hvkit.DiskSpec(image="pve-linked", linked=True)])
        with pytest.raises(hvkit.errors.Unsupported, match=r"images.linked is not supported by the proxmox backend"):
            images.create_vm(spec)
        assert ({v.id for v in hv.volumes.list()}, [vm.id for vm in hv.vms.list()]) == before
        assert images.get("pve-linked").linked == ()
    finally:
        images.delete("pve-linked")
    assert image.volume not in {v.id for v in hv.volumes.list()}
