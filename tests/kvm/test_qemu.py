"""kvm backend against qemu:///system with real QEMU guests (software emulation) booting the test disk."""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import pytest

from hvkit.backends.kvm import KvmBackend
from hvkit.errors import InvalidState
from hvkit.hypervisor import Hypervisor
from hvkit.models import CloudInit, DiskSpec, NicSpec, PowerState, VMSpec
from hvkit.testing.guest_image import wait_for_marker

pytestmark = pytest.mark.slow
BOOT_TIMEOUT = 120.0


def _backend(hv: Hypervisor) -> KvmBackend:
    assert isinstance(hv.backend, KvmBackend)
    return hv.backend


def _template(hv: Hypervisor, prefix: str, image: Path, fmt: str = "qcow2") -> str:
    """A volume holding the guest image (uploaded through a libvirt stream); returns its id."""
    vol = hv.volumes.create("default", f"{prefix}base.{fmt}", image.stat().st_size / 1024**3, format=fmt)
    return hv.volumes.upload(vol, image).id


def test_linked_clone_boots_and_operates(qemu_hv: Hypervisor, prefix: str, guest_image: Path) -> None:
    """One booted guest for every running-guest check: a linked clone of a template holding the test disk."""
    vol = _template(qemu_hv, prefix, guest_image, "qcow2")
    # a NIC on the default network (for the DHCP lease) and room for one hot-added CPU, which the clone keeps
    spec = VMSpec(
        prefix + "tmpl",
        memory_mib=192,
        disks=[DiskSpec(volume=vol)],
        nics=[NicSpec("default")],
        extra={"max_cpus": 2},
    )
    template = qemu_hv.vms.create(spec)
    events: list[dict[str, object]] = []
    stop_watch = qemu_hv.vms.watch(events.append)
    try:
        vm = qemu_hv.vms.clone(template, prefix + "guest", linked=True)
        assert qemu_hv.volumes.get(vm.disks[0].volume or "").backing == qemu_hv.volumes.get(vol).path
        # the source got its own overlay: the shared base never changes again
        source_vol = qemu_hv.volumes.get(qemu_hv.vms.get(template).disks[0].volume or "")
        assert source_vol.backing == qemu_hv.volumes.get(vol).path
        full = qemu_hv.vms.clone(template, prefix + "fc1")
        assert qemu_hv.volumes.get(full.disks[0].volume or "").backing is None
        assert full.nics[0].mac != vm.nics[0].mac != template.nics[0].mac
        qemu_hv.vms.delete(full)
        vm = qemu_hv.vms.start(vm)
        assert vm.power_state is PowerState.RUNNING
        t0 = time.monotonic()
        assert wait_for_marker(vm.extra["serial_log"], "hvkit-kvm-tests", BOOT_TIMEOUT) == "hvkit-kvm-tests"
        print(f"marker after {time.monotonic() - t0:.1f} s")
        # the console through libvirt's stream reads the same serial port
        reader = _backend(qemu_hv).read_serial(vm)
        assert isinstance(reader(), str)
        console = qemu_hv.vms.console(vm)
        assert console.protocol == "vnc" and console.port and console.port >= 5900
        deadline = time.monotonic() + 60
        ips: list[str] = []
        while time.monotonic() < deadline and not ips:
            ips = qemu_hv.vms.guest_ips(vm)
            time.sleep(0.5)
        print(f"lease after {time.monotonic() - t0:.1f} s")
        assert ips and ips[0].startswith("192.168.122."), "the guest got no DHCP lease"
        [metrics] = qemu_hv.vms.metrics([vm])
        assert metrics.cpu_time_ns and metrics.cpu_time_ns > 0
        [host_metrics] = qemu_hv.hosts.metrics()
        assert host_metrics.memory_used_mib and host_metrics.memory_used_mib > 0
        # pause / resume in memory
        assert qemu_hv.vms.pause(vm).power_state is PowerState.PAUSED
        assert qemu_hv.vms.resume(vm).power_state is PowerState.RUNNING
        # a memory snapshot of the running guest, reverted while it runs
        snap = qemu_hv.snapshots.create(vm, "live", memory=True)
        assert snap.memory
        assert qemu_hv.snapshots.revert(snap).power_state is PowerState.RUNNING
        qemu_hv.snapshots.delete(snap)
        # managed save, then start resumes it
        assert qemu_hv.vms.suspend(vm).power_state is PowerState.SUSPENDED
        assert qemu_hv.vms.start(vm).power_state is PowerState.RUNNING
        # live CPU hot-add up to the configured maximum (after the managed save: QEMU cannot restore a
        # saved state with hot-added CPUs)
        assert qemu_hv.vms.reconfigure(vm, cpus=2).cpus == 2
        with pytest.raises(InvalidState, match="at most 2 CPUs"):
            qemu_hv.vms.reconfigure(vm, cpus=3)
        # reboot: libvirt presses the ACPI power button and resets the guest when it powers off; the
        # guest boots again and prints a new marker line
        log = Path(vm.extra["serial_log"])
        seen = len(log.read_bytes())
        assert qemu_hv.vms.reboot(vm).power_state is PowerState.RUNNING
        t0 = time.monotonic()

        def after_reboot() -> str:
            return log.read_bytes()[seen:].decode(errors="replace")

        assert wait_for_marker(after_reboot, "hvkit-kvm-tests", BOOT_TIMEOUT) == "hvkit-kvm-tests"
        print(f"rebooted in {time.monotonic() - t0:.1f} s")
        # graceful shutdown: the guest powers off on the ACPI power button
        assert qemu_hv.vms.stop(vm, timeout=60).power_state is PowerState.STOPPED
        wanted = {"defined", "started", "paused", "resumed", "suspended", "stopped"}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not wanted <= {e["event"] for e in events if e["vm"] == vm.id}:
            time.sleep(0.1)
        assert wanted <= {e["event"] for e in events if e["vm"] == vm.id}
    finally:
        stop_watch()
    qemu_hv.vms.delete(vm)
    qemu_hv.vms.delete(template)


def test_upload_download_sparse_round_trip(qemu_hv: Hypervisor, prefix: str) -> None:
    size = 8 * 1024 * 1024
    content = bytearray(size)
    content[0:4096] = os.urandom(4096)
    content[5 * 1024 * 1024 : 5 * 1024 * 1024 + 100] = b"x" * 100
    digest = hashlib.sha256(content).hexdigest()
    for fmt in ("raw", "qcow2"):
        vol = qemu_hv.volumes.create("default", f"{prefix}data.{fmt}", size / 1024**3, format=fmt)
        vol = qemu_hv.volumes.upload(vol, io.BytesIO(bytes(content)))
        assert vol.allocation_bytes is not None and vol.allocation_bytes < size // 2, "holes were written as data"
        sink = io.BytesIO()
        assert qemu_hv.volumes.download(vol, sink) == size
        assert hashlib.sha256(sink.getvalue()).hexdigest() == digest
        qemu_hv.volumes.delete(vol)


def test_cloud_init_seed_is_attached_and_removed(qemu_hv: Hypervisor, prefix: str) -> None:
    ci = CloudInit(hostname="seeded", username="ops", ssh_keys=("ssh-ed25519 AAAAC3 test",))
    vm = qemu_hv.vms.create(VMSpec(prefix + "ci", memory_mib=128, disks=[DiskSpec(size_gib=0.05)], cloud_init=ci))
    seed = vm.extra["seed"]
    assert seed and seed.endswith("-seed.iso")
    seed_vol = qemu_hv.volumes.get(seed)
    sink = io.BytesIO()
    qemu_hv.volumes.download(seed_vol, sink)
    assert b"CIDATA" in sink.getvalue().upper() and b"seeded" in sink.getvalue()
    qemu_hv.vms.delete(vm)
    assert not [v for v in qemu_hv.volumes.list("default") if v.name.startswith(prefix)]


def test_local_path_reads_and_writes_volumes_in_place(qemu_hv: Hypervisor, prefix: str, tmp_path: Path) -> None:
    """On qemu:///system the dir pool's files are read by export_disk and written by import_disk in place."""
    import hvkit
    from hvkit.backend import DiskImage

    content = bytearray(4 * 1024 * 1024)
    content[:4096] = os.urandom(4096)
    content[3 * 1024 * 1024 : 3 * 1024 * 1024 + 16] = b"hvkit-local-path"
    backend = _backend(qemu_hv)
    vol = qemu_hv.volumes.upload(qemu_hv.volumes.create("default", f"{prefix}lp.qcow2", 4 / 1024), io.BytesIO(content))
    assert backend.local_path(vol) == vol.path
    image = backend.export_disk(vol, str(tmp_path), lambda done, total: None)
    assert (image.path, image.temporary, image.bytes_moved) == (vol.path, False, 0)
    # import: qemu-img writes the raw file into the new qcow2 volume's own file; libvirt streams read it back
    raw = tmp_path / "in.raw"
    raw.write_bytes(bytes(content))
    pool = qemu_hv.pools.get("default")
    source = DiskImage(str(raw), hvkit.DiskFormat.RAW, len(content))
    imported = backend.import_disk(
        pool, f"{prefix}imp.qcow2", source, hvkit.DiskFormat.QCOW2, str(tmp_path), lambda done, total: None
    )
    assert backend.local_path(imported) == imported.path
    sink = io.BytesIO()
    qemu_hv.volumes.download(imported, sink)
    assert sink.getvalue() == bytes(content)
    # through a socket of its own the daemon may be another host's (a peer in other namespaces): no local path
    with hvkit.connect("kvm:///system", uri="qemu+unix:///system?socket=/run/libvirt/libvirt-sock") as other:
        assert _backend(other).local_path(other.volumes.get(vol.id)) is None
    with hvkit.connect("kvm:///system", local_files="false") as off:
        assert _backend(off).local_path(off.volumes.get(vol.id)) is None
