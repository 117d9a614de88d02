"""Images on real libvirt (qemu:///system): import from HTTP, a VM from the image, verify, nothing left."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit.hypervisor import Hypervisor
from hvkit.images import ImageChecksumMismatch, Images
from hvkit.migration._verify import checksum_bytes

from .conftest import MIB, Served, disk_content, qcow2_of, sha256

pytest.importorskip("libvirt")
TAG = f"hvi{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def kvm() -> Iterator[Hypervisor]:
    try:
        hv = hvkit.connect("qemu:///system")
    except hvkit.errors.HvkitError as exc:
        pytest.skip(f"no libvirt daemon here: {exc}")
    try:
        yield hv
    finally:
        for vm in hv.vms.list():
            if vm.name.startswith(TAG):
                hv.vms.delete(vm, force=True)
        for vol in hv.volumes.list():
            if TAG in vol.name:
                hv.volumes.delete(vol)
        hv.close()


def test_kvm_import_vm_verify(kvm: Hypervisor, served: Served, catalog: Path, tmp_path: Path) -> None:
    images = Images(kvm, catalog)
    content = disk_content(6 * MIB, 41)
    data = qcow2_of(content, tmp_path)
    url = served.put(f"{TAG}.qcow2", data)
    before = {v.id for v in kvm.volumes.list()}
    with pytest.raises(ImageChecksumMismatch):
        images.import_(f"{TAG}-bad", url, sha256="ef" * 32)
    assert {v.id for v in kvm.volumes.list()} == before
    image = images.import_(TAG, url, sha256=sha256(data))
    assert image.content_checksum == checksum_bytes(content)
    read = tmp_path / "read.raw"
    kvm.volumes.download(image.volume, read)
    assert read.read_bytes() == content
    vm = images.create_vm(hvkit.VMSpec(name=f"{TAG}-vm", memory_mib=128, disks=[hvkit.DiskSpec(image=TAG)]))
    copy = vm.disks[0].volume
    assert copy is not None and copy != image.volume
    kvm.volumes.download(copy, read)
    assert read.read_bytes() == content
    assert images.verify(TAG).checksum == image.content_checksum
    kvm.vms.delete(vm)
    images.delete(TAG)
    assert {v.id for v in kvm.volumes.list()} == before
