"""The Proxmox backend end to end: hvkit -> proxmoxer's HTTPS backend -> the simulator."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
from typing import Any

import pytest

import hvkit
from hvkit.errors import AuthenticationError, Conflict, ConnectionError, InvalidSpec, InvalidState, NotFound, Timeout
from hvkit.hypervisor import Hypervisor
from hvkit.models import CloudInit, DiskFormat, DiskSpec, NicSpec, PowerState, VMSpec
from hvkit.testing.proxmox_sim import ProxmoxSimulator


def _spec(name: str, **kw: Any) -> VMSpec:
    return VMSpec(
        name, cpus=1, memory_mib=512, disks=[DiskSpec(size_gib=0.25, pool="local-lvm")], nics=[NicSpec("vmbr0")], **kw
    )


def _files(sim: ProxmoxSimulator) -> set[str]:
    return {str(p.relative_to(sim.root)) for p in (sim.root / "storage").rglob("*") if p.is_file()}


# -- connection and auth ----------------------------------------------------------------------------
def test_password_ticket_auth(sim: ProxmoxSimulator) -> None:
    with hvkit.connect(sim.url, password=sim.password, ca_file=sim.ca_file) as hv:
        assert hv.version == "9.1.3"
        assert {h.name for h in hv.hosts.list()} == set(sim.nodes)


def test_bad_password_and_token(sim: ProxmoxSimulator) -> None:
    with pytest.raises(AuthenticationError) as caught:
        hvkit.connect(sim.url, password="wrong-password", ca_file=sim.ca_file)
    assert "wrong-password" not in str(caught.value)
    with pytest.raises(AuthenticationError) as caught:
        hvkit.connect(sim.url, token=f"{sim.token_id}=not-the-secret", ca_file=sim.ca_file)
    assert "not-the-secret" not in str(caught.value)


def test_tls_verification_is_on_by_default(sim: ProxmoxSimulator) -> None:
    with pytest.raises(ConnectionError, match="TLS"):
        hvkit.connect(sim.url, token=sim.token)
    with hvkit.connect(sim.url, token=sim.token, verify_tls=False) as hv:
        assert hv.version


def test_read_only_user_gets_permission_error(sim: ProxmoxSimulator) -> None:
    with hvkit.connect("proxmox://audit@pve@" + sim.host, password=sim.password, ca_file=sim.ca_file) as hv:
        with pytest.raises(AuthenticationError, match="permission"):
            hv.vms.create(_spec("denied"))
        assert not [v for v in hv.vms.list() if v.name == "denied"]


def test_secrets_not_in_repr(sim: ProxmoxSimulator, hv: Hypervisor) -> None:
    assert sim.token_secret not in repr(hv.backend.options)


# -- inventory --------------------------------------------------------------------------------------------
def test_inventory_is_one_request(sim: ProxmoxSimulator, hv: Hypervisor) -> None:
    sim.reset_counts()
    hv.vms.list()
    assert sim.requests == [("GET", "/cluster/resources")]


def test_pools_and_networks(hv: Hypervisor) -> None:
    pools = {p.id: p for p in hv.pools.list()}
    assert pools["shared"].shared and pools["shared"].host is None
    assert pools["shared"].hosts == {h.name for h in hv.hosts.list()}  # the nodes that have the shared storage


def test_a_storage_on_some_nodes_names_them(sim: ProxmoxSimulator, hv: Hypervisor) -> None:
    from hvkit.testing.proxmox_sim.state import Storage

    sim.cluster.storages["san-a"] = Storage("san-a", "nfs", frozenset({"images"}), True, 2**40, ("raw",),
                                            nodes=frozenset({"pve1", "pve2"}))  # fmt: skip
    try:
        pools = {p.id: p for p in hv.pools.list()}
        assert pools["san-a"].shared and pools["san-a"].hosts == {"pve1", "pve2"}
    finally:
        del sim.cluster.storages["san-a"]
    assert pools["pve1/local-lvm"].type == "lvmthin" and {f.value for f in pools["pve1/local-lvm"].formats} == {"raw"}
    assert pools["pve1/local"].free_bytes > 0
    assert "pve2/vmbr0" in {n.id for n in hv.networks.list()}


# -- create / power -----------------------------------------------------------------------------------------
def test_create_power_cycle_and_delete(sim: ProxmoxSimulator, hv: Hypervisor) -> None:
    vm = hv.vms.create(
        _spec(
            "life1",
            firmware="uefi",
            cloud_init=CloudInit(username="ops", password="s3cret-pw", ssh_keys=["ssh-ed25519 AAAAC3 me@host"]),
        )
    )
    cfg = vm.extra["config"]
    assert cfg["bios"] == "ovmf" and cfg["efidisk0"].startswith("local-lvm:")
    assert cfg["sshkeys"] == "ssh-ed25519%20AAAAC3%20me%40host" and "cipassword" not in cfg
    assert vm.power_state is PowerState.STOPPED and vm.disks[0].size_bytes == 256 * 1024**2
    vm = hv.vms.start(vm)
    assert vm.power_state is PowerState.RUNNING
    assert hv.vms.guest_ips(vm)
    console = hv.vms.console(vm)
    assert console.protocol == "vnc" and console.password and console.password not in repr(console)
    assert hv.vms.pause(vm).power_state is PowerState.PAUSED
    assert hv.vms.resume(vm).power_state is PowerState.RUNNING
    assert hv.vms.suspend(vm).power_state is PowerState.SUSPENDED
    assert hv.vms.start(vm).power_state is PowerState.RUNNING
    assert hv.vms.reboot(vm).power_state is PowerState.RUNNING
    assert hv.vms.stop(vm).power_state is PowerState.STOPPED
    vm = hv.vms.reconfigure(vm, cpus=3, memory_mib=1536)
    assert (vm.cpus, vm.memory_mib) == (3, 1536)
    hv.vms.delete(vm)
    with pytest.raises(NotFound):
        hv.vms.get("life1")
    assert not [f for f in _files(sim) if "vm-" in f]


def test_graceful_stop_times_out(sim: ProxmoxSimulator, hv: Hypervisor) -> None:
    vm = hv.vms.start(hv.vms.create(_spec("stubborn")))
    sim.cluster.vms[int(vm.id)].ignore_acpi = True
    with pytest.raises(Timeout):
        hv.vms.stop(vm, timeout=1)
    assert hv.vms.stop(vm, force=True).power_state is PowerState.STOPPED


def test_bad_input_is_refused_before_any_call(sim: ProxmoxSimulator, hv: Hypervisor) -> None:
    for spec in (
        _spec("ud", cloud_init=CloudInit(user_data="#cloud-config\n")),
        VMSpec("nv", disks=[DiskSpec(size_gib=1, pool="local-lvm", bus="nvme")]),
    ):
        before = [r for r in sim.requests if r[0] != "GET"]
        with pytest.raises(InvalidSpec):
            hv.vms.create(spec)
        assert [r for r in sim.requests if r[0] != "GET"] == before


def test_failed_create_leaves_nothing(sim: ProxmoxSimulator, hv: Hypervisor) -> None:
    before = _files(sim)
    spec = VMSpec("toobig", disks=[DiskSpec(size_gib=1, pool="local-lvm"), DiskSpec(size_gib=5000, pool="local-lvm")])
    with pytest.raises(hvkit.errors.HvkitError):
        hv.vms.create(spec)
    assert not [v for v in hv.vms.list() if v.name == "toobig"]
    assert _files(sim) == before


def test_pve_400_maps_to_invalid_spec_with_parameters(hv: Hypervisor) -> None:
    vm = hv.vms.create(_spec("p400"))
    backend: Any = hv.backend
    with pytest.raises(InvalidSpec) as caught, backend.errors():
        backend.api.nodes(vm.host).qemu(vm.id).config.put(cores="x")
    assert "cores: type check ('integer') failed - got 'x'" in str(caught.value)
    assert caught.value.errors == {"cores": "type check ('integer') failed - got 'x'"}  # type: ignore[attr-defined]


# -- snapshots ---------------------------------------------------------------------------------------------------
def test_snapshot_tree(hv: Hypervisor) -> None:
    vm = hv.vms.create(_spec("snappy"))
    a = hv.snapshots.create(vm, "sa", description="first")
    hv.snapshots.create(vm, "sb")
    hv.snapshots.revert(a)
    hv.snapshots.create(vm, "sc")
    snaps = {s.name: s for s in hv.snapshots.list(vm)}
    assert snaps["sa"].parent is None and snaps["sb"].parent == "sa" and snaps["sc"].parent == "sa"
    assert snaps["sc"].current and not snaps["sb"].current and snaps["sa"].description == "first"
    mapped = hv.snapshots.create(vm, "9-bad name")  # a name PVE refuses gets a derived id
    assert mapped.name == "9-bad name" and mapped.id == "s_9_bad_name" and mapped.parent == "sc"
    hv.snapshots.delete(snaps["sa"], children=True)
    assert hv.snapshots.list(vm) == []


# -- clone, locks, migrate --------------------------------------------------------------------------------------------
def test_ten_parallel_linked_clones_from_one_template(sim: ProxmoxSimulator, hv: Hypervisor) -> None:
    base = hv.vms.create(_spec("tmpl"))
    hv.backend.mark_template(base).wait(60)  # type: ignore[attr-defined]
    template = hv.vms.get(base.id)
    assert template.template
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        clones = list(pool.map(lambda i: hv.vms.clone(template, f"lc{i}", linked=True), range(10)))
    assert sorted(c.name for c in clones) == [f"lc{i}" for i in range(10)]
    assert len({c.id for c in clones}) == 10
    assert all(c.disks[0].volume and "base-" in c.disks[0].volume for c in clones)


def test_full_clone_to_other_node_and_storage(sim: ProxmoxSimulator, hv: Hypervisor) -> None:
    src = hv.vms.create(_spec("fsrc"))
    clone = hv.vms.clone(src, "fcopy", host="pve2", pool="shared")
    assert clone.host == "pve2" and clone.disks[0].pool == "shared"
    copy = hv.vms.clone(src, "nolink", linked=True)  # PVE links templates only: a full copy
    assert copy.disks[0].volume and "base-" not in copy.disks[0].volume


def test_lock_conflict_after_retries(sim: ProxmoxSimulator, hv: Hypervisor) -> None:
    vm = hv.vms.create(_spec("locked"))
    sim.cluster.vms[int(vm.id)].config["lock"] = "backup"
    impatient = hvkit.connect(sim.url, token=sim.token, ca_file=sim.ca_file, lock_retries=3)
    with impatient, pytest.raises(Conflict, match=r"after 3 attempts: .*VM is locked \(backup\)"):
        impatient.vms.start(vm.id)
    sim.cluster.vms[int(vm.id)].config.pop("lock")


def test_offline_migration_moves_local_disks(sim: ProxmoxSimulator, hv: Hypervisor) -> None:
    vm = hv.vms.create(_spec("mover"))
    src_file = sim.cluster.volume_path("pve1" if vm.host == "pve1" else str(vm.host), str(vm.disks[0].volume))
    assert src_file.exists()
    target = "pve3" if vm.host != "pve3" else "pve2"
    moved = hv.vms.migrate(vm, host=target, live=False)
    assert moved.host == target and not src_file.exists()
    assert sim.cluster.volume_path(target, str(moved.disks[0].volume)).exists()


def test_live_migration_and_storage_move(sim: ProxmoxSimulator, hv: Hypervisor) -> None:
    vm = hv.vms.start(hv.vms.create(_spec("livemove")))
    target = "pve2" if vm.host != "pve2" else "pve1"
    moved = hv.vms.migrate(vm, host=target)
    assert moved.host == target and moved.power_state is PowerState.RUNNING
    moved = hv.vms.migrate(hv.vms.stop(moved, force=True), pool="local")
    assert {d.pool for d in moved.disks if d.name != "efidisk0"} == {"local"}


# -- upload and import ------------------------------------------------------------------------------
def test_upload_then_import_from(sim: ProxmoxSimulator, hv: Hypervisor, tmp_path: Any) -> None:
    import subprocess

    image = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"], check=True)
    data = image.read_bytes()
    backend: Any = hv.backend
    with pytest.raises(hvkit.errors.HvkitError, match="checksum mismatch"):
        backend.upload_image("pve1", "local", "bad.qcow2", io.BytesIO(data), checksum=("sha256", "0" * 64)).wait(30)
    seen: list[int] = []
    volid = backend.upload_image(
        "pve1",
        "local",
        "disk.qcow2",
        io.BytesIO(data),
        checksum=("sha256", hashlib.sha256(data).hexdigest()),
        progress=lambda done, total: seen.append(done),
    ).wait(30)
    assert volid == "local:import/disk.qcow2" and seen
    vm = hv.vms.create(VMSpec("imported", host="pve1", disks=[DiskSpec(volume=volid, pool="local-lvm")]))
    assert vm.disks[0].pool == "local-lvm" and vm.disks[0].size_bytes == 64 * 1024**2
    hv.volumes.delete(volid)  # the import file (content import): PVE's storage content DELETE task
    assert volid not in {v.id for v in hv.volumes.list("local")}
    with pytest.raises(hvkit.errors.NotFound):
        hv.volumes.delete(volid)


def test_import_disk_and_format_on_file_storage(hv: Hypervisor, tmp_path: Any) -> None:
    """The migration contract: upload content=import + sha256; import-from honours DiskSpec.format on dir storage."""
    from hvkit.backend import DiskImage

    raw = tmp_path / "content.raw"
    raw.write_bytes(b"hvkit" * 1000 + bytes(1024 * 1024))
    image = DiskImage(str(raw), DiskFormat.RAW, raw.stat().st_size)
    pool = hv.pools.get("pve1/local")
    vol = hv.backend.import_disk(pool, "mig-1-disk0", image, DiskFormat.RAW, str(tmp_path / "w"), lambda a, b: None)
    assert vol.id == "local:import/mig-1-disk0.qcow2" and vol.pool == "local"
    with pytest.raises(hvkit.errors.AlreadyExists):
        hv.backend.import_disk(pool, "mig-1-disk0", image, DiskFormat.RAW, str(tmp_path / "w"), lambda a, b: None)
    spec = VMSpec("migrated", host="pve1", disks=[DiskSpec(volume=vol.id, pool="local", format="raw")])
    vm = hv.vms.create(spec)
    assert vm.disks[0].format is DiskFormat.RAW and vm.disks[0].pool == "local"
    hv.volumes.delete(vol.id)


def test_wrong_state_is_invalid_state(hv: Hypervisor) -> None:
    vm = hv.vms.create(_spec("idle"))
    with pytest.raises(InvalidState):
        hv.vms.console(vm)


def test_lock_errors_are_retried_until_the_lock_goes(sim: ProxmoxSimulator, hv: Hypervisor) -> None:
    import threading

    vm = hv.vms.create(_spec("waiter"))
    config = sim.cluster.vms[int(vm.id)].config
    config["lock"] = "clone"
    threading.Timer(0.6, lambda: config.pop("lock", None)).start()
    assert hv.vms.start(vm).power_state is PowerState.RUNNING
