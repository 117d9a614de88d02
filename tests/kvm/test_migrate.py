"""Migration with real QEMU guests: to a second libvirtd on this machine, and between storage pools.

The second libvirt host (:mod:`hvkit.testing.libvirt_peer`) runs in its own network, mount and UTS
namespaces with its own host UUID, configuration, state, images and sockets. Between the system
daemon and a peer, libvirt migrates over UNIX sockets in a directory both see (libvirt's documented
way between daemons in containers on one host); between two peers, over TCP on a veth pair whose
addresses exist only inside the two namespaces.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit.errors import HvkitError, NotFound
from hvkit.hypervisor import Hypervisor
from hvkit.models import DiskSpec, PowerState, VMSpec
from hvkit.tasks import TaskInfo
from hvkit.testing.guest_image import wait_for_marker
from hvkit.testing.libvirt_peer import LibvirtPeer, link

pytestmark = pytest.mark.slow
BOOT_TIMEOUT = 120.0
MARKER = "hvkit-kvm-tests"


def _peer_missing() -> str | None:
    if os.geteuid() != 0:
        return "a second libvirtd in its own namespaces needs root"
    for tool in ("ip", "nsenter", "unshare", "libvirtd", "virtlogd", "virsh"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup.d/21-kvm-peer.packages)"
    return None


@pytest.fixture(scope="module")
def peer() -> Iterator[LibvirtPeer]:
    reason = _peer_missing()
    if reason:
        pytest.skip(reason)
    with LibvirtPeer(f"hvp-{uuid.uuid4().hex[:6]}") as started:
        yield started


def _unix_peer(peer: LibvirtPeer) -> dict[str, object]:
    """The peer as the system daemon migrates to it: everything over UNIX sockets in the shared directory."""
    return {
        "name": peer.name,
        "uri": peer.uri,
        "migrate_uri": f"unix://{peer.exchange}/{{vm}}.mig",
        "disks_uri": f"unix://{peer.exchange}/{{vm}}.nbd",
        "p2p": True,
    }


def _boot(hv: Hypervisor, prefix: str, image: Path, name: str) -> tuple[str, str]:
    """Upload the guest image, create and start a VM on it, wait for its marker; return (VM id, volume path)."""
    vol = hv.volumes.create("default", f"{prefix}{name}.qcow2", image.stat().st_size / 1024**3, format="qcow2")
    vol = hv.volumes.upload(vol, image)
    vm = hv.vms.create(VMSpec(prefix + name, cpus=1, memory_mib=128, disks=[DiskSpec(volume=vol.id)]))
    vm = hv.vms.start(vm)
    return vm.id, vol.path or ""


def _log_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _stop_and_see_poweroff(hv: Hypervisor, vm_id: str, log: Path) -> None:
    """The guest's own init answers the ACPI power button: proof that it runs where the VM now is."""
    hv.vms.stop(vm_id, timeout=60)
    assert "HVKIT-GUEST-POWEROFF" in _log_text(log), _log_text(log)[-500:]


def test_live_migration_to_a_namespaced_peer_copies_the_disk(
    qemu_session: Hypervisor, peer: LibvirtPeer, prefix: str, guest_image: Path
) -> None:
    with (
        hvkit.connect("kvm:///system", virt_type="qemu", peers=[_unix_peer(peer)]) as hv,
        hvkit.connect("kvm:///system", uri=peer.uri, virt_type="qemu") as on_peer,
    ):
        hosts = hv.hosts.list()
        assert len(hosts) == 2 and hosts[1].name == peer.name and hosts[1].id == peer.host_uuid
        assert hosts[0].id != hosts[1].id
        vm_id, src_path = _boot(hv, prefix, guest_image, "mig")
        serial = Path(hv.vms.get(vm_id).extra["serial_log"])
        assert wait_for_marker(serial, MARKER, BOOT_TIMEOUT) == MARKER
        seen: list[TaskInfo] = []
        t0 = time.monotonic()
        moved = hv.vms.migrate(vm_id, host=peer.name, progress=seen.append)
        print(f"live migration with disk copy: {time.monotonic() - t0:.1f} s, progress {[i.progress for i in seen]}")
        assert moved.host == peer.host_uuid and moved.power_state is PowerState.RUNNING
        assert moved.extra["uri"] == peer.uri
        with pytest.raises(NotFound):
            hv.vms.get(vm_id)
        assert not Path(src_path).exists(), "the source disk was not removed after the move"
        there = on_peer.vms.get(vm_id)
        assert there.power_state is PowerState.RUNNING and there.host == peer.host_uuid
        [disk] = there.disks
        assert disk.pool == "default" and disk.path == src_path  # same path, the peer's own file
        assert (peer.base / "lib/images" / Path(src_path).name).exists()
        _stop_and_see_poweroff(on_peer, vm_id, peer.base / "log/qemu" / serial.name)
        on_peer.vms.delete(vm_id)


def test_storage_migration_running_then_stopped(qemu_hv: Hypervisor, prefix: str, guest_image: Path) -> None:
    directory = Path(f"/var/lib/libvirt/{prefix}pool")
    xml = f"<pool type='dir'><name>{prefix}pool</name><target><path>{directory}</path></target></pool>"
    conn = qemu_hv.backend.conn  # type: ignore[attr-defined]
    pool = conn.storagePoolDefineXML(xml, 0)
    try:
        pool.build(0)
        pool.create(0)
        vm_id, src_path = _boot(qemu_hv, prefix, guest_image, "smig")
        serial = Path(qemu_hv.vms.get(vm_id).extra["serial_log"])
        assert wait_for_marker(serial, MARKER, BOOT_TIMEOUT) == MARKER
        t0 = time.monotonic()
        moved = qemu_hv.vms.migrate(vm_id, pool=f"{prefix}pool")
        print(f"live storage migration: {time.monotonic() - t0:.1f} s")
        assert moved.power_state is PowerState.RUNNING
        assert moved.disks[0].pool == f"{prefix}pool" and moved.disks[0].path == str(directory / Path(src_path).name)
        assert not Path(src_path).exists()
        # the persistent definition follows too
        assert str(directory) in conn.lookupByUUIDString(vm_id).XMLDesc(2)  # VIR_DOMAIN_XML_INACTIVE
        _stop_and_see_poweroff(qemu_hv, vm_id, serial)
        # stopped: copied, redefined, and it boots from the copy
        t0 = time.monotonic()
        back = qemu_hv.vms.migrate(vm_id, pool="default")
        print(f"offline storage migration: {time.monotonic() - t0:.1f} s")
        assert back.disks[0].pool == "default" and back.power_state is PowerState.STOPPED
        serial.write_text("")
        qemu_hv.vms.start(vm_id)
        assert wait_for_marker(serial, MARKER, BOOT_TIMEOUT) == MARKER
        qemu_hv.vms.delete(vm_id, force=True)
    finally:
        for vol in pool.listAllVolumes(0) if pool.isActive() else []:
            vol.delete(0)
        if pool.isActive():
            pool.destroy()
        pool.undefine()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def linked_peers() -> Iterator[tuple[LibvirtPeer, LibvirtPeer]]:
    """Two peers joined by a veth pair (192.168.251.1 and .2, only inside their namespaces), listening on TCP."""
    reason = _peer_missing()
    if reason:
        pytest.skip(reason)
    token = uuid.uuid4().hex[:5]
    a = LibvirtPeer(f"hva-{token}", listen_tcp=True)
    b = LibvirtPeer(f"hvb-{token}", listen_tcp=True)
    try:
        link(a, b, "192.168.251.1", "192.168.251.2")
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()


def test_live_migration_over_a_veth_link_and_back(
    linked_peers: tuple[LibvirtPeer, LibvirtPeer], prefix: str, guest_image: Path
) -> None:
    a, b = linked_peers
    with (
        hvkit.connect("kvm:///system", uri=a.uri, virt_type="qemu", peers=f"{b.name}={b.uri}") as on_a,
        hvkit.connect("kvm:///system", uri=b.uri, virt_type="qemu", peers=f"{a.name}={a.uri}") as on_b,
    ):
        vm_id, path = _boot(on_a, prefix, guest_image, "veth")
        serial = Path(on_a.vms.get(vm_id).extra["serial_log"]).name
        assert wait_for_marker(a.base / "log/qemu" / serial, MARKER, BOOT_TIMEOUT) == MARKER
        t0 = time.monotonic()
        moved = on_a.vms.migrate(vm_id, host=b.name)
        print(f"A -> B over TCP: {time.monotonic() - t0:.1f} s")
        assert moved.host == b.host_uuid and moved.power_state is PowerState.RUNNING
        assert (b.base / "lib/images" / Path(path).name).exists()
        assert not (a.base / "lib/images" / Path(path).name).exists()
        t0 = time.monotonic()
        back = on_b.vms.migrate(vm_id, host=a.host_uuid)
        print(f"B -> A over TCP: {time.monotonic() - t0:.1f} s")
        assert back.host == a.host_uuid and back.power_state is PowerState.RUNNING
        # cancel: slowed down to 1 MiB/s, the job is aborted; the VM stays on A, B keeps nothing
        dom = on_a.backend.conn.lookupByUUIDString(vm_id)  # type: ignore[attr-defined]
        dom.migrateSetMaxSpeed(1, 0)
        task = on_a.backend.migrate_vm(on_a.vms.get(vm_id), b.host_uuid, None, True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not dom.jobInfo()[0]:  # VIR_DOMAIN_JOB_NONE
            time.sleep(0.05)
        time.sleep(0.5)
        task.cancel()
        with pytest.raises(HvkitError):
            task.wait(60)
        dom.migrateSetMaxSpeed(0, 0)
        assert on_a.vms.get(vm_id).power_state is PowerState.RUNNING
        assert not on_b.vms.list() and not (b.base / "lib/images" / Path(path).name).exists()
        _stop_and_see_poweroff(on_a, vm_id, a.base / "log/qemu" / serial)
        # stopped: disks by storage streams, the domain defined on B; it boots there from the copied disk
        t0 = time.monotonic()
        cold = on_a.vms.migrate(vm_id, host=b.name)
        print(f"A -> B stopped (streams): {time.monotonic() - t0:.1f} s")
        assert cold.host == b.host_uuid and cold.power_state is PowerState.STOPPED
        assert not on_a.vms.list() and not (a.base / "lib/images" / Path(path).name).exists()
        on_b.vms.start(vm_id)
        assert wait_for_marker(b.base / "log/qemu" / serial, MARKER, BOOT_TIMEOUT) == MARKER
        on_b.vms.delete(vm_id, force=True)
