"""Images on vcsim (vCenter mode): import from HTTP into a datastore, a VM from the image, verify."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit.hypervisor import Hypervisor
from hvkit.images import ImageChecksumMismatch, Images
from hvkit.migration._verify import checksum_bytes

from .conftest import MIB, Served, disk_content, qcow2_of, sha256

pytest.importorskip("pyVmomi")


@pytest.fixture(scope="module")
def vcenter() -> Iterator[Hypervisor]:
    if shutil.which("go") is None:
        pytest.skip("vcsim needs the Go compiler: see scripts/setup.d/30-vmware.packages")
    from hvkit.testing.vcsim import Vcsim, VcsimConfig

    config = VcsimConfig(esx=False, datastores=1, username="admin@vsphere.local", password="Img-pa55word")
    with Vcsim(config) as sim, hvkit.connect(sim.url, password=sim.password, ca_file=sim.cert_file) as hv:
        yield hv


def test_vcsim_import_vm_verify(vcenter: Hypervisor, served: Served, catalog: Path, tmp_path: Path) -> None:
    hv = vcenter
    images = Images(hv, catalog)
    tag = f"img{uuid.uuid4().hex[:6]}"
    content = disk_content(4 * MIB, 51)
    data = qcow2_of(content, tmp_path)
    url = served.put(f"{tag}.qcow2", data)
    before = {v.id for v in hv.volumes.list()}
    with pytest.raises(ImageChecksumMismatch):
        images.import_(f"{tag}-bad", url, sha256="aa" * 32)
    assert {v.id for v in hv.volumes.list()} == before
    image = images.import_(tag, url, sha256=sha256(data))
    assert image.content_checksum == checksum_bytes(content) and image.format.value == "vmdk"
    vm = images.create_vm(hvkit.VMSpec(name=f"{tag}-vm", memory_mib=128, disks=[hvkit.DiskSpec(image=tag)]))
    try:
        copy = hv.volumes.get(str(vm.disks[0].volume))
        assert copy.id != image.volume
        read = tmp_path / "copy.raw"
        hv.volumes.download(copy, read)
        assert read.read_bytes()[: len(content)] == content
        assert images.verify(tag).checksum == image.content_checksum
    finally:
        hv.vms.delete(vm)
        images.delete(tag)
    assert {v.id for v in hv.volumes.list()} == before
