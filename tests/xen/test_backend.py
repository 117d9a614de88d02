"""Xen-specific behaviour: redirection, session expiry, TLS, the error table, odd names, bulk reads, disks."""

from __future__ import annotations

import io
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

import hvkit
from hvkit import errors
from hvkit.backends.xen._errors import TABLE, from_description
from hvkit.hypervisor import Hypervisor
from hvkit.models import CloudInit, DiskSpec, Firmware, NicSpec, PowerState, VMSpec
from hvkit.testing.xapi_sim import XapiSimulator, model
from hvkit.testing.xapi_sim.server import _make_certs

POOL = "NFS storage"
NET = "Pool-wide network associated with eth0"


def _spec(name: str, **extra: object) -> VMSpec:
    fields: dict[str, object] = {
        "name": name,
        "memory_mib": 128,
        "disks": [DiskSpec(size_gib=0.01, pool=POOL)],
        "nics": [NicSpec(network=NET)],
    }
    fields.update(extra)
    return VMSpec(**fields)  # type: ignore[arg-type]


def test_pool_member_redirects_to_master(xapi: XapiSimulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="hvkit.xen")
    with hvkit.connect(xapi.member_url, password=xapi.password, ca_file=xapi.ca_file, timeout=10) as hv:
        assert {h.name for h in hv.hosts.list()} == {"xcp-ng-1", "xcp-ng-2"}
    assert any("HOST_IS_SLAVE" in r.getMessage() and "127.0.0.1" in r.getMessage() for r in caplog.records)
    assert xapi.password not in caplog.text


def test_expired_session_logs_in_again_once(hv: Hypervisor, xapi: XapiSimulator) -> None:
    before = len(hv.vms.list())
    xapi.expire_sessions()
    xapi.reset_counts()
    assert len(hv.vms.list()) == before
    assert xapi.calls.count("session.login_with_password") == 1


def test_wrong_password_is_authentication_error(xapi: XapiSimulator) -> None:
    with pytest.raises(errors.AuthenticationError) as info:
        hvkit.connect(xapi.url, password="not-the-password", ca_file=xapi.ca_file)
    assert "not-the-password" not in str(info.value) and "not-the-password" not in repr(info.value)
    assert info.value.__cause__ is not None and type(info.value.__cause__).__name__ == "Failure"


def test_self_signed_certificate_names_ca_file(xapi: XapiSimulator, tmp_path: Path) -> None:
    with pytest.raises(errors.ConnectionError, match="ca_file"):
        hvkit.connect(xapi.url, password=xapi.password, timeout=5)
    cert, _, _ = _make_certs(tmp_path)  # a certificate of another server
    other = cert.rename(tmp_path / "other.pem")
    with pytest.raises(errors.ConnectionError, match=r"other\.pem"):
        hvkit.connect(xapi.url, password=xapi.password, ca_file=str(other), timeout=5)
    with hvkit.connect(xapi.url, password=xapi.password, verify_tls=False, timeout=5) as hv:
        assert hv.hosts.list()


@pytest.mark.parametrize(
    ("code", "params", "kind"),
    [
        ("HANDLE_INVALID", ["VM", "OpaqueRef:x"], errors.NotFound),
        ("UUID_INVALID", ["VM", "x"], errors.NotFound),
        ("VM_BAD_POWER_STATE", ["OpaqueRef:x", "halted", "running"], errors.InvalidState),
        ("SR_FULL", ["100", "10"], errors.InvalidSpec),
        ("SESSION_AUTHENTICATION_FAILED", ["root", "bad"], errors.AuthenticationError),
        ("OTHER_OPERATION_IN_PROGRESS", ["VM", "OpaqueRef:x"], errors.Conflict),
        ("MESSAGE_METHOD_UNKNOWN", ["VM.x"], errors.Unsupported),
        ("SOMETHING_NEW", ["a"], errors.BackendError),
    ],
)
def test_error_table(code: str, params: list[str], kind: type[errors.HvkitError]) -> None:
    err = from_description([code, *params], "VM.start")
    assert isinstance(err, kind) and code in str(err)


def test_error_table_codes_are_xapi_codes() -> None:
    known = set(model()["errors"])
    assert {"HANDLE_INVALID", "VM_BAD_POWER_STATE", "SR_FULL"} <= set(TABLE)
    missing = {c for c in TABLE if c not in known} - {"RBAC_PERMISSION_DENIED", "HOST_OFFLINE"}
    assert not missing


def test_failure_is_kept_as_cause(hv: Hypervisor, made: list[str]) -> None:
    vm = hv.vms.create(_spec("xen-cause"))
    made.append(vm.name)
    hv.vms.start(vm)
    backend: Any = hv.backend
    with pytest.raises(errors.InvalidState) as info, backend.errors():
        backend.session.call("VM.start", vm.extra["ref"], False, False)
    assert type(info.value.__cause__).__name__ == "Failure"
    assert info.value.__cause__.details[0] == "VM_BAD_POWER_STATE"  # type: ignore[union-attr]


def test_sr_full_is_refused_and_nothing_is_left(hv: Hypervisor) -> None:
    before = {v.id for v in hv.volumes.list(POOL)}
    with pytest.raises(errors.InvalidSpec, match="SR_FULL"):
        hv.volumes.create(POOL, "xen-too-big", 60_000)
    assert {v.id for v in hv.volumes.list(POOL)} == before


@pytest.mark.parametrize("name", ["Ünïcødé VM - 日本", "a & b <c> 'd' \"e\"", "trailing.dots..", "  ".join("ab")])
def test_odd_names_round_trip(hv: Hypervisor, made: list[str], name: str) -> None:
    vm = hv.vms.create(_spec(name, notes='<notes> & "more"'))
    made.append(name)
    assert vm.name == name and vm.notes == '<notes> & "more"'
    assert hv.vms.get(name).id == vm.id
    assert name in {v.name for v in hv.vms.list()}


def test_inventory_cost_does_not_grow_with_vms() -> None:
    with XapiSimulator(hosts=2) as sim:
        counts = []
        with hvkit.connect(sim.url, password=sim.password, ca_file=sim.ca_file) as hv:
            for n in (10, 90):
                sim.populate(n)
                sim.reset_counts()
                assert len(hv.vms.list()) >= n
                detailed = hv.backend.list_vms(detail=True)
                assert all(len(v.disks) == 1 and len(v.nics) == 1 for v in detailed)
                counts.append(len(sim.calls))
        assert counts[0] == counts[1] <= 10  # 2 for the list, 8 with disks, NICs and IPs


def test_uefi_cloud_init_guest_ips_console_metrics(hv: Hypervisor, xapi: XapiSimulator, made: list[str]) -> None:
    spec = _spec(
        "xen-full", firmware=Firmware.UEFI, cloud_init=CloudInit(hostname="h1", username="admin", password="s3cret-pw")
    )
    vm = hv.vms.create(spec)
    made.append(vm.name)
    assert vm.firmware is Firmware.UEFI and len(vm.disks) == 2
    drive = next(d for d in vm.disks if d.name == "xvdb")
    out = io.BytesIO()
    hv.volumes.download(drive.volume, out)  # type: ignore[arg-type]
    assert b"CIDATA" in out.getvalue().upper() and b"s3cret-pw" in out.getvalue()
    vm = hv.vms.start(vm)
    assert hv.vms.guest_ips(vm) == list(vm.ip_addresses) != []
    console = hv.vms.console(vm)
    assert console.protocol == "vnc" and console.url and "s3cret" not in repr(console)
    [metrics] = hv.vms.metrics([vm])
    assert metrics.memory_used_mib == 128 and metrics.cpu_usage is not None
    assert all(m.memory_used_mib and m.cpu_usage for m in hv.hosts.metrics())
    assert all(h.cpu_usage for h in hv.hosts.list())


def test_disk_export_import_round_trip(hv: Hypervisor, tmp_path: object) -> None:
    backend = hv.backend
    vol = hv.volumes.create(POOL, "xen-disk-src", 8 / 1024)
    data = os.urandom(1024 * 1024) + bytes(4 * 1024 * 1024) + b"hvkit-tail"
    hv.volumes.upload(vol, io.BytesIO(data))
    image = backend.export_disk(vol, str(tmp_path), lambda d, t: None)
    assert image.format.value == "vpc" and image.bytes_moved < vol.capacity_bytes
    pool = hv.pools.get(POOL)
    copy = backend.import_disk(pool, "xen-disk-copy", image, image.format, str(tmp_path), lambda d, t: None)
    out = io.BytesIO()
    hv.volumes.download(copy, out)
    assert out.getvalue()[: len(data)] == data and copy.capacity_bytes == vol.capacity_bytes
    hv.volumes.delete(copy)
    hv.volumes.delete(vol)


def test_cancel_on_timeout_cancels_the_xapi_task() -> None:
    with (
        XapiSimulator(hosts=1, task_delay=0.5) as sim,
        hvkit.connect(sim.url, password=sim.password, ca_file=sim.ca_file) as hv,
    ):
        vm = hv.vms.create(_spec("slow"))
        task = hv.vms.start(vm, wait=False)
        time.sleep(0.1)
        task.cancel()
        with pytest.raises(errors.HvkitError):
            task.wait(10)
        assert hv.vms.get(vm).power_state is PowerState.STOPPED


def test_every_call_is_in_the_model(xapi: XapiSimulator) -> None:
    classes = model()["classes"]
    for method in set(xapi.calls):
        name = method.removeprefix("Async.")
        if name == "system.listMethods":
            continue
        cls, _, msg = name.partition(".")
        assert msg in classes.get(cls, {}).get("messages", {}), method


def test_watch_reports_lifecycle_changes(hv: Hypervisor, made: list[str]) -> None:
    seen: list[tuple[str, str]] = []
    stop = hv.vms.watch(lambda e: seen.append((e["name"], e["event"])))
    try:
        vm = hv.vms.create(_spec("xen-watched"))
        made.append(vm.name)
        vm = hv.vms.pause(hv.vms.start(vm))
        hv.vms.stop(hv.vms.resume(vm), force=True)
        deadline = time.monotonic() + 10
        wanted = ["defined", "started", "paused", "resumed", "stopped"]
        while [k for n, k in seen if n == "xen-watched"] != wanted and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop()
    assert [k for n, k in seen if n == "xen-watched"] == wanted


def test_create_from_template_clones_and_provisions(hv: Hypervisor, made: list[str]) -> None:
    vm = hv.vms.create(_spec("xen-from-tpl", cpus=2, extra={"template": "Other install media"}))
    made.append(vm.name)
    assert not vm.template and (vm.cpus, vm.memory_mib) == (2, 128)
    assert [(d.name, d.size_bytes) for d in vm.disks] == [("xvda", 10 * 1024**3), ("xvdb", 11 * 1024**2)]
    assert [n.name for n in vm.nics] == ["eth0"]
    with pytest.raises(errors.NotFound):
        hv.vms.create(_spec("xen-no-tpl", extra={"template": "no such template"}))
    assert "xen-no-tpl" not in {v.name for v in hv.vms.list()}


def test_master_moves_and_hvkit_follows() -> None:
    with XapiSimulator(hosts=2) as sim:
        if sim.member_port != sim.port:
            pytest.skip("127.0.0.2 could not take the master's port here")
        with hvkit.connect(sim.url, password=sim.password, ca_file=sim.ca_file, timeout=10) as hv:
            vm = hv.vms.create(_spec("xen-failover"))
            sim.fail_over()
            sim.reset_counts()
            assert hv.vms.get(vm.id).name == "xen-failover"
            assert hv.backend.session.host == "127.0.0.2"  # type: ignore[attr-defined]
            assert sim.calls[:2] == ["VM.get_by_uuid", "session.login_with_password"]


def test_running_vm_disks_move_live_and_local_disks_pin_it(hv: Hypervisor, made: list[str]) -> None:
    vm = hv.vms.start(hv.vms.create(_spec("xen-live-disks")))
    made.append(vm.name)
    local = "Local storage (xcp-ng-1)"
    assert hv.hosts.get(vm.host or "").name == "xcp-ng-1"
    moved = hv.vms.migrate(vm, pool=local)  # VDI.pool_migrate, the VM keeps running
    assert moved.power_state is PowerState.RUNNING and {d.pool for d in moved.disks} == {local}
    with pytest.raises(errors.InvalidState, match="VM_REQUIRES_SR"):  # xcp-ng-2 cannot reach that SR
        hv.vms.migrate(moved, host="xcp-ng-2")
    back = hv.vms.migrate(moved, pool=POOL)
    assert hv.vms.migrate(back, host="xcp-ng-2").host == hv.hosts.get("xcp-ng-2").id


def test_a_silent_server_times_out_and_a_closed_port_is_a_connection_error() -> None:
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # takes the connection, never answers
        port = silent.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(errors.Timeout):
            hvkit.connect(f"xen://root@127.0.0.1:{port}", password="pw", verify_tls=False, timeout=1)
        assert time.monotonic() - start < 10
    with pytest.raises(errors.ConnectionError):
        hvkit.connect(f"xen://root@127.0.0.1:{port}", password="pw", verify_tls=False, timeout=1)


@pytest.mark.parametrize("linked", [True, False], ids=["linked", "full"])
def test_clone_of_a_running_vm_goes_through_a_snapshot_that_is_then_removed(
    hv: Hypervisor, xapi: XapiSimulator, made: list[str], linked: bool
) -> None:
    kind = "linked" if linked else "full"
    made += [f"run-src-{kind}", f"run-clone-{kind}"]
    vm = hv.vms.start(hv.vms.create(_spec(f"run-src-{kind}")))
    snap = hv.snapshots.create(vm, "mine")
    store = xapi.api.store
    vdis_before, snaps_before = set(store.find("VDI")), set(store.find("VM", is_a_snapshot=True))
    clone = hv.vms.clone(vm, f"run-clone-{kind}", linked=linked)
    assert clone.power_state is PowerState.STOPPED
    assert hv.vms.get(vm.id).power_state is PowerState.RUNNING
    assert [sn.name for sn in hv.snapshots.list(vm)] == ["mine"]  # the clone's snapshot is no user snapshot
    assert set(store.find("VM", is_a_snapshot=True)) == snaps_before  # and it is not left behind
    new_vdis = set(store.find("VDI")) - vdis_before
    assert {store.get("VDI", v)["VBDs"][0] for v in new_vdis} <= set(store.get("VM", clone.extra["ref"])["VBDs"])
    assert len(clone.disks) == 1
    hv.vms.start(clone)
    hv.vms.stop(clone, force=True)
    hv.snapshots.revert(snap)  # the VM's snapshot tree is as it was: revert still works
    assert hv.vms.get(vm.id).power_state is PowerState.RUNNING
