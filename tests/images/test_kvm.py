"""Images on real libvirt (qemu:///system): import from HTTP, a VM from the image (a full copy, or a linked disk
that boots the test guest), verify, nothing left."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit.errors import InvalidState
from hvkit.hypervisor import Hypervisor
from hvkit.images import ImageChecksumMismatch, Images
from hvkit.migration._verify import checksum_bytes

from .conftest import MIB, Served, disk_content, qcow2_of, sha256

pytest.importorskip("libvirt")
TAG = f"hvi{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def kvm() -> Iterator[Hypervisor]:
    try:
        hv = hvkit.connect("qemu:///system", virt_type="qemu")  # TCG: boots without /dev/kvm too
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


def _made_since(hv: Hypervisor, before: set[str]) -> list[str]:
    """Volumes of this module's made since ``before`` (other tests may share the daemon)."""
    return [v.id for v in hv.volumes.list() if v.id not in before and TAG in v.name]


def test_kvm_import_vm_verify(kvm: Hypervisor, served: Served, catalog: Path, tmp_path: Path) -> None:
    images = Images(kvm, catalog)
    content = disk_content(6 * MIB, 41)
    data = qcow2_of(content, tmp_path)
    url = served.put(f"{TAG}.qcow2", data)
    before = {v.id for v in kvm.volumes.list()}
    with pytest.raises(ImageChecksumMismatch):
        images.import_(f"{TAG}-bad", url, sha256="ef" * 32)
    assert _made_since(kvm, before) == []
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
    assert _made_since(kvm, before) == []


@pytest.mark.slow
def test_kvm_linked_disk_boots_the_image_and_never_writes_it(
    kvm: Hypervisor, served: Served, catalog: Path, tmp_path: Path
) -> None:
    from hvkit.testing.guest_image import build_guest_image, wait_for_marker

    marker = f"{TAG}-linked"
    data = build_guest_image(marker).read_bytes()  # a bootable disk that prints its marker file at boot
    url = served.put(f"{TAG}-guest.raw", data)
    images = Images(kvm, catalog)
    before = {v.id for v in kvm.volumes.list()}
    name = f"{TAG}-guest"
    image = images.import_(name, url, sha256=sha256(data))
    vm = images.create_vm(
        hvkit.VMSpec(name=f"{TAG}-lvm", memory_mib=192, disks=[hvkit.DiskSpec(image=name, linked=True)])
    )
    overlay = kvm.volumes.get(str(vm.disks[0].volume))
    base = kvm.volumes.get(image.volume)
    assert overlay.backing == base.path and overlay.format is hvkit.DiskFormat.QCOW2
    # nothing copied: the VM reads the image's volume
    assert overlay.allocation_bytes is not None and overlay.allocation_bytes < MIB
    assert images.get(name).linked == (overlay.id,)

    vm = kvm.vms.start(vm)
    assert wait_for_marker(vm.extra["serial_log"], marker, 180) == marker  # booted from the image's content
    assert images.verify(name).checksum == image.content_checksum  # readable while QEMU has it open read-only
    kvm.vms.stop(vm, force=True)
    assert overlay.path is not None
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0xcd {8 * MIB} 64k", overlay.path], check=True,
                   capture_output=True)  # fmt: skip
    read = tmp_path / "read.raw"
    kvm.volumes.download(overlay.id, read)
    assert read.read_bytes()[8 * MIB : 8 * MIB + 65536] == b"\xcd" * 65536  # the VM's write is in its overlay
    kvm.volumes.download(image.volume, read)
    assert read.read_bytes() == data  # and not in the image
    assert images.verify(name).checksum == image.content_checksum

    with pytest.raises(InvalidState, match=f"base of linked disks of VMs {TAG}-lvm"):
        images.delete(name)
    assert kvm.volumes.get(image.volume).id == image.volume
    kvm.vms.delete(vm)
    assert kvm.volumes.get(image.volume).id == image.volume  # the VM's delete took its overlay only
    images.delete(name)
    assert _made_since(kvm, before) == [] and images.list() == []


def test_kvm_linked_failure_midway_removes_only_this_calls_overlays(
    kvm: Hypervisor, catalog: Path, tmp_path: Path
) -> None:
    images = Images(kvm, catalog)
    content = disk_content(2 * MIB, 42)
    path = tmp_path / "mid.raw"
    path.write_bytes(content)
    name = f"{TAG}-mid"
    image = images.import_(name, path, sha256=sha256(content))
    theirs = kvm.volumes.create(image.pool, f"{TAG}-m-disk1.qcow2", 0.01, format="qcow2")  # the name disk 1 gets
    before = {v.id for v in kvm.volumes.list()}
    disks = [hvkit.DiskSpec(image=name, linked=True), hvkit.DiskSpec(image=name, linked=True)]
    with pytest.raises(hvkit.errors.HvkitError, match="exists"):
        images.create_vm(hvkit.VMSpec(name=f"{TAG}-m", memory_mib=128, disks=disks))  # disk 0 made, disk 1 clashes
    assert _made_since(kvm, before) == [] and images.get(name).linked == ()
    assert kvm.volumes.get(theirs.id).id == theirs.id  # removed by id: the volume of the same name stays
    assert not [vm for vm in kvm.vms.list() if vm.name == f"{TAG}-m"]
    kvm.volumes.delete(theirs)
    images.delete(name)
