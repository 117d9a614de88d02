"""The README example runs verbatim on KVM with real QEMU (only the URL changed): a running VM's snapshot keeps
its memory, a linked clone of it (running, with a snapshot) is made from an external overlay, and the revert
after it leaves the clone's base untouched."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvkit.hypervisor import Hypervisor
from hvkit.models import DiskSpec, VMSpec
from hvkit.testing.libvirt_peer import LibvirtPeer
from tests.kvm.conftest import _qemu_available, _sweep
from tests.readme_example import DocBlock, check_output, doc_blocks, run_block, run_readme_example

libvirt = pytest.importorskip("libvirt")
pytestmark = pytest.mark.slow
NAMES = ("web-1", "web-2")


@pytest.fixture
def qemu_system(qemu_session: Hypervisor) -> Iterator[Hypervisor]:
    """qemu:///system with no VM named like the README's; whatever the example leaves is removed after."""
    conn = qemu_session.backend.conn  # type: ignore[attr-defined]
    taken = [n for n in NAMES if n in {d.name() for d in conn.listAllDomains(0)}]
    if taken:
        pytest.skip(f"qemu:///system has VMs named {taken} already")
    try:
        yield qemu_session
    finally:
        for name in NAMES:
            with contextlib.suppress(libvirt.libvirtError):
                _sweep(conn, name)


def test_readme_example_runs_verbatim(qemu_system: Hypervisor) -> None:
    assert _qemu_available() is None
    check_output(run_readme_example("kvm:///system?virt_type=qemu"), "kvm")
    web1 = qemu_system.vms.get("web-1")
    [snap] = qemu_system.snapshots.list(web1)
    assert snap.name == "before-upgrade" and snap.memory and snap.current
    # the revert moved web-1 onto a private copy of the image web-2 was linked to
    disk = qemu_system.volumes.get(web1.disks[0].volume or "")
    assert disk.backing is None


DOC_VMS = ("web", "db")


@pytest.fixture
def kvm2(qemu_session: Hypervisor, tmp_path: Path) -> Iterator[LibvirtPeer]:
    """What the docs' KVM example assumes: a second libvirt host 'kvm2' (a namespaced libvirtd), VMs 'web'
    (running) and 'db' (stopped) and a pool 'fast' on this one; all of it removed afterwards."""
    from tests.kvm.test_migrate import _peer_missing

    reason = _peer_missing()
    if reason:
        pytest.skip(reason)
    conn = qemu_session.backend.conn  # type: ignore[attr-defined]
    taken = [n for n in DOC_VMS if n in {d.name() for d in conn.listAllDomains(0)}]
    if taken or "fast" in {p.name() for p in conn.listAllStoragePools(0)}:
        pytest.skip(f"qemu:///system has {taken or 'a pool fast'} already")
    peer = LibvirtPeer("kvm2")
    fast = tmp_path / "fast"
    fast.mkdir()
    pool = None
    try:
        peer.start()
        pool = conn.storagePoolCreateXML(
            f"<pool type='dir'><name>fast</name><target><path>{fast}</path></target></pool>", 0
        )
        for name in DOC_VMS:
            spec = VMSpec(name, cpus=1, memory_mib=64, disks=[DiskSpec(size_gib=0.01, pool="default")])
            vm = qemu_session.vms.create(spec)
            if name == "web":
                qemu_session.vms.start(vm)
        yield peer
    finally:
        for uri in (peer.uri, "qemu:///system"):
            with contextlib.suppress(libvirt.libvirtError):
                c = libvirt.open(uri)
                for name in DOC_VMS:
                    with contextlib.suppress(libvirt.libvirtError):
                        _sweep(c, name)
                c.close()
        if pool is not None:
            with contextlib.suppress(libvirt.libvirtError):
                pool.destroy()
        peer.stop()


@pytest.mark.parametrize("block", doc_blocks("kvm"), ids=lambda b: b.where)
def test_docs_kvm_examples_run(block: DocBlock, kvm2: LibvirtPeer) -> None:
    """The docs' KVM examples on this machine's libvirtd, with 'kvm2' a namespaced peer reached over UNIX sockets."""
    import hvkit
    from tests.kvm.test_migrate import _unix_peer

    run_block(block, lambda _url: "kvm:///system?virt_type=qemu", {"hvkit": hvkit}, {"peers": [_unix_peer(kvm2)]})
    with hvkit.connect("kvm:///system", virt_type="qemu", peers=[_unix_peer(kvm2)]) as hv:
        assert hv.vms.get("web").host == kvm2.host_uuid
        assert hv.vms.get("db").disks[0].pool == "fast"


def test_any_hvkit_name_is_kept(test_hv: Hypervisor, prefix: str) -> None:
    """libvirt takes any name hvkit accepts, for domains, snapshots and volumes (libvirt's test driver)."""
    for suffix in ("web server #1 (ü) 100%", "x" * (80 - len(prefix))):
        name = prefix + suffix
        vm = test_hv.vms.create(VMSpec(name, memory_mib=64))
        assert test_hv.vms.get(name).id == vm.id and [v.name for v in test_hv.vms.list() if v.id == vm.id] == [name]
        snap = test_hv.snapshots.create(vm, "before-upgrade: 100% (ü)")
        assert test_hv.snapshots.get(vm, "before-upgrade: 100% (ü)").id == snap.id
        test_hv.snapshots.delete(snap)  # libvirt's test driver keeps a domain that has snapshots
        test_hv.vms.delete(vm)
    volume = test_hv.volumes.create("default-pool", prefix + "data disk #1 (ü) 50%.img", 0.01, format="raw")
    assert test_hv.volumes.get(volume.id).name == prefix + "data disk #1 (ü) 50%.img"


def test_revert_after_a_linked_clone_keeps_both_disks_right(qemu_hv: Hypervisor, prefix: str) -> None:
    """A running VM's memory snapshot, a linked clone of it (running, with that snapshot), new data in the
    source, then the revert: the source has the snapshot's data again, the clone still the data it was made with."""
    import io
    import os
    import subprocess

    def write(vm_id: str) -> bytes:
        data = os.urandom(1024 * 1024)
        volume = qemu_hv.vms.get(vm_id).disks[0].volume or ""
        qemu_hv.volumes.upload(volume, io.BytesIO(data))
        return data

    def read(vm_id: str) -> bytes:
        out = io.BytesIO()
        qemu_hv.volumes.download(qemu_hv.vms.get(vm_id).disks[0].volume or "", out)
        return out.getvalue()[: 1024 * 1024]

    spec = VMSpec(prefix + "src", cpus=1, memory_mib=64, disks=[DiskSpec(size_gib=0.02, pool="default")])
    vm = qemu_hv.vms.create(spec)
    first = write(vm.id)
    vm = qemu_hv.vms.start(vm)
    snap = qemu_hv.snapshots.create(vm, "before-upgrade")
    assert snap.memory
    clone = qemu_hv.vms.clone(vm, prefix + "clone", linked=True)
    qemu_hv.vms.stop(vm, force=True)
    overlay = qemu_hv.vms.get(vm.id).disks[0].path or ""
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", overlay], check=True, capture_output=True)
    assert read(vm.id) == b"\x5a" * 1024 * 1024  # the source's own overlay took it: the clone's base did not
    assert read(clone.id) == first
    assert qemu_hv.snapshots.revert(snap).power_state.value == "running"
    qemu_hv.vms.stop(vm, force=True)
    assert read(vm.id) == first and read(clone.id) == first
    assert [s.name for s in qemu_hv.snapshots.list(vm)] == ["before-upgrade"]
