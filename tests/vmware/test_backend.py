"""The VMware backend against vcsim, in vCenter and ESXi modes: real pyvmomi, real SOAP."""

from __future__ import annotations

import io
from typing import Any

import pytest

import hvkit
from hvkit import Capability, DiskSpec, Firmware, NicSpec, PowerState, Task, VMSpec
from hvkit.errors import (
    AlreadyExists,
    AuthenticationError,
    ConnectionError,
    InvalidSpec,
    InvalidState,
    NotFound,
    Unsupported,
)
from hvkit.hypervisor import Hypervisor
from hvkit.testing.vcsim import Vcsim


def _spec(hv: Hypervisor, name: str, **kw: Any) -> VMSpec:
    pool = hv.pools.list()[0].name
    net = hv.networks.list()[-1].name
    return VMSpec(
        name=name, cpus=2, memory_mib=512, disks=[DiskSpec(size_gib=1, pool=pool)], nics=[NicSpec(network=net)], **kw
    )


# -- connection -----------------------------------------------------------------------------------
def test_connect_kind_version_capabilities(hv: Hypervisor, sim: Vcsim) -> None:
    assert hv.kind == sim.kind
    assert "VMware" in hv.version
    vcenter_only = {
        Capability.VM_CLONE,
        Capability.VM_MIGRATE,
        Capability.VM_STORAGE_MIGRATE,
        Capability.VM_LINKED_CLONE,
    }
    if sim.kind == "esxi":
        assert not vcenter_only & hv.capabilities
    else:
        assert vcenter_only <= hv.capabilities


def test_esxi_server_behind_a_vcenter_url_loses_vcenter_only_capabilities(vcsim_esxi: Vcsim) -> None:
    url = vcsim_esxi.url.replace("esxi://", "vcenter://")
    with hvkit.connect(url, password=vcsim_esxi.password, ca_file=vcsim_esxi.cert_file) as hv:
        assert Capability.VM_CLONE not in hv.capabilities


def test_wrong_password_is_an_authentication_error_without_the_secret(sim: Vcsim) -> None:
    secret = "Wr0ng-secret-value"
    with pytest.raises(AuthenticationError) as info:
        hvkit.connect(sim.url, password=secret, ca_file=sim.cert_file)
    assert secret not in str(info.value)


def test_tls_is_verified_by_default(sim: Vcsim) -> None:
    with pytest.raises(ConnectionError, match=r"TLS|certificate"):
        hvkit.connect(sim.url, password=sim.password)


def test_verify_tls_off_explicitly(sim: Vcsim) -> None:
    with hvkit.connect(sim.url, password=sim.password, verify_tls=False) as hv:
        assert hv.hosts.list()


def test_unknown_datacenter_in_url(vcsim_vcenter: Vcsim) -> None:
    with pytest.raises(NotFound, match="DC0"):
        hvkit.connect(vcsim_vcenter.url + "/Nowhere", password=vcsim_vcenter.password, ca_file=vcsim_vcenter.cert_file)
    with hvkit.connect(
        vcsim_vcenter.url + "/DC0", password=vcsim_vcenter.password, ca_file=vcsim_vcenter.cert_file
    ) as hv:
        assert hv.vms.list()


# -- inventory --------------------------------------------------------------------------------------
def test_inventory(hv: Hypervisor) -> None:
    hosts = hv.hosts.list()
    assert hosts and all(h.cpu_cores > 0 and h.memory_mib > 0 for h in hosts)
    pools = hv.pools.list()
    assert pools and all(p.capacity_bytes >= p.free_bytes > 0 for p in pools)
    # the hosts that mount each datastore (the fleet moves a VM only to hosts that mount its datastores)
    assert all(p.hosts and p.hosts <= {h.name for h in hosts} for p in pools)
    assert hv.networks.list()
    brief = hv.vms.list()  # the default listing: no devices, but the datastores the VM's files are on
    assert brief and not brief[0].disks and brief[0].extra["datastores"] and not brief[0].extra["detail"]
    vms = hv.vms.list(detail=True)
    assert [v.id for v in vms] == [v.id for v in brief]
    vm = vms[0]
    assert vm.host in {h.name for h in hosts} and vm.extra["detail"]
    assert vm.disks and vm.disks[0].pool in {p.name for p in pools}
    assert vm.nics and vm.nics[0].network in {n.name for n in hv.networks.list()}
    assert hv.vms.get(vm.id) == hv.vms.get(vm.name)


def test_listing_vms_costs_one_round_trip(hv: Hypervisor) -> None:
    backend = hv.backend
    hv.vms.list()  # the session's ContainerView is made on first use
    counts = []
    for _ in range(2):
        before = backend.soap_requests  # type: ignore[attr-defined]
        hv.vms.list()
        counts.append(backend.soap_requests - before)  # type: ignore[attr-defined]
    assert counts == [1, 1]


def test_snapshots_of_every_vm_cost_one_round_trip(hv: Hypervisor) -> None:
    vms = hv.vms.list()
    assert len(vms) > 1
    per_vm = {vm.id: hv.snapshots.list(vm) for vm in vms}
    before = hv.backend.soap_requests  # type: ignore[attr-defined]
    bulk = hv.snapshots.list_many(vms)
    assert hv.backend.soap_requests - before == 1  # type: ignore[attr-defined]
    assert bulk == per_vm


# -- VM lifecycle -----------------------------------------------------------------------------------
def test_create_start_stop_reconfigure_delete(hv: Hypervisor, cleanup: list[tuple[Hypervisor, str]]) -> None:
    cleanup.append((hv, "life1"))
    vm = hv.vms.create(_spec(hv, "life1", firmware="uefi", notes="made by hvkit"))
    assert vm.power_state is PowerState.STOPPED
    assert (vm.cpus, vm.memory_mib, vm.firmware, vm.notes) == (2, 512, Firmware.UEFI, "made by hvkit")
    assert [d.size_bytes for d in vm.disks] == [1024**3]
    assert len(vm.nics) == 1
    assert hv.vms.start(vm).power_state is PowerState.RUNNING
    assert hv.vms.stop(vm, timeout=20).power_state is PowerState.STOPPED  # graceful, through the guest
    hv.vms.start(vm)
    assert hv.vms.suspend(vm).power_state is PowerState.SUSPENDED
    assert hv.vms.start(vm).power_state is PowerState.RUNNING
    assert hv.vms.reboot(vm, force=True).power_state is PowerState.RUNNING
    assert hv.vms.stop(vm, force=True).power_state is PowerState.STOPPED
    vm = hv.vms.reconfigure(vm, cpus=4, memory_mib=1024)
    assert (vm.cpus, vm.memory_mib) == (4, 1024)
    hv.vms.delete(vm)
    with pytest.raises(NotFound):
        hv.vms.get("life1")


def test_create_returns_a_task_with_wait_false(hv: Hypervisor, cleanup: list[tuple[Hypervisor, str]]) -> None:
    cleanup.append((hv, "task1"))
    task = hv.vms.create(_spec(hv, "task1"), wait=False)
    assert isinstance(task, Task)
    vm = task.wait(60)
    assert vm.name == "task1"
    task = hv.vms.start(vm, wait=False)
    assert task.wait(60).power_state is PowerState.RUNNING


def test_backend_task_is_followed_through_wait_for_updates(
    hv: Hypervisor, cleanup: list[tuple[Hypervisor, str]]
) -> None:
    cleanup.append((hv, "task2"))
    vm = hv.vms.create(_spec(hv, "task2"))
    task = hv.backend.start_vm(vm)
    seen: list[int] = []
    assert task.wait(60, lambda info: seen.append(info.progress)) == vm.id
    assert seen[-1] == 100
    assert task.done


def test_graceful_reboot_without_tools_says_so(hv: Hypervisor, cleanup: list[tuple[Hypervisor, str]]) -> None:
    cleanup.append((hv, "noboot"))
    vm = hv.vms.start(hv.vms.create(_spec(hv, "noboot")))
    with pytest.raises(InvalidState, match="VMware Tools"):
        hv.vms.reboot(vm)


def test_bad_specs_fail_before_anything_is_made(hv: Hypervisor) -> None:
    before = len(hv.vms.list())
    with pytest.raises(NotFound, match="network"):
        hv.vms.create(VMSpec(name="bad1", nics=[NicSpec(network="no-such-net")]))
    with pytest.raises(NotFound, match="storage pool"):
        hv.vms.create(VMSpec(name="bad2", disks=[DiskSpec(size_gib=1, pool="no-such-ds")]))
    with pytest.raises(InvalidSpec, match="vmdk"):
        hv.vms.create(VMSpec(name="bad3", disks=[DiskSpec(size_gib=1, format="qcow2")]))
    with pytest.raises(AlreadyExists):
        hv.vms.create(VMSpec(name=hv.vms.list()[0].name))
    assert len(hv.vms.list()) == before


def test_faults_map_to_hvkit_errors(hv: Hypervisor) -> None:
    running = next(v for v in hv.vms.list() if v.power_state is PowerState.RUNNING)
    with pytest.raises(InvalidState, match=r"InvalidPowerState|state"):
        hv.backend.start_vm(running).wait(30)  # straight to the backend: the core would refuse first
    pool = hv.pools.list()[0]
    vol = hv.volumes.create(pool, "vol-dup", 0.01)
    try:
        with pytest.raises(AlreadyExists, match="FileAlreadyExists"):
            hv.backend.create_volume(pool, "vol-dup", 1024 * 1024, hvkit.DiskFormat.VMDK)
    finally:
        hv.volumes.delete(vol)
    with pytest.raises(NotFound):
        hv.vms.get("vm-999999")


def test_console_and_metrics_and_ips(hv: Hypervisor) -> None:
    running = next(v for v in hv.vms.list() if v.power_state is PowerState.RUNNING)
    console = hv.vms.console(running)
    assert console.protocol in {"webmks", "vmrc"} and console.url and console.password
    assert console.password not in repr(console)
    metrics = hv.vms.metrics([running])
    assert metrics[0].vm == running.id and metrics[0].cpu_usage is not None
    host_metrics = hv.hosts.metrics()
    assert len(host_metrics) == len(hv.hosts.list())
    assert isinstance(hv.vms.guest_ips(running), list)


# -- snapshots --------------------------------------------------------------------------------------
def test_snapshot_tree_revert_delete(hv: Hypervisor, cleanup: list[tuple[Hypervisor, str]]) -> None:
    cleanup.append((hv, "snap1"))
    vm = hv.vms.create(_spec(hv, "snap1"))
    s1 = hv.snapshots.create(vm, "one", description="first")
    s2 = hv.snapshots.create(vm, "two")
    tree = {s.name: s for s in hv.snapshots.list(vm)}
    assert tree["two"].parent == s1.id and tree["two"].current and not tree["one"].current
    assert tree["one"].description == "first"
    hv.vms.start(vm)
    s3 = hv.snapshots.create(vm, "three", memory=True)
    assert s3.memory and s3.parent == s2.id
    hv.snapshots.revert(s1)
    assert hv.snapshots.get(vm, "one").current
    hv.snapshots.delete(hv.snapshots.get(vm, "two"), children=True)
    assert [s.name for s in hv.snapshots.list(vm)] == ["one"]


# -- clone and relocate (vCenter) ---------------------------------------------------------------
def test_clones_full_linked_template_and_placed(vc: Hypervisor, cleanup: list[tuple[Hypervisor, str]]) -> None:
    for name in ("src1", "full1", "linked1", "fromtpl1", "placed1"):
        cleanup.append((vc, name))
    src = vc.vms.create(_spec(vc, "src1"))
    full = vc.vms.clone(src, "full1")
    assert full.power_state is PowerState.STOPPED and full.cpus == src.cpus and full.id != src.id
    linked = vc.vms.clone(src, "linked1", linked=True)  # takes a base snapshot, as src has none
    assert linked.name == "linked1"
    assert [s.name for s in vc.snapshots.list(src)] == ["hvkit-linked-clone-base"]
    vc.snapshots.create(src, "later")
    vc.vms.clone(src, "fromtpl1", linked=True)  # from the current snapshot: no new one
    assert len(vc.snapshots.list(src)) == 2
    hosts = vc.hosts.list()
    pools = vc.pools.list()
    placed = vc.vms.clone(src, "placed1", host=hosts[-1].name, pool=pools[-1].name)
    # vcsim 0.24 keeps a clone on its source's host and puts only the .vmx on the target datastore;
    # vCenter moves both: check what both do.
    assert pools[-1].name in placed.extra["vmx_path"]


def test_template_clone(vc: Hypervisor, cleanup: list[tuple[Hypervisor, str]]) -> None:
    for name in ("tpl1", "fromtpl1"):
        cleanup.append((vc, name))
    src = vc.vms.create(_spec(vc, "tpl1"))
    vc.backend.mark_template(src)  # type: ignore[attr-defined]
    tpl = vc.vms.get("tpl1")
    assert tpl.template
    made = vc.vms.clone(tpl, "fromtpl1")
    assert not made.template and made.power_state is PowerState.STOPPED


def test_relocate_host_datastore_and_both(vc: Hypervisor, cleanup: list[tuple[Hypervisor, str]]) -> None:
    cleanup.append((vc, "move1"))
    vm = vc.vms.start(vc.vms.create(_spec(vc, "move1")))
    others = [h for h in vc.hosts.list() if h.name != vm.host]
    vm = vc.vms.migrate(vm, host=others[0].name)
    assert vm.host == others[0].name and vm.power_state is PowerState.RUNNING
    pools = [p.name for p in vc.pools.list()]
    target = next(p for p in pools if p != vm.disks[0].pool)
    vm = vc.vms.migrate(vm, pool=target)
    assert target in vm.extra["datastores"]  # vcsim 0.24 moves the VM's datastore list, not its disk files
    other = next(h for h in vc.hosts.list() if h.name != vm.host)
    back = next(p for p in pools if p != target)
    vm = vc.vms.migrate(vm, host=other.name, pool=back)
    assert vm.host == other.name and back in vm.extra["datastores"]


def test_esxi_refuses_vcenter_only_operations(esxi: Hypervisor) -> None:
    vm = esxi.vms.list()[0]
    with pytest.raises(Unsupported):
        esxi.vms.clone(vm, "nope")
    with pytest.raises(Unsupported):
        esxi.backend.migrate_vm(vm, None, esxi.pools.list()[0].name, True)


# -- volumes ------------------------------------------------------------------------------------------
def test_volume_create_upload_download_delete(hv: Hypervisor) -> None:
    pool = hv.pools.list()[0]
    vol = hv.volumes.create(pool, "vol-rt", 0.01)
    try:
        assert vol.capacity_bytes >= 10 * 1024 * 1024 and vol.id == f"[{pool.name}] vol-rt.vmdk"
        payload = bytes(range(256)) * 4096  # 1 MiB
        seen: list[int] = []
        hv.volumes.upload(vol, io.BytesIO(payload), progress=lambda done, total: seen.append(done))
        assert seen[-1] == len(payload)
        sink = io.BytesIO()
        count = hv.volumes.download(vol, sink)
        assert count == vol.capacity_bytes
        data = sink.getvalue()
        assert data[: len(payload)] == payload and not any(data[len(payload) :])
        with pytest.raises(AlreadyExists):
            hv.volumes.create(pool, "vol-rt", 0.01)
    finally:
        hv.volumes.delete(vol)
    with pytest.raises(NotFound):
        hv.volumes.get(vol.id)


def test_attach_an_uploaded_disk_to_a_new_vm(hv: Hypervisor, cleanup: list[tuple[Hypervisor, str]]) -> None:
    pool = hv.pools.list()[0]
    vol = hv.volumes.create(pool, "vol-attach", 0.01)
    cleanup.append((hv, "attach1"))
    try:
        hv.volumes.upload(vol, io.BytesIO(b"\x55" * 4096))
        vm = hv.vms.create(VMSpec(name="attach1", disks=[DiskSpec(volume=vol.id)]))
        assert [d.volume for d in vm.disks] == [vol.id]
        hv.vms.delete(vm, keep_disks=True)
        assert hv.volumes.get(vol.id).capacity_bytes == vol.capacity_bytes
    finally:
        hv.volumes.delete(vol)


def test_a_new_empty_disk_has_its_capacity(hv: Hypervisor, cleanup: list[tuple[Hypervisor, str]]) -> None:
    """vcsim's new thin disk has an empty flat file and no capacity in its files: the VM's disk device gives it."""
    vm = hv.vms.create(_spec(hv, "hvt-capacity"))
    cleanup.append((hv, vm.id))
    disk = hv.vms.get(vm.id).disks[0]
    volume = hv.volumes.get(disk.volume or "")
    assert volume.capacity_bytes == 1024**3
