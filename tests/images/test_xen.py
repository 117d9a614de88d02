"""Images on the XAPI simulator: a linked disk is a VDI.clone of the image's VDI; the image stays as it was and
cannot be deleted while the clone exists (XAPI itself would allow it: the catalogue's record refuses)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit.errors import InvalidSpec, InvalidState
from hvkit.hypervisor import Hypervisor
from hvkit.images import Images

from .conftest import MIB, disk_content, sha256

pytest.importorskip("XenAPI")


@pytest.fixture(scope="module")
def xen() -> Iterator[Hypervisor]:
    from hvkit.testing.xapi_sim import XapiSimulator, check_error

    with XapiSimulator(hosts=1, task_delay=0.0) as sim:
        with hvkit.connect(sim.url, password=sim.password, ca_file=sim.ca_file, timeout=10) as hv:
            yield hv
        for description in sim.api.errors_sent:  # every error it sent is one XAPI's model knows
            check_error(description)


def _read(hv: Hypervisor, volume: str, tmp: Path) -> bytes:
    out = tmp / f"read-{uuid.uuid4().hex[:6]}.raw"
    hv.volumes.download(volume, out)
    return out.read_bytes()


def test_xen_linked_disk_is_a_clone_of_the_image(xen: Hypervisor, catalog: Path, tmp_path: Path) -> None:
    images = Images(xen, catalog)
    content = disk_content(4 * MIB, 31)
    path = tmp_path / "xen-base.raw"
    path.write_bytes(content)
    volumes_before = {v.id for v in xen.volumes.list()}
    image = images.import_("xen-base", path, sha256=sha256(content))
    vm = images.create_vm(hvkit.VMSpec(name="xen-linked", disks=[hvkit.DiskSpec(image="xen-base", linked=True)]))
    clone = str(vm.disks[0].volume)
    assert clone != image.volume and images.get("xen-base").linked == (clone,)
    assert xen.volumes.get(clone).name == "xen-linked-disk0"
    assert _read(xen, clone, tmp_path) == content

    changed = bytearray(content)
    changed[:MIB] = b"\xee" * MIB
    (tmp_path / "changed.raw").write_bytes(bytes(changed))
    xen.volumes.upload(clone, tmp_path / "changed.raw")  # the VM's disk changes; the image does not
    assert _read(xen, clone, tmp_path) == bytes(changed)
    assert _read(xen, image.volume, tmp_path) == content
    assert images.verify("xen-base").checksum == image.content_checksum

    with pytest.raises(InvalidState, match="base of linked disks of VMs xen-linked"):
        images.delete("xen-base")
    xen.vms.delete(vm)
    images.delete("xen-base")
    assert {v.id for v in xen.volumes.list()} == volumes_before and images.list() == []


def test_xen_linked_disk_in_another_pool_is_refused_and_makes_nothing(
    xen: Hypervisor, catalog: Path, tmp_path: Path
) -> None:
    images = Images(xen, catalog)
    content = disk_content(MIB, 32)
    path = tmp_path / "xen-other.raw"
    path.write_bytes(content)
    image = images.import_("xen-other", path, sha256=sha256(content))
    others = [p.name for p in xen.pools.list() if p.name != image.pool]
    if not others:
        pytest.skip("the simulator has one storage repository")
    before = ({v.id for v in xen.volumes.list()}, [vm.id for vm in xen.vms.list()])
    spec = hvkit.VMSpec(name="xen-elsewhere", disks=[hvkit.DiskSpec(image="xen-other", linked=True, pool=others[0])])
    with pytest.raises(InvalidSpec, match=r"VDI\.clone, made in its base's SR"):
        images.create_vm(spec)
    assert ({v.id for v in xen.volumes.list()}, [vm.id for vm in xen.vms.list()]) == before
    assert images.get("xen-other").linked == ()
    images.delete("xen-other")
