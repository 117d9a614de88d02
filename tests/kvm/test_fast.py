"""kvm backend against libvirt's test:///default driver, plus unit tests of its XML, URI and seed helpers."""

from __future__ import annotations

import io
from typing import Any

import pytest

import hvkit
from hvkit.errors import AlreadyExists, InvalidSpec, InvalidState, NotFound
from hvkit.hypervisor import Hypervisor
from hvkit.models import CloudInit, DiskBus, DiskFormat, DiskSpec, NicSpec, PowerState, VMSpec

libvirt = pytest.importorskip("libvirt")

from hvkit._options import resolve  # noqa: E402
from hvkit.backends.kvm import KvmBackend, _cloudinit, _domxml  # noqa: E402
from hvkit.backends.kvm._errors import ERROR_TABLE, error_for  # noqa: E402
from hvkit.backends.kvm._uri import is_local_uri, libvirt_uri  # noqa: E402

WEIRD = "a<b&c'\"d ü€"


@pytest.mark.parametrize(
    ("url", "options", "expected"),
    [
        ("kvm:///system", {}, "qemu:///system"),
        ("qemu:///session", {}, "qemu:///session"),
        ("kvm+ssh://root@host1/system", {"keyfile": "/k"}, "qemu+ssh://root@host1/system?keyfile=%2Fk"),
        ("kvm+tls://host2:16514/system", {}, "qemu+tls://host2:16514/system"),
        ("kvm+tls://host2/system?verify_tls=false", {}, "qemu+tls://host2/system?no_verify=1"),
        ("libvirt://test/default", {}, "test:///default"),
        ("libvirt+ssh://u@h/qemu/system", {}, "qemu+ssh://u@h/system"),
        ("libvirt://", {"uri": "test:///default"}, "test:///default"),
    ],
)
def test_urls_map_to_libvirt_uris(url: str, options: dict[str, str], expected: str) -> None:
    opts = resolve(url, profile=None, explicit={}, backend_options=options)
    assert libvirt_uri(opts) == expected


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("qemu:///system", True),
        ("qemu:///session", True),
        ("qemu+unix:///system", True),
        ("qemu+unix:///system?socket=/run/peer/libvirt-sock", False),
        ("qemu+ssh://root@host1/system", False),
        ("qemu+tcp://10.0.0.2/system", False),
        ("qemu://host3/system", False),
    ],
)
def test_local_uris(uri: str, local: bool) -> None:
    assert is_local_uri(uri) is local


def test_test_driver_volumes_have_no_local_path(test_hv: Hypervisor, prefix: str) -> None:
    vol = test_hv.volumes.create("default-pool", prefix + "v", 0.01)
    assert test_hv.backend.local_path(vol) is None  # the test driver's volumes are no files


def test_bad_urls_are_refused_before_libvirt() -> None:
    with pytest.raises(InvalidSpec):
        libvirt_uri(resolve("kvm:///elsewhere", profile=None, explicit={}, backend_options={}))
    with pytest.raises(InvalidSpec):
        libvirt_uri(resolve("kvm+pigeon://h/system", profile=None, explicit={}, backend_options={}))
    with pytest.raises(InvalidSpec, match="virt_type"):
        hvkit.connect("libvirt://test/default", virt_type="xen")


def test_password_never_in_errors() -> None:
    with pytest.raises(hvkit.errors.ConnectionError) as err:
        hvkit.connect("kvm+tcp://nobody:s3cret-pw@127.0.0.1:1/system")
    assert "s3cret-pw" not in str(err.value)
    assert isinstance(err.value.__cause__, libvirt.libvirtError)


def test_error_table_maps_codes() -> None:
    assert ERROR_TABLE[libvirt.VIR_ERR_NO_DOMAIN] is NotFound
    assert ERROR_TABLE[libvirt.VIR_ERR_OPERATION_INVALID] is InvalidState
    exc = libvirt.libvirtError("x")
    exc.err = (libvirt.VIR_ERR_DOM_EXIST, 0, "domain exists", 0, "", None, None, 0, 0)
    assert isinstance(error_for(exc), AlreadyExists)


def test_domain_xml_round_trips_odd_text() -> None:
    xml = _domxml.build_domain(
        name=WEIRD,
        uuid="0b6c6a5e-1f0d-4f39-9e3c-2f0e1d5b7a11",
        domain_type="qemu",
        cpus=2,
        max_cpus=4,
        memory_kib=65536,
        max_memory_kib=131072,
        disks=[_domxml.DiskDev(f"/p/{WEIRD}.qcow2", DiskFormat.QCOW2, DiskBus.VIRTIO, "vda")],
        nics=[_domxml.NicDev(WEIRD, "52:54:00:00:00:01", None)],
        notes=WEIRD + "\nline2",
        tags=[WEIRD, "plain"],
    )
    info = _domxml.parse_domain(xml)
    assert info.name == WEIRD
    assert info.notes == WEIRD + "\nline2"
    assert info.tags == {WEIRD, "plain"}
    assert info.disks[0].path == f"/p/{WEIRD}.qcow2"
    assert info.nics[0].network == WEIRD
    assert (info.cpus, info.max_cpus, info.memory_kib, info.max_memory_kib) == (2, 4, 65536, 131072)
    resized = _domxml.parse_domain(_domxml.set_sizing(xml, 6, 262144))
    assert (resized.cpus, resized.max_cpus, resized.memory_kib) == (6, 6, 262144)


def test_cloud_init_seed_iso_holds_the_three_files() -> None:
    import pycdlib

    ci = CloudInit(
        hostname="web1", username="ops", ssh_keys=("ssh-ed25519 AAAA x",), password="pw", network_config="version: 2\n"
    )
    files = _cloudinit.seed_files("vm", ci, instance_id="iid-1")
    data = _cloudinit.seed_iso(files)
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        for name, content in files.items():
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            assert out.getvalue() == content
    finally:
        iso.close()
    assert b"#cloud-config" in files["user-data"] and b"web1" in files["meta-data"]


def _spec(prefix: str, **kw: Any) -> VMSpec:
    base: dict[str, Any] = {
        "cpus": 1,
        "memory_mib": 128,
        "disks": [DiskSpec(size_gib=0.01)],
        "nics": [NicSpec("default")],
    }
    base.update(kw)
    return VMSpec(prefix + str(base.pop("suffix", "vm")), **base)


def test_create_get_list_delete_round_trip(test_hv: Hypervisor, prefix: str) -> None:
    spec = _spec(prefix, suffix=WEIRD, notes=WEIRD, tags={WEIRD})
    vm = test_hv.vms.create(spec)
    assert (vm.name, vm.notes, vm.tags, vm.cpus, vm.memory_mib) == (spec.name, WEIRD, {WEIRD}, 1, 128)
    assert vm.power_state is PowerState.STOPPED
    assert vm.disks[0].bus is DiskBus.VIRTIO and vm.disks[0].format is DiskFormat.QCOW2
    listed = {v.id: v for v in test_hv.vms.list()}
    assert listed[vm.id].name == spec.name and listed[vm.id].cpus == 1 and listed[vm.id].memory_mib == 128
    assert test_hv.vms.get(spec.name).id == vm.id
    vol = vm.disks[0].volume
    test_hv.vms.delete(vm)
    with pytest.raises(NotFound) as err:
        test_hv.vms.get(vm.id)
    assert isinstance(err.value.__cause__, libvirt.libvirtError)
    with pytest.raises(NotFound):
        test_hv.volumes.get(vol or "")


def test_power_pause_suspend(test_hv: Hypervisor, prefix: str) -> None:
    vm = test_hv.vms.create(_spec(prefix))
    assert test_hv.vms.start(vm).power_state is PowerState.RUNNING
    assert test_hv.vms.pause(vm).power_state is PowerState.PAUSED
    assert test_hv.vms.resume(vm).power_state is PowerState.RUNNING
    assert test_hv.vms.suspend(vm).power_state is PowerState.SUSPENDED
    assert next(v for v in test_hv.vms.list() if v.id == vm.id).power_state is PowerState.SUSPENDED
    assert test_hv.vms.start(vm).power_state is PowerState.RUNNING
    assert test_hv.vms.stop(vm, force=True).power_state is PowerState.STOPPED
    test_hv.vms.delete(vm)


def test_reconfigure_cold(test_hv: Hypervisor, prefix: str) -> None:
    vm = test_hv.vms.create(_spec(prefix))
    vm = test_hv.vms.reconfigure(vm, cpus=2, memory_mib=256)
    assert (vm.cpus, vm.memory_mib) == (2, 256)
    test_hv.vms.delete(vm)


def test_snapshot_tree(test_hv: Hypervisor, prefix: str) -> None:
    vm = test_hv.vms.create(_spec(prefix))
    s1 = test_hv.snapshots.create(vm, "s1", description=WEIRD)
    s2 = test_hv.snapshots.create(vm, "s2")
    test_hv.snapshots.revert(s1)
    s3 = test_hv.snapshots.create(vm, "s3")
    snaps = {s.name: s for s in test_hv.snapshots.list(vm)}
    assert snaps["s1"].parent is None and snaps["s1"].description == WEIRD
    assert snaps["s2"].parent == s1.id and snaps["s3"].parent == s1.id
    assert snaps["s3"].current
    test_hv.snapshots.delete(snaps["s1"], children=True)
    assert test_hv.snapshots.list(vm) == []
    assert s2.id and s3.id
    test_hv.vms.delete(vm)


def test_full_clone(test_hv: Hypervisor, prefix: str) -> None:
    vm = test_hv.vms.create(_spec(prefix, notes="src"))
    clone = test_hv.vms.clone(vm, prefix + "clone")
    assert clone.notes == "src" and clone.id != vm.id
    assert clone.disks[0].path != vm.disks[0].path
    assert clone.nics[0].mac != vm.nics[0].mac
    test_hv.vms.delete(clone)
    test_hv.vms.delete(vm)


def test_bad_bus_refused_before_any_change(test_hv: Hypervisor, prefix: str) -> None:
    before = {v.id for v in test_hv.volumes.list()}
    with pytest.raises(InvalidSpec, match="nvme"):
        test_hv.vms.create(_spec(prefix, disks=[DiskSpec(size_gib=0.01), DiskSpec(size_gib=0.01, bus="nvme")]))
    assert {v.id for v in test_hv.volumes.list()} == before


def test_failed_create_leaves_nothing(test_hv: Hypervisor, prefix: str) -> None:
    pool = test_hv.pools.list()[0]
    taken = test_hv.volumes.create(pool, prefix + "taken.qcow2", 0.01, format="qcow2")
    before = {v.id for v in test_hv.volumes.list()}
    with pytest.raises(AlreadyExists):
        test_hv.vms.create(
            _spec(prefix, disks=[DiskSpec(size_gib=0.01), DiskSpec(size_gib=0.01, name=prefix + "taken")])
        )
    assert {v.id for v in test_hv.volumes.list()} == before
    assert not [v for v in test_hv.vms.list() if v.name.startswith(prefix)]
    test_hv.volumes.delete(taken)


def test_events(test_hv: Hypervisor, prefix: str) -> None:
    import time

    seen: list[dict[str, object]] = []
    stop = test_hv.vms.watch(seen.append)
    try:
        vm = test_hv.vms.create(_spec(prefix))
        test_hv.vms.start(vm)
        test_hv.vms.stop(vm, force=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len([e for e in seen if e["vm"] == vm.id]) < 3:
            time.sleep(0.05)
        kinds = [e["event"] for e in seen if e["vm"] == vm.id]
        assert kinds[:3] == ["defined", "started", "stopped"]
    finally:
        stop()
    test_hv.vms.delete(vm)


def test_undeclared_capabilities_raise_unsupported(test_hv: Hypervisor, prefix: str) -> None:
    vm = test_hv.vms.create(_spec(prefix))
    with pytest.raises(hvkit.errors.Unsupported):
        test_hv.vms.guest_ips(vm)
    test_hv.vms.delete(vm)


def test_detailed_listing_skips_a_domain_another_client_removed_meanwhile(monkeypatch: pytest.MonkeyPatch) -> None:
    """listAllDomains, then the domain is undefined by someone else before its XML is read: it is left out."""
    with hvkit.connect("libvirt://test/default") as hv:
        kept = hv.vms.create(hvkit.VMSpec(name="race-kept"))
        doomed = hv.vms.create(hvkit.VMSpec(name="race-doomed"))
        assert isinstance(hv.backend, KvmBackend)
        session = hv.backend.session
        read = session.vm_from_domain

        def undefined_meanwhile(dom: Any) -> hvkit.VM:
            if dom.name() == "race-doomed":
                dom.undefine()  # another client, between the listing and the read
            return read(dom)

        monkeypatch.setattr(session, "vm_from_domain", undefined_meanwhile)
        names = {vm.name for vm in hv.vms.list(detail=True)}
        monkeypatch.undo()
        assert "race-kept" in names and "race-doomed" not in names
        assert doomed.name not in {vm.name for vm in hv.vms.list()}
        hv.vms.delete(kept)
