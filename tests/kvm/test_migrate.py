"""Migration with real QEMU guests: to a second libvirtd on this machine, and between storage pools.

The second libvirt host (:mod:`hvkit.testing.libvirt_peer`) runs in its own network, mount and UTS
namespaces with its own host UUID, configuration, state, images and sockets. Between the system
daemon and a peer, libvirt migrates over UNIX sockets in a directory both see (libvirt's documented
way between daemons in containers on one host); between two peers, over TCP on a veth pair whose
addresses exist only inside the two namespaces.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
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

from .conftest import PEER_PREFIX, PREFIX

pytestmark = pytest.mark.slow
Linked = tuple[LibvirtPeer, LibvirtPeer]
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
    """A second libvirtd in its own namespaces; stopped (namespace, daemons, guests, files) whatever happens."""
    reason = _peer_missing()
    if reason:
        pytest.skip(reason)
    started = LibvirtPeer(f"{PEER_PREFIX}s")
    try:
        started.start()  # a failed start stops what it started
        yield started
    finally:
        started.stop()


@pytest.fixture
def peer_swept(peer: LibvirtPeer, prefix: str) -> Iterator[LibvirtPeer]:
    """The peer, and after the test (whatever its outcome) nothing of the test's prefix on its daemon."""
    try:
        yield peer
    finally:
        _wipe(peer, prefix)


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
    qemu_hv: Hypervisor, peer_swept: LibvirtPeer, prefix: str, guest_image: Path
) -> None:
    peer = peer_swept
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
        # one cluster: the source connection still sees the VM, now on the peer, and routes calls there
        routed = hv.vms.get(vm_id)
        assert routed.host == peer.host_uuid and routed.extra["uri"] == peer.uri
        assert [v.host for v in hv.vms.list() if v.id == vm_id] == [peer.host_uuid]
        assert not Path(src_path).exists(), "the source disk was not removed after the move"
        there = on_peer.vms.get(vm_id)
        assert there.power_state is PowerState.RUNNING and there.host == peer.host_uuid
        [disk] = there.disks
        assert disk.pool == "default" and disk.path == src_path  # same path, the peer's own file
        assert (peer.base / "lib/images" / Path(src_path).name).exists()
        # power and delete through the source connection: routed to the peer's daemon
        _stop_and_see_poweroff(hv, vm_id, peer.base / "log/qemu" / serial.name)
        # stopped on the peer, still through the source connection: reconfigure, snapshots, clone
        assert hv.vms.reconfigure(vm_id, memory_mib=96).memory_mib == 96 == on_peer.vms.get(vm_id).memory_mib
        snap = hv.snapshots.create(vm_id, "s1")
        assert [s.name for s in hv.snapshots.list(vm_id)] == ["s1"] == [s.name for s in on_peer.snapshots.list(vm_id)]
        hv.snapshots.delete(snap)
        clone = hv.vms.clone(vm_id, prefix + "clone")
        assert clone.host == peer.host_uuid and on_peer.vms.get(clone.id).disks[0].pool == "default"
        hv.vms.delete(clone)
        hv.vms.delete(vm_id)
        with pytest.raises(NotFound):
            on_peer.vms.get(vm_id)
        assert not (peer.base / "lib/images" / Path(src_path).name).exists()


@pytest.fixture
def second_pool(qemu_hv: Hypervisor, prefix: str) -> Iterator[Path]:
    """A second dir pool on the system daemon, ``{prefix}pool``; its volumes, definition and folder go after the
    test, whatever its outcome (the VM first: ``qemu_hv``'s sweep runs after this finalizer, so do it here)."""
    import libvirt

    directory = Path(f"/var/lib/libvirt/{prefix}pool")
    xml = f"<pool type='dir'><name>{prefix}pool</name><target><path>{directory}</path></target></pool>"
    conn = qemu_hv.backend.conn  # type: ignore[attr-defined]
    pool = conn.storagePoolDefineXML(xml, 0)
    try:
        pool.build(0)
        pool.create(0)
        yield directory
    finally:
        from .conftest import _sweep

        try:
            _sweep(conn, prefix)  # the test's VM, then its volumes in every pool, then this pool
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                pool.undefine()
            shutil.rmtree(directory, ignore_errors=True)


def test_storage_migration_running_then_stopped(
    qemu_hv: Hypervisor, prefix: str, guest_image: Path, second_pool: Path
) -> None:
    directory = second_pool
    conn = qemu_hv.backend.conn  # type: ignore[attr-defined]
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


@pytest.fixture(scope="module")
def linked_peers() -> Iterator[Linked]:
    """Two peers joined by a veth pair (192.168.251.1 and .2, only inside their namespaces), listening on TCP."""
    reason = _peer_missing()
    if reason:
        pytest.skip(reason)
    a = LibvirtPeer(f"{PEER_PREFIX}a", listen_tcp=True)
    b = LibvirtPeer(f"{PEER_PREFIX}b", listen_tcp=True)
    with contextlib.ExitStack() as stack:  # both stopped, even when one's stop fails
        stack.callback(b.stop)
        stack.callback(a.stop)
        link(a, b, "192.168.251.1", "192.168.251.2")
        a.start()
        b.start()
        yield a, b


@pytest.fixture
def linked_swept(linked_peers: Linked, prefix: str) -> Iterator[Linked]:
    """The linked peers, and after the test (whatever its outcome) nothing of the test's prefix on either."""
    try:
        yield linked_peers
    finally:
        try:
            _wipe(linked_peers[0], prefix)
        finally:
            _wipe(linked_peers[1], prefix)


def test_live_migration_over_a_veth_link_and_back(linked_swept: Linked, prefix: str, guest_image: Path) -> None:
    a, b = linked_swept
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
        assert [v.host for v in on_b.vms.list()] == [a.host_uuid]  # B's cluster view: the VM, on A only
        assert not (b.base / "lib/images" / Path(path).name).exists()
        _stop_and_see_poweroff(on_a, vm_id, a.base / "log/qemu" / serial)
        # stopped: disks by storage streams, the domain defined on B; it boots there from the copied disk
        t0 = time.monotonic()
        cold = on_a.vms.migrate(vm_id, host=b.name)
        print(f"A -> B stopped (streams): {time.monotonic() - t0:.1f} s")
        assert cold.host == b.host_uuid and cold.power_state is PowerState.STOPPED
        assert [v.host for v in on_a.vms.list()] == [b.host_uuid]  # A's cluster view: the VM, on B only
        assert not (a.base / "lib/images" / Path(path).name).exists()
        on_b.vms.start(vm_id)
        assert wait_for_marker(b.base / "log/qemu" / serial, MARKER, BOOT_TIMEOUT) == MARKER
        on_b.vms.delete(vm_id, force=True)


def test_fleet_balances_and_evacuates_across_two_libvirt_hosts(
    linked_swept: Linked, prefix: str, guest_image: Path
) -> None:
    """Issue 7 on KVM: the Fleet plans live migrations among the hosts of one kvm connection with peers.

    Three 1-vCPU guests on A make A's allocated CPU 3/8 (2 threads x overcommit 4; memory is negligible
    beside the machine's): over a target of 0.3, so one must move to B. Then B is evacuated (target
    0.4: A takes 3/8 again), which moves that VM back through the cluster routing (a VM on the peer,
    migrated by the connection to A). Each result is read by a new connection, without the Fleet.
    """
    from hvkit.fleet import Fleet

    from ..fleet.test_real_backends import checked_balance, predicted, run, verify_real

    a, b = linked_swept
    hosts = {a.host_uuid: a, b.host_uuid: b}

    def connect() -> Hypervisor:
        # the cluster's list, A included: A is not listed twice, and its entry says how to move VMs to A
        return hvkit.connect("kvm:///system", uri=a.uri, virt_type="qemu", peers=f"{a.name}={a.uri},{b.name}={b.uri}")

    hv = connect()
    try:
        for p in (a, b):  # the peers are this module's own: no other test's VM may be left there
            _wipe(p)
        t_start = time.monotonic()
        vms = [_boot(hv, prefix, guest_image, f"fl{i}") for i in range(3)]
        serials = {vm_id: Path(hv.vms.get(vm_id).extra["serial_log"]).name for vm_id, _ in vms}
        for vm_id in serials:
            assert wait_for_marker(a.base / "log/qemu" / serials[vm_id], MARKER, BOOT_TIMEOUT) == MARKER
        print(f"3 guests booted on A: {time.monotonic() - t_start:.1f} s")

        fleet = Fleet({"kvm": hv})
        assert {h.id for h in fleet.hosts()} == set(hosts)
        plan = checked_balance(fleet, 0.3)
        assert plan.complete and len(plan.moves) == 1
        [move] = plan.moves
        assert move.source == a.host_uuid and move.target == b.host_uuid and move.hypervisor == "kvm"
        t0 = time.monotonic()
        run(fleet, plan)
        print(f"balance: {len(plan.moves)} live migration(s) with disk copy A -> B: {time.monotonic() - t0:.1f} s")
        moved = str(move.vm)
        with connect() as fresh:  # a new connection: nothing cached from the moves
            verify_real(fresh, plan, 0.3)
            now = {v.id: v for v in fresh.vms.list()}
            assert set(now) == set(serials) and all(v.power_state is PowerState.RUNNING for v in now.values())
            assert now[moved].host == b.host_uuid and now[moved].extra["uri"] == b.uri
            # calls on the moved VM go to B's daemon: bulk metrics, console, read by name
            [metrics] = fresh.vms.metrics([moved])
            assert metrics.cpu_time_ns and metrics.cpu_time_ns > 0
            assert fresh.vms.console(moved).port
            assert fresh.vms.get(now[moved].name).host == b.host_uuid
        disk = Path(dict(vms)[moved]).name
        assert (b.base / "lib/images" / disk).exists() and not (a.base / "lib/images" / disk).exists()
        assert checked_balance(fleet, 0.3).moves == ()  # a fresh plan on the new state: nothing to do

        # B leaves (maintenance): its VM comes back to A, moved by the connection to A from B
        plan = checked_balance(fleet, 0.4, evacuate=[b.name])
        assert plan.complete and [(m.vm, m.source, m.target) for m in plan.moves] == [(moved, b.host_uuid, a.host_uuid)]
        assert {m.reason for m in plan.moves} == {"maintenance"}
        t0 = time.monotonic()
        run(fleet, plan)
        print(f"evacuation: {len(plan.moves)} live migration(s) B -> A: {time.monotonic() - t0:.1f} s")
        with connect() as fresh:
            assert verify_real(fresh, plan, 0.4) and set(predicted(plan).values()) == {a.host_uuid}
            assert all(v.host == a.host_uuid and v.power_state is PowerState.RUNNING for v in fresh.vms.list())
        assert (a.base / "lib/images" / disk).exists() and not (b.base / "lib/images" / disk).exists()
        # the guest that went A -> B -> A live still runs: its init answers the power button on A
        _stop_and_see_poweroff(hv, moved, a.base / "log/qemu" / serials[moved])
        print(f"fleet test on KVM: {time.monotonic() - t_start:.1f} s")
    finally:
        hv.close()
        for p in (a, b):
            _wipe(p)


def _wipe(peer: LibvirtPeer, prefix: str = PREFIX) -> None:
    """Remove every test domain and volume of ``prefix`` (default: this run's) from a peer; fail if any stays."""
    import libvirt

    from .conftest import _sweep

    if not Path(peer.socket).exists():  # the peer is down: its namespace and files go with its own stop()
        return
    conn = libvirt.open(peer.uri)
    try:
        left = _sweep(conn, prefix)
    finally:
        conn.close()
    assert not left, f"peer {peer.name}: the sweep of {prefix!r} could not remove: {', '.join(left)}"
