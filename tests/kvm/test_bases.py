"""Linked clones and their bases on real libvirt: a base goes when its last user goes; racing names."""

from __future__ import annotations

import attrs
import pytest

from hvkit import DiskSpec, NicSpec, VMSpec, errors
from hvkit.hypervisor import Hypervisor

from .conftest import kvm_backend


def _spec(name: str) -> VMSpec:
    return VMSpec(name=name, memory_mib=128, disks=[DiskSpec(size_gib=0.01, pool="default")], nics=[NicSpec("default")])


def _volumes(hv: Hypervisor, prefix: str) -> list[str]:
    pool = kvm_backend(hv).conn.storagePoolLookupByName("default")
    pool.refresh(0)
    return sorted(v.name() for v in pool.listAllVolumes(0) if v.name().startswith(prefix))


@pytest.mark.parametrize("order", ["clone first", "source first"])
def test_base_goes_with_its_last_user(qemu_hv: Hypervisor, prefix: str, order: str) -> None:
    src = qemu_hv.vms.create(_spec(prefix + "src"))
    clone = qemu_hv.vms.clone(src, prefix + "clone", linked=True)
    assert f"{prefix}src-vda.qcow2" in _volumes(qemu_hv, prefix)  # the base both now read
    first, second = (clone, src) if order == "clone first" else (src, clone)
    qemu_hv.vms.delete(first)
    assert f"{prefix}src-vda.qcow2" in _volumes(qemu_hv, prefix)  # still used by the other
    qemu_hv.vms.delete(second)
    assert _volumes(qemu_hv, prefix) == []


def test_bases_of_a_clone_of_a_clone(qemu_hv: Hypervisor, prefix: str) -> None:
    a = qemu_hv.vms.create(_spec(prefix + "a"))
    b = qemu_hv.vms.clone(a, prefix + "b", linked=True)
    c = qemu_hv.vms.clone(b, prefix + "c", linked=True)
    qemu_hv.vms.delete(a)
    qemu_hv.vms.delete(b)
    assert qemu_hv.vms.get(c.id).disks  # c still reads through both bases
    assert len(_volumes(qemu_hv, prefix)) == 3  # a's base, b's base, c's disk
    qemu_hv.vms.delete(c)
    assert _volumes(qemu_hv, prefix) == []


def test_an_attached_volume_keeps_its_own_backing(qemu_hv: Hypervisor, prefix: str) -> None:
    """Only bases hvkit made are removed: an image a user's volume is backed by stays."""
    golden = qemu_hv.vms.create(_spec(prefix + "golden"))
    golden_path = golden.disks[0].path
    qemu_hv.vms.delete(golden, keep_disks=True)
    conn = kvm_backend(qemu_hv).conn
    pool = conn.storagePoolLookupByName("default")
    overlay = pool.createXML(
        f"<volume><name>{prefix}user.qcow2</name><capacity>10485760</capacity><target><format type='qcow2'/></target>"
        f"<backingStore><path>{golden_path}</path><format type='qcow2'/></backingStore></volume>",
        0,
    )
    vm = qemu_hv.vms.create(attrs.evolve(_spec(prefix + "user"), disks=[DiskSpec(volume=overlay.path())]))
    qemu_hv.vms.delete(vm)
    assert _volumes(qemu_hv, prefix) == [f"{prefix}golden-vda.qcow2"]


def test_libvirt_refuses_a_second_domain_of_one_name(qemu_hv: Hypervisor, prefix: str) -> None:
    """Racing creates of one name: libvirt defines one; the other gets AlreadyExists and removes its disks."""
    first = qemu_hv.vms.create(_spec(prefix + "twin"))
    spec = qemu_hv.vms._check_spec(_spec(prefix + "other"))
    for late in (attrs.evolve(spec, name=prefix + "twin"), attrs.evolve(spec, name=prefix + "twin", disks=[])):
        # with disks its volume name clashes first; without, libvirt's own check of the domain name answers
        with pytest.raises(errors.AlreadyExists):
            qemu_hv.call("vms.create", qemu_hv.backend.create_vm, late)
    assert [v.id for v in qemu_hv.vms.list() if v.name == prefix + "twin"] == [first.id]
    assert _volumes(qemu_hv, prefix) == [f"{prefix}twin-vda.qcow2"]
