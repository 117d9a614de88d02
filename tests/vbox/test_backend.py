"""VirtualBox specifics: lock retries, WARNING lines, output drift, 6.1 vs 7.0, odd names, host-only range,
bulk inventory, clones, snapshots with memory, metrics, guest IPs, console."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

import hvkit
from hvkit import errors
from hvkit.backends.vbox._errors import VBoxManageError
from hvkit.hypervisor import Hypervisor
from hvkit.testing.vbox_sim import VBoxSim, run

from .conftest import FAST

SPEC = {"cpus": 1, "memory_mib": 128}


def _vm(hv: Hypervisor, name: str, **extra: object) -> hvkit.VM:
    fields = {**SPEC, "disks": [hvkit.DiskSpec(size_gib=10 / 1024)], "nics": [hvkit.NicSpec("nat")], **extra}
    vm: hvkit.VM = hv.vms.create(hvkit.VMSpec(name=name, **fields))  # type: ignore[arg-type]
    return vm


def _calls(hv: Hypervisor) -> int:
    calls: int = hv.backend.session.calls  # type: ignore[attr-defined]
    return calls


def test_version_detected(hv: Hypervisor, sim: VBoxSim) -> None:
    assert hv.version.startswith(sim.version + ".")
    assert hv.kind == "vbox"


def test_lock_errors_are_retried(hv: Hypervisor, sim: VBoxSim) -> None:
    vm = _vm(hv, "locky")
    sim.faults(lock={"modifyvm": 3})
    before = _calls(hv)
    assert hv.vms.reconfigure(vm, cpus=2).cpus == 2
    assert _calls(hv) - before >= 4  # three refusals, then the change


def test_lock_error_that_stays_is_a_conflict(sim: VBoxSim) -> None:
    with hvkit.connect("vbox:///", lock_retries=3, lock_backoff=0.01) as hv:
        vm = _vm(hv, "stuck")
        sim.faults(lock={"*": 50})
        with pytest.raises(errors.Conflict, match="already locked"):
            hv.vms.reconfigure(vm, memory_mib=256)
        sim.faults()
        assert hv.vms.get(vm).memory_mib == 128


def test_warning_line_before_everything(sim: VBoxSim) -> None:
    """Vagrant #13394: 'WARNING: ...' printed before the version (and before any output)."""
    sim.faults(warning="WARNING: The vboxdrv kernel module is not loaded. Either there is no module")
    with hvkit.connect("vbox:///", **FAST) as hv:
        assert hv.version.startswith(sim.version)
        vm = _vm(hv, "warned")
        assert [v.name for v in hv.vms.list()] == ["warned"]
        assert hv.vms.get(vm.id).disks[0].size_bytes == 10 * 1024 * 1024
        assert hv.volumes.get(vm.disks[0].volume or "").capacity_bytes == 10 * 1024 * 1024


def test_unknown_lines_are_skipped(hv: Hypervisor, sim: VBoxSim) -> None:
    vm = _vm(hv, "drift", notes="two\nlines")
    sim.faults(unknown_lines=True)
    again = hv.vms.get(vm.id)
    listed = hv.vms.list()
    assert (again.cpus, again.memory_mib, len(again.disks), again.notes) == (1, 128, 1, "two\nlines")
    assert [(v.id, v.cpus, len(v.disks), len(v.nics)) for v in listed] == [(vm.id, 1, 1, 1)]
    assert hv.snapshots.list(vm) == []


def test_inventory_is_two_processes_whatever_the_count(hv: Hypervisor) -> None:
    for i in range(4):
        _vm(hv, f"bulk-{i}")
    before = _calls(hv)
    vms = hv.vms.list()
    assert len(vms) == 4 and _calls(hv) - before == 2  # list -l vms + list hdds
    assert all(len(v.disks) == 1 and v.disks[0].size_bytes == 10 * 1024 * 1024 for v in vms)
    by_id = {v.id: v for v in vms}
    for vm in vms:  # the bulk listing says what showvminfo says
        one = hv.vms.get(vm.id)
        assert (one.name, one.cpus, one.memory_mib, one.power_state, one.disks, one.nics) == (
            by_id[vm.id].name,
            by_id[vm.id].cpus,
            by_id[vm.id].memory_mib,
            by_id[vm.id].power_state,
            by_id[vm.id].disks,
            by_id[vm.id].nics,
        )


@pytest.mark.parametrize("name", ['web "prod" 1', "café ü", "o'brien's $(touch x) vm", "  tabs\tare\tnot-ok"])
def test_odd_names_round_trip(hv: Hypervisor, name: str) -> None:
    if "\t" in name:
        with pytest.raises(errors.InvalidSpec):
            hvkit.VMSpec(name=name)
        return
    vm = _vm(hv, name)
    assert vm.name == name
    assert hv.vms.get(name).id == vm.id
    assert name in {v.name for v in hv.vms.list()}
    snap = hv.snapshots.create(vm, f"{name} snap")
    assert hv.snapshots.list(vm)[0].name == snap.name == f"{name} snap"
    hv.vms.delete(vm)
    assert name not in {v.name for v in hv.vms.list()}


def test_option_names_follow_the_version(hv: Hypervisor, sim: VBoxSim) -> None:
    session = hv.backend.session  # type: ignore[attr-defined]
    assert session.opt("ostype") == ("--os-type" if sim.version == "7.0" else "--ostype")
    vm = _vm(hv, "named", nics=[hvkit.NicSpec("nat", mac="08:00:27:12:34:56", model="virtio")])
    assert [(n.mac, n.model) for n in vm.nics] == [("08:00:27:12:34:56", hvkit.NicModel.VIRTIO)]
    status, _, err = run(["modifyvm", vm.id, "--os-type", "Debian_64"], sim.root)
    if sim.version == "6.1":  # 7.0's spelling is refused by 6.1 with VirtualBox's own text and status
        assert status == 2 and err.endswith("VBoxManage: error: Unknown option: --os-type\n")
    else:
        assert status == 0


def test_host_only_networks_outside_the_range_are_refused(hv: Hypervisor) -> None:
    nets = {n.name: n for n in hv.networks.list()}
    assert nets["vboxnet1"].extra["ip"] == "192.168.33.1"
    before = [v.name for v in hv.vms.list()]
    with pytest.raises(errors.InvalidSpec, match=r"192\.168\.56\.0/21"):
        _vm(hv, "hostonly-bad", nics=[hvkit.NicSpec("vboxnet1")])
    assert [v.name for v in hv.vms.list()] == before
    vm = _vm(hv, "hostonly-ok", nics=[hvkit.NicSpec("vboxnet0")])
    assert vm.nics[0].network == "vboxnet0"


def test_limits_are_declared(hv: Hypervisor) -> None:
    assert hv.backend.traits.limits.max_cpus == 32
    with pytest.raises(errors.InvalidSpec, match="32"):
        hv.vms.create(hvkit.VMSpec(name="big", cpus=33, memory_mib=128))
    assert not hv.vms.list()


def test_uefi_ide_and_many_buses(hv: Hypervisor) -> None:
    disks = [hvkit.DiskSpec(size_gib=10 / 1024, bus=b) for b in ("sata", "ide", "ide", "scsi", "nvme", "virtio")]
    vm = _vm(hv, "buses", firmware="uefi", disks=disks)
    assert vm.firmware is hvkit.Firmware.UEFI
    assert [d.bus.value for d in vm.disks if d.bus] == ["sata", "ide", "ide", "scsi", "nvme", "virtio"]


def test_linked_clone_shares_the_parent(hv: Hypervisor) -> None:
    src = _vm(hv, "gold")
    clone = hv.vms.clone(src, "gold-linked", linked=True)
    vol = hv.volumes.get(clone.disks[0].volume or "")
    assert vol.backing == src.disks[0].volume
    assert hv.snapshots.list(src) == []  # the base hvkit took is not the user's snapshot


def _snapshot_names(sim: VBoxSim, name: str) -> list[str]:
    vm = next(v for v in sim.state()["vms"] if v["name"] == name)
    return [s["name"] for s in vm["snapshots"]]


def test_deleting_a_linked_clone_deletes_its_base(hv: Hypervisor, sim: VBoxSim) -> None:
    src = _vm(hv, "base-src")
    mine = hv.snapshots.create(src, "mine")
    clone = hv.vms.clone(src, "base-clone", linked=True)
    assert _snapshot_names(sim, "base-src") == ["mine", "linked clone base for base-clone"]
    assert [s.name for s in hv.snapshots.list(src)] == ["mine"]
    later = hv.snapshots.create(src, "later")
    assert later.parent == mine.id  # the hidden base between them is skipped
    hv.vms.delete(clone)
    assert _snapshot_names(sim, "base-src") == ["mine", "later"]
    assert [s.name for s in hv.snapshots.list(src)] == ["mine", "later"]
    assert not any(k.startswith("hvkit/") for k in sim.state()["vms"][0].get("extradata", {}))


def test_two_linked_clones_keep_each_others_base(hv: Hypervisor, sim: VBoxSim) -> None:
    src = _vm(hv, "two-src")
    first = hv.vms.clone(src, "two-a", linked=True)
    second = hv.vms.clone(src, "two-b", linked=True)
    assert hv.snapshots.list(src) == []
    hv.vms.delete(first)
    assert _snapshot_names(sim, "two-src") == ["linked clone base for two-b"]
    assert hv.snapshots.list(src) == []
    assert hv.vms.start(second).power_state is hvkit.PowerState.RUNNING  # its base is intact
    hv.vms.stop(second, force=True)
    hv.vms.delete(second)
    assert _snapshot_names(sim, "two-src") == []


def _base(sim: VBoxSim, clone: hvkit.VM) -> str:
    """The ``<source uuid>/<snapshot uuid>`` a linked clone hvkit made records."""
    return run(["getextradata", clone.id, "hvkit/linked-base"], sim.root)[1].split("Value: ")[1].strip()


def _link_outside_hvkit(hv: Hypervisor, sim: VBoxSim, src: hvkit.VM, snap_id: str, name: str) -> hvkit.VM:
    argv = ["clonevm", src.id, "--name", name, "--snapshot", snap_id, "--options", "link", "--register"]
    assert run(argv, sim.root)[0] == 0
    return hv.vms.get(name)


def test_a_clone_linked_outside_hvkit_keeps_the_base(
    hv: Hypervisor, sim: VBoxSim, caplog: pytest.LogCaptureFixture
) -> None:
    """VirtualBox's own record (the base's disk has the other clone's disk as a child) keeps the base: it refuses
    the delete, the base stays hidden, and goes with the last clone that records it."""
    src = _vm(hv, "shared-src")
    first = hv.vms.clone(src, "shared-a", linked=True)
    base = _base(sim, first)
    other = _link_outside_hvkit(hv, sim, src, base.split("/")[1], "shared-b")
    hv.vms.delete(first)
    assert _snapshot_names(sim, "shared-src") == ["linked clone base for shared-a"]
    assert "has more than one child hard disk" in caplog.text
    assert hv.snapshots.list(src) == []  # still marked as a base
    assert run(["setextradata", other.id, "hvkit/linked-base", base], sim.root)[0] == 0  # adopted by hvkit
    hv.vms.delete(other)
    assert _snapshot_names(sim, "shared-src") == []
    assert not any(k.startswith("hvkit/") for k in next(v for v in sim.state()["vms"])["extradata"])


def test_listed_clones_keep_the_base_until_the_last_goes(hv: Hypervisor, sim: VBoxSim) -> None:
    """The source lists a base's clones; a listed clone deleted outside hvkit no longer counts."""
    src = _vm(hv, "list-src")
    first = hv.vms.clone(src, "list-a", linked=True)
    base = _base(sim, first)
    snap_id = base.split("/")[1]
    second = _link_outside_hvkit(hv, sim, src, snap_id, "list-b")
    third = _link_outside_hvkit(hv, sim, src, snap_id, "list-c")
    for vm in (second, third):
        assert run(["setextradata", vm.id, "hvkit/linked-base", base], sim.root)[0] == 0
    key = f"hvkit/clone-base/{snap_id}"
    assert run(["setextradata", src.id, key, f"{first.id},{second.id},{third.id}"], sim.root)[0] == 0
    assert run(["unregistervm", third.id, "--delete"], sim.root)[0] == 0  # gone behind hvkit's back
    hv.vms.delete(first)
    assert _snapshot_names(sim, "list-src") == ["linked clone base for list-a"]
    assert run(["getextradata", src.id, key], sim.root)[1] == f"Value: {second.id}\n"
    hv.vms.delete(second)
    assert _snapshot_names(sim, "list-src") == []
    assert run(["getextradata", src.id, key], sim.root)[1] == "No value set!\n"


def test_a_user_snapshot_named_like_a_base_is_never_touched(hv: Hypervisor, sim: VBoxSim) -> None:
    src = _vm(hv, "twin-src")
    user = hv.snapshots.create(
        src, "linked clone base for twin-clone", description="the state the linked clone 'twin-clone' was"
    )
    clone = hv.vms.clone(src, "twin-clone", linked=True)
    assert [(s.id, s.name) for s in hv.snapshots.list(src)] == [(user.id, user.name)]
    hv.vms.delete(clone)
    assert [s.id for s in hv.snapshots.list(src)] == [user.id]
    assert _snapshot_names(sim, "twin-src") == ["linked clone base for twin-clone"]


def test_a_base_that_cannot_be_deleted_never_fails_the_delete(
    hv: Hypervisor, sim: VBoxSim, caplog: pytest.LogCaptureFixture
) -> None:
    src = _vm(hv, "stuck-src")
    clone = hv.vms.clone(src, "stuck-clone", linked=True)
    sim.faults(lock={"snapshot": 100})
    hv.vms.delete(clone)
    assert not any(v["name"] == "stuck-clone" for v in sim.state()["vms"])
    assert _snapshot_names(sim, "stuck-src") == ["linked clone base for stuck-clone"]
    assert "could not delete the linked clone base" in caplog.text
    assert hv.snapshots.list(src) == []


def test_a_source_with_linked_clones_is_not_deleted(hv: Hypervisor, sim: VBoxSim) -> None:
    src = _vm(hv, "busy-src")
    clone = hv.vms.clone(src, "busy-clone", linked=True)
    with pytest.raises(errors.HvkitError):
        hv.vms.delete(src)
    assert {v["name"] for v in sim.state()["vms"]} == {"busy-src", "busy-clone"}
    hv.vms.delete(clone)
    hv.vms.delete(src)
    assert sim.state()["vms"] == []


def test_a_full_clone_drops_inherited_hvkit_keys(hv: Hypervisor, sim: VBoxSim) -> None:
    src = _vm(hv, "chain-src")
    linked = hv.vms.clone(src, "chain-linked", linked=True)
    full = hv.vms.clone(linked, "chain-full", linked=False)
    assert run(["getextradata", full.id, "hvkit/linked-base"], sim.root)[1] == "No value set!\n"
    hv.vms.delete(full)
    assert _snapshot_names(sim, "chain-src") == ["linked clone base for chain-linked"]


def test_memory_snapshot_guest_ips_metrics_console(hv: Hypervisor, sim: VBoxSim) -> None:
    vm = hv.vms.start(_vm(hv, "live", nics=[hvkit.NicSpec("nat"), hvkit.NicSpec("vboxnet0")]))
    assert hv.vms.guest_ips(vm) == ["10.0.2.15", "192.168.56.101"]
    with pytest.raises(errors.InvalidState, match="memory"):
        hv.snapshots.create(vm, "disk-only", memory=False)
    snap = hv.snapshots.create(vm, "with-memory", memory=True)
    assert snap.memory and snap.current
    metrics = hv.vms.metrics([vm])
    assert metrics[0].memory_used_mib == 64 and metrics[0].cpu_usage is not None
    assert hv.hosts.metrics()[0].cpu_usage == pytest.approx(0.15)
    with pytest.raises(errors.InvalidState, match="VRDE"):
        hv.vms.console(vm)
    with sim.edit() as state:
        state["vms"][0]["vrde"], state["vms"][0]["vrde_active_port"] = True, 5001
    assert hv.vms.console(vm).port == 5001


def test_suspend_resume_and_forced_stop_of_saved(hv: Hypervisor) -> None:
    vm = hv.vms.start(_vm(hv, "saver"))
    assert hv.vms.suspend(vm).power_state is hvkit.PowerState.SUSPENDED
    assert hv.vms.stop(vm, force=True).power_state is hvkit.PowerState.STOPPED


def test_graceful_stop_times_out_when_the_guest_ignores_it(hv: Hypervisor, sim: VBoxSim) -> None:
    vm = hv.vms.start(_vm(hv, "deaf"))
    sim.faults(acpi_ignored=True)
    with pytest.raises(errors.Timeout):
        hv.vms.stop(vm, timeout=0.5)
    assert hv.vms.stop(vm, force=True).power_state is hvkit.PowerState.STOPPED


def test_failed_create_removes_what_it_made(hv: Hypervisor, sim: VBoxSim) -> None:
    sim.faults(lock={"storageattach": 99})
    with pytest.raises(errors.Conflict):
        _vm(hv, "half")
    sim.faults()
    assert hv.vms.list() == [] and hv.volumes.list() == []


def test_errors_are_translated(hv: Hypervisor) -> None:
    with pytest.raises(errors.NotFound):
        hv.vms.get("no-such-vm")
    vm = _vm(hv, "twice")
    with pytest.raises(errors.AlreadyExists):
        hv.volumes.create(
            "default", vm.disks[0].path.rsplit("/", 1)[-1].rsplit(".", 1)[0] if vm.disks[0].path else "x", 0.01
        )


def test_bad_urls() -> None:
    with pytest.raises(errors.InvalidSpec, match=r"\+ssh"):
        hvkit.connect("vbox://somehost/")
    with pytest.raises(errors.InvalidSpec):
        hvkit.connect("vbox+tcp://somehost/")


def test_missing_vboxmanage_is_a_connection_error(tmp_path: object) -> None:
    with pytest.raises(errors.ConnectionError, match="not installed"):
        hvkit.connect("vbox:///", vboxmanage="/nonexistent/VBoxManage")


def test_graceful_stop_of_a_paused_vm_resumes_it_first(hv: Hypervisor) -> None:
    vm = hv.vms.pause(hv.vms.start(_vm(hv, "napping")))
    before = _calls(hv)
    assert hv.vms.stop(vm, timeout=30).power_state is hvkit.PowerState.STOPPED
    assert _calls(hv) - before >= 3  # resume, acpipowerbutton, at least one look at the state


# -- OVA export / import (backend methods, VirtualBox only) ----------------------------------------------------
def _disk_vm(hv: Hypervisor, tmp_path: Path, name: str, contents: list[bytes]) -> hvkit.VM:
    """A VM whose SATA disks hold ``contents`` (written through clonemedium --existing)."""
    disks = []
    for n, content in enumerate(contents, 1):
        vol = hv.volumes.create("default", f"{name}-d{n}", 4 / 1024)
        raw = tmp_path / f"{name}-d{n}.raw"
        raw.write_bytes(content)
        hv.volumes.upload(vol, raw)
        disks.append(hvkit.DiskSpec(volume=vol.id, bus="sata"))
    vm: hvkit.VM = hv.vms.create(hvkit.VMSpec(name=name, disks=disks, **SPEC))  # type: ignore[arg-type]
    return vm


def _bytes(seed: int) -> bytes:
    data = bytearray(4 * 1024 * 1024)
    for off in (0, 1_500_000, 4 * 1024 * 1024 - 70_000):
        data[off : off + 64] = f"ova-{seed}-{off}".encode().ljust(64, b"#")
    return bytes(data)


def _read_disk(hv: Hypervisor, volume: str | None, tmp_path: Path, tag: str) -> bytes:
    out = tmp_path / f"{tag}.read"
    hv.volumes.download(volume or "", out)
    return out.read_bytes()


def test_ova_export_and_import_copies_the_disks(hv: Hypervisor, sim: VBoxSim, tmp_path: Path) -> None:
    content = _bytes(1)
    src = _disk_vm(hv, tmp_path, "ova-src", [content])
    ova = str(tmp_path / "appliance.ova")
    hv.backend.export_ova(src, ova)  # type: ignore[attr-defined]
    assert tarfile.is_tarfile(ova)
    with pytest.raises(errors.InvalidSpec, match="exists already"):
        hv.backend.export_ova(src, ova)  # type: ignore[attr-defined]
    copy: hvkit.VM = hv.backend.import_ova(ova, "ova-copy")  # type: ignore[attr-defined]
    assert copy.name == "ova-copy" and copy.id != src.id and copy.power_state is hvkit.PowerState.STOPPED
    assert (copy.cpus, copy.memory_mib, len(copy.disks)) == (1, 128, 1)
    assert copy.disks[0].volume not in {d.volume for d in src.disks}
    assert _read_disk(hv, copy.disks[0].volume, tmp_path, "copy") == content
    assert _read_disk(hv, src.disks[0].volume, tmp_path, "src") == content
    assert sorted(v.name for v in hv.vms.list()) == ["ova-copy", "ova-src"]
    hv.vms.delete(copy)
    assert _read_disk(hv, src.disks[0].volume, tmp_path, "src-after") == content  # the source's disk is its own


def test_ova_export_of_a_running_vm_is_refused(hv: Hypervisor, tmp_path: Path) -> None:
    vm = hv.vms.start(_vm(hv, "ova-running"))
    ova = tmp_path / "running.ova"
    with pytest.raises(errors.InvalidState, match="stop it"):
        hv.backend.export_ova(vm, str(ova))  # type: ignore[attr-defined]
    assert not ova.exists()
    with pytest.raises(errors.InvalidSpec, match=r"\.ova"):
        hv.backend.export_ova(hv.vms.stop(vm, force=True), str(tmp_path / "x.ovf"))  # type: ignore[attr-defined]


def test_ova_import_onto_a_taken_name_changes_nothing(hv: Hypervisor, tmp_path: Path) -> None:
    src = _disk_vm(hv, tmp_path, "ova-taken", [_bytes(2)])
    ova = str(tmp_path / "taken.ova")
    hv.backend.export_ova(src, ova)  # type: ignore[attr-defined]
    vms, volumes = hv.vms.list(), hv.volumes.list()
    with pytest.raises(errors.AlreadyExists):
        hv.backend.import_ova(ova, "ova-taken")  # type: ignore[attr-defined]
    assert hv.vms.list() == vms and hv.volumes.list() == volumes
    with pytest.raises(errors.NotFound):
        hv.backend.import_ova(str(tmp_path / "missing.ova"), "ova-new")  # type: ignore[attr-defined]


def test_failed_ova_import_leaves_no_vm_or_disk(hv: Hypervisor, sim: VBoxSim, tmp_path: Path) -> None:
    src = _disk_vm(hv, tmp_path, "ova-two", [_bytes(3), _bytes(4)])
    good = tmp_path / "good.ova"
    hv.backend.export_ova(src, str(good))  # type: ignore[attr-defined]
    bad = tmp_path / "bad.ova"  # the second disk is garbage: the first is imported and attached before it fails
    with tarfile.open(good) as old, tarfile.open(bad, "w") as new:
        members = old.getmembers()
        assert [m.name.endswith(".vmdk") for m in members] == [False, True, True]
        for member in members:
            data = old.extractfile(member)
            body = data.read() if data is not None else b""
            if member is members[-1]:
                body = b"not a vmdk " * 1000
            member.size = len(body)
            new.addfile(member, io.BytesIO(body))
    vms, volumes = hv.vms.list(), hv.volumes.list()
    with pytest.raises(errors.HvkitError):
        hv.backend.import_ova(str(bad), "ova-broken")  # type: ignore[attr-defined]
    assert hv.vms.list() == vms and hv.volumes.list() == volumes
    assert not (Path(sim.state()["machine_folder"]) / "ova-broken").exists()
    assert hv.backend.import_ova(str(good), "ova-broken").name == "ova-broken"  # type: ignore[attr-defined]


def _linked_delete_cost(hv: Hypervisor, sim: VBoxSim, tag: str, unrelated: int) -> int:
    """VBoxManage processes one linked clone delete starts with ``unrelated`` more VMs registered."""
    for n in range(unrelated):
        assert run(["createvm", "--name", f"{tag}-other-{n}", "--register"], sim.root)[0] == 0
    src = _vm(hv, f"{tag}-src")
    clone = hv.vms.clone(src, f"{tag}-clone", linked=True)
    before = _calls(hv)
    hv.vms.delete(clone)
    cost = _calls(hv) - before
    assert _snapshot_names(sim, f"{tag}-src") == []  # the base went with its last clone
    return cost


def test_deleting_a_linked_clone_costs_the_same_whatever_the_inventory(hv: Hypervisor, sim: VBoxSim) -> None:
    few = _linked_delete_cost(hv, sim, "few", 2)
    many = _linked_delete_cost(hv, sim, "many", 20)  # 20 more VMs than the first delete saw
    assert len(sim.state()["vms"]) == 2 + 20 + 2
    assert few == many <= 7, (few, many)  # was 3 + one per registered VM


def test_a_linked_clone_failing_midway_removes_only_what_it_made(hv: Hypervisor, sim: VBoxSim) -> None:
    """The clone, its base and the source's mark go again (by UUID); the user's snapshot stays."""
    src = _vm(hv, "half-src")
    mine = hv.snapshots.create(src, "mine")
    session = hv.backend.session  # type: ignore[attr-defined]
    real = session._once

    def refuse_the_clone_record(args: list[str], timeout: float) -> str:
        if args[:1] == ["setextradata"] and args[2:3] == ["hvkit/linked-base"]:
            raise VBoxManageError("setextradata", 1, "VBoxManage: error: injected\n")
        out: str = real(args, timeout)
        return out

    session._once = refuse_the_clone_record
    with pytest.raises(errors.HvkitError):
        hv.vms.clone(src, "half-clone", linked=True)
    session._once = real
    assert [v["name"] for v in sim.state()["vms"]] == ["half-src"]
    assert _snapshot_names(sim, "half-src") == ["mine"]
    assert [s.id for s in hv.snapshots.list(src)] == [mine.id]
    assert not any(k.startswith("hvkit/") for k in sim.state()["vms"][0].get("extradata", {}))


def test_linked_clones_of_linked_clones(hv: Hypervisor, sim: VBoxSim) -> None:
    """Each clone records its own base; a clone others hang on is not deleted; the bases go leaf first."""
    src = _vm(hv, "deep-src")
    middle = hv.vms.clone(src, "deep-mid", linked=True)
    leaf = hv.vms.clone(middle, "deep-leaf", linked=True)
    assert _base(sim, middle).startswith(src.id) and _base(sim, leaf).startswith(middle.id)
    assert hv.snapshots.list(src) == [] and hv.snapshots.list(middle) == []
    with pytest.raises(errors.HvkitError):
        hv.vms.delete(middle)  # the leaf's disk hangs on its disk
    assert _snapshot_names(sim, "deep-src") == ["linked clone base for deep-mid"]
    assert _snapshot_names(sim, "deep-mid") == ["linked clone base for deep-leaf"]
    hv.vms.delete(leaf)
    assert _snapshot_names(sim, "deep-mid") == []
    assert _snapshot_names(sim, "deep-src") == ["linked clone base for deep-mid"]
    hv.vms.delete(middle)
    assert _snapshot_names(sim, "deep-src") == []
    hv.vms.delete(src)
    assert sim.state()["vms"] == []


def test_a_source_unregistered_outside_hvkit_leaves_the_clone_deletable(
    hv: Hypervisor, sim: VBoxSim, caplog: pytest.LogCaptureFixture
) -> None:
    src = _vm(hv, "lost-src")
    clone = hv.vms.clone(src, "lost-clone", linked=True)
    assert run(["unregistervm", src.id], sim.root)[0] == 0  # its disks stay registered
    hv.vms.delete(clone)
    assert sim.state()["vms"] == []
    assert "could not delete" not in caplog.text  # nothing left to release, nothing tried
