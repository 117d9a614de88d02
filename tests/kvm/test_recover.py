"""Restart after a host failure on KVM: a VM of a second libvirtd whose daemon and QEMU are killed starts again
on the system daemon from its kept definition (option ``definitions``), its disk on a dir pool both daemons
see at the same path (option ``shared_pools``); when the failed daemon comes back it does not run it twice.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hvkit
from hvkit.errors import InvalidState
from hvkit.fleet import Fleet
from hvkit.hypervisor import Hypervisor
from hvkit.models import DiskSpec, PowerState, VMSpec
from hvkit.testing.guest_image import wait_for_marker
from hvkit.testing.libvirt_peer import LibvirtPeer

from .conftest import PEER_PREFIX, _sweep

pytestmark = pytest.mark.slow
BOOT_TIMEOUT = 120.0
MARKER = "hvkit-kvm-tests"


class _Restartable(LibvirtPeer):
    """A peer whose daemons can be started again after they were killed (its pools are defined already)."""

    def _write_config(self) -> None:
        """libvirt remembers a file's owner in XATTRs stamped with the host's boot time; a host that dies
        leaves them, and another host ignores them (another boot time). The two daemons here share one
        kernel, so the failing one does not remember owners: its leftovers would look current."""
        super()._write_config()
        with (self.base / "etc/qemu.conf").open("a") as conf:
            conf.write("remember_owner = 0\n")

    def _ensure_default_pool(self) -> None:
        listed = subprocess.run(
            ["virsh", "-q", "-c", self.uri, "pool-list", "--all", "--name"], capture_output=True, text=True, timeout=60
        )
        if "default" not in listed.stdout.split():
            super()._ensure_default_pool()

    def kill(self) -> None:
        """A host failure: its libvirtd, virtlogd and QEMU die at once (SIGKILL), nothing is shut down."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not self.pids(), f"peer {self.name}: processes outlived SIGKILL"

    def restart(self) -> None:
        self._start(60.0)


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "a second libvirtd in its own namespaces needs root"
    for tool in ("ip", "nsenter", "unshare", "libvirtd", "virtlogd", "virsh"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup.d/21-kvm-peer.packages)"
    return None


def _define_pool(conn: object, name: str, path: Path) -> None:
    xml = f"<pool type='dir'><name>{name}</name><target><path>{path}</path></target></pool>"
    pool = conn.storagePoolDefineXML(xml, 0)  # type: ignore[attr-defined]
    pool.create(0)


@pytest.fixture
def failing_peer(qemu_hv: Hypervisor, prefix: str) -> Iterator[tuple[_Restartable, Path, Path]]:
    """A peer, a directory both daemons see at one path (outside the peer's own /var/lib/libvirt) with a dir
    pool ``{prefix}shared`` over it on both, and a definitions directory; all removed after the test."""
    import libvirt

    reason = _missing()
    if reason:
        pytest.skip(reason)
    shared = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    kept = Path(tempfile.mkdtemp(prefix=f"{prefix}defs-", dir="/var/tmp"))
    shared.chmod(0o755)
    peer = _Restartable(f"{PEER_PREFIX}r")
    conn = qemu_hv.backend.conn  # type: ignore[attr-defined]
    try:
        peer.start()
        _define_pool(conn, f"{prefix}shared", shared)
        on_peer = libvirt.open(peer.uri)
        try:
            _define_pool(on_peer, f"{prefix}shared", shared)
        finally:
            on_peer.close()
        yield peer, shared, kept
    finally:
        try:
            _sweep(conn, prefix)  # the restarted VM, its volume, the pool
        finally:
            peer.stop()
            shutil.rmtree(shared, ignore_errors=True)
            shutil.rmtree(kept, ignore_errors=True)


def test_a_vm_of_a_killed_daemon_restarts_on_the_survivor_and_not_twice(
    qemu_hv: Hypervisor, prefix: str, guest_image: Path, failing_peer: tuple[_Restartable, Path, Path]
) -> None:
    import libvirt

    peer, shared, kept = failing_peer
    pool = f"{prefix}shared"
    options: dict[str, Any] = {"virt_type": "qemu", "definitions": str(kept), "shared_pools": pool}
    with hvkit.connect("kvm:///system", peers=[{"name": peer.name, "uri": peer.uri}], **options) as hv:
        here: str = hv.backend.host_id  # type: ignore[attr-defined]
        with hvkit.connect("kvm:///system", uri=peer.uri, **options) as on_peer:
            vol = on_peer.volumes.create(pool, f"{prefix}r.qcow2", guest_image.stat().st_size / 1024**3, format="qcow2")
            vol = on_peer.volumes.upload(vol, guest_image)
            vm = on_peer.vms.create(VMSpec(prefix + "r", cpus=1, memory_mib=128, disks=[DiskSpec(volume=vol.id)]))
            on_peer.vms.start(vm)
        assert vol.path is not None and vol.path.startswith(str(shared))
        assert [p.shared for p in hv.pools.list() if p.name == pool] == [True]
        # listing the cluster keeps the peer's definitions
        [listed] = [v for v in hv.vms.list() if v.id == vm.id]
        assert listed.host == peer.host_uuid and listed.power_state is PowerState.RUNNING
        assert (kept / peer.host_uuid / f"{vm.id}.xml").exists()
        with pytest.raises(InvalidState, match="answers"):  # its daemon is up: no restart elsewhere
            hv.backend.recover_vm(listed, here)

        peer.kill()
        [host] = [h for h in hv.hosts.list() if h.id == peer.host_uuid]
        assert not host.connected and host.name == peer.name
        [seen] = [v for v in hv.vms.list() if v.id == vm.id]
        assert seen.host == peer.host_uuid and seen.power_state is PowerState.UNKNOWN and seen.extra["kept"]
        assert seen.disks[0].pool == pool and seen.disks[0].path == vol.path

        with Fleet({"kvm": hv}) as fleet:
            plan = fleet.recover(peer.name, dry_run=True).plan
            assert [(r.vm_name, r.target) for r in plan.restarts] == [(vm.name, here)], str(plan)
            t0 = time.monotonic()
            result = fleet.recover(peer.name)
        print(f"recovery of one VM: {time.monotonic() - t0:.1f} s")
        assert result.ok and [r.vm_name for r in result.restarted] == [vm.name], [x.reason for x in result.failed]
        back = hv.vms.get(vm.id)
        assert back.host == here and back.power_state is PowerState.RUNNING
        assert back.disks[0].path == vol.path
        assert wait_for_marker(Path(back.extra["serial_log"]), MARKER, BOOT_TIMEOUT) == MARKER  # boots from its disk
        assert [v.host for v in hv.vms.list() if v.id == vm.id] == [here]

        # the failed host comes back with the VM still defined there (shut off): hvkit undefines it, by UUID
        peer.restart()
        conn = libvirt.open(peer.uri)
        try:
            assert not conn.lookupByUUIDString(vm.id).isActive()
            listing = [v for v in hv.vms.list() if v.id == vm.id]
            assert [(v.host, v.power_state) for v in listing] == [(here, PowerState.RUNNING)]
            with pytest.raises(libvirt.libvirtError):
                conn.lookupByUUIDString(vm.id)
        finally:
            conn.close()
        assert not (kept / peer.host_uuid / f"{vm.id}.xml").exists()
        assert (kept / here / f"{vm.id}.xml").exists()
        hv.vms.delete(vm.id, force=True)
