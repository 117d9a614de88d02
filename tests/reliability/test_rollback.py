"""Rollback by identity: a failed call removes only what it made, never a VM found by name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import hvkit
from hvkit import CloudInit, errors
from hvkit.testing.proxmox_sim import ProxmoxSimulator
from hvkit.testing.proxmox_sim.state import PVEError

from ._orphans import fresh_sim, pve_orphans, pve_session, pve_spec, sim_orphans, spec

pytest.importorskip("proxmoxer")


@pytest.fixture
def sim() -> Iterator[hvkit.Hypervisor]:
    yield from fresh_sim()


@pytest.fixture(scope="module")
def pve() -> Iterator[ProxmoxSimulator]:
    with ProxmoxSimulator(nodes=2, task_delay=0.02, lock_timeout=0.5) as simulator:
        yield simulator


@pytest.fixture
def phv(pve: ProxmoxSimulator) -> Iterator[hvkit.Hypervisor]:
    yield from pve_session(pve)


# -- sim ----------------------------------------------------------------------------------------------
def test_sim_failed_create_named_like_an_existing_id_keeps_that_vm(sim: hvkit.Hypervisor) -> None:
    prod = sim.vms.create(spec("prod-db"))
    sim.backend.faults.fail("create_vm", stage="define")  # type: ignore[attr-defined]
    with pytest.raises(errors.BackendError, match="injected"):
        sim.vms.create(spec(prod.id))
    assert [v.id for v in sim.vms.list()] == [prod.id]
    assert sim_orphans(sim, {prod.id}) == []


def test_sim_failed_clone_named_like_an_existing_id_keeps_that_vm(sim: hvkit.Hypervisor) -> None:
    prod = sim.vms.create(spec("prod-db"))
    other = sim.vms.create(spec("other"))
    sim.backend.faults.fail("clone_vm", stage="define")  # type: ignore[attr-defined]
    with pytest.raises(errors.BackendError, match="injected"):
        sim.vms.clone(other, prod.id)
    assert sorted(v.id for v in sim.vms.list()) == sorted([prod.id, other.id])
    assert sim_orphans(sim, {prod.id, other.id}) == []


def test_sim_refused_create_with_a_taken_name_removes_nothing(sim: hvkit.Hypervisor) -> None:
    """The backend refuses a name the core's check missed (a create raced it): the VM of that name stays."""
    prod = sim.vms.create(spec("prod-db"))
    resolved = sim.vms._check_spec(spec("fresh"))
    import attrs

    task = sim.backend.create_vm(attrs.evolve(resolved, name="prod-db"))
    with pytest.raises(errors.AlreadyExists):
        task.wait(5)
    assert [v.id for v in sim.vms.list()] == [prod.id] and sim_orphans(sim, {prod.id}) == []


def test_sim_full_clone_failing_copy_leaves_no_volume(sim: hvkit.Hypervisor, monkeypatch: pytest.MonkeyPatch) -> None:
    from hvkit._images import _qemuimg

    src = sim.vms.create(spec("src", disks=[hvkit.DiskSpec(size_gib=0.01), hvkit.DiskSpec(size_gib=0.01)]))
    real = _qemuimg.qemu_img
    calls = {"convert": 0}

    def failing(*args: str, timeout: float | None = None) -> str:
        if args[0] == "convert":
            calls["convert"] += 1
            if calls["convert"] == 2:
                raise errors.BackendError("qemu-img convert failed: injected")
        return real(*args, timeout=timeout)

    monkeypatch.setattr(_qemuimg, "qemu_img", failing)
    with pytest.raises(errors.BackendError, match="injected"):
        sim.vms.clone(src, "copy")
    monkeypatch.undo()
    assert sim_orphans(sim, {src.id}) == []


def test_sim_storage_migration_keeps_the_base_of_linked_clones(sim: hvkit.Hypervisor) -> None:
    src = sim.vms.create(spec("base", disks=[hvkit.DiskSpec(size_gib=0.01, pool="default")]))
    clone = sim.vms.clone(src, "child", linked=True)
    moved = sim.vms.migrate(src, pool="fast")
    assert all(d.pool == "fast" for d in moved.disks)
    assert sim_orphans(sim, {src.id, clone.id}) == []
    sim.vms.start(clone)  # its disk still reads its base
    assert sim.vms.migrate(clone, pool="fast").disks[0].pool == "fast"  # a clone moves flattened
    sim.vms.delete(clone, force=True)
    sim.vms.delete(src)
    assert sim_orphans(sim, set()) == [] and sim.volumes.list() == []


def test_sim_storage_migration_failing_at_any_copy_leaves_nothing(
    sim: hvkit.Hypervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hvkit._images import _qemuimg

    two = [hvkit.DiskSpec(size_gib=0.01, pool="default"), hvkit.DiskSpec(size_gib=0.01, pool="default")]
    vm = sim.vms.create(spec("mover", disks=two))
    real = _qemuimg.qemu_img
    for fail_at in range(1, 5):  # create, convert, create, convert
        seen = [0]

        def failing(*args: str, timeout: float | None = None, fail_at: int = fail_at, seen: list[int] = seen) -> str:
            if args[0] in ("create", "convert"):
                seen[0] += 1
                if seen[0] == fail_at:
                    raise errors.BackendError(f"qemu-img {args[0]} failed: injected")
            return real(*args, timeout=timeout)

        monkeypatch.setattr(_qemuimg, "qemu_img", failing)
        with pytest.raises(errors.BackendError, match="injected"):
            sim.vms.migrate(vm, pool="fast")
        monkeypatch.undo()
        assert sim_orphans(sim, {vm.id}) == [], fail_at
        assert all(d.pool == "default" for d in sim.vms.get(vm.id).disks)


# -- Proxmox simulator --------------------------------------------------------------------------------
def test_pve_refused_create_named_like_an_existing_vmid_keeps_that_vm(
    phv: hvkit.Hypervisor, pve: ProxmoxSimulator
) -> None:
    prod = phv.vms.create(pve_spec("prod-db"))
    with pytest.raises(errors.InvalidSpec):
        phv.vms.create(pve_spec(prod.id, cloud_init=CloudInit(user_data="#cloud-config\n")))
    assert [v.id for v in phv.vms.list()] == [prod.id]
    assert pve_orphans(pve, {int(prod.id)}) == []


def test_pve_failed_create_task_named_like_an_existing_vmid_keeps_that_vm(
    phv: hvkit.Hypervisor, pve: ProxmoxSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hvkit._images import _qemuimg

    prod = phv.vms.create(pve_spec("prod-db"))
    real = _qemuimg.qemu_img

    def failing(*args: str, timeout: float | None = None) -> str:
        if args[0] == "create":
            raise errors.BackendError("qemu-img create failed: injected")
        return real(*args, timeout=timeout)

    monkeypatch.setattr(_qemuimg, "qemu_img", failing)
    with pytest.raises(errors.HvkitError, match="injected"):
        phv.vms.create(pve_spec(prod.id))
    monkeypatch.undo()
    assert [v.id for v in phv.vms.list()] == [prod.id]
    assert pve_orphans(pve, {int(prod.id)}) == []


def test_pve_storage_migration_refuses_a_template_with_linked_clones(
    phv: hvkit.Hypervisor, pve: ProxmoxSimulator
) -> None:
    tpl = phv.vms.mark_template(phv.vms.create(pve_spec("tpl")))
    clone = phv.vms.clone(tpl, "child", linked=True)
    with pytest.raises(errors.InvalidState, match="linked clones"):
        phv.vms.migrate(tpl, pool="shared")
    assert pve_orphans(pve, {int(tpl.id), int(clone.id)}) == []
    with pytest.raises(errors.InvalidState, match="linked clones"):
        phv.vms.delete(tpl)  # PVE would keep the base, owned by no VM
    phv.vms.start(clone)  # its disk still reads its base
    phv.vms.delete(clone, force=True)
    assert phv.vms.migrate(tpl, pool="shared").disks[0].pool == "shared"  # no clone left: it moves
    assert pve_orphans(pve, {int(tpl.id)}) == []


def test_pve_simulator_keeps_a_base_linked_clones_use(pve: ProxmoxSimulator, phv: hvkit.Hypervisor) -> None:
    """Like PVE's vdisk_free: a base volume with linked clones is not freed (a move with delete=1 keeps it)."""
    tpl = phv.vms.mark_template(phv.vms.create(pve_spec("tpl2")))
    clone = phv.vms.clone(tpl, "child2", linked=True)
    node, vmid = str(tpl.host), int(tpl.id)
    base = next(iter(pve.cluster.vm_disks(pve.cluster.vm(node, vmid)).values()))["file"]
    with pytest.raises(PVEError, match="still in use by linked clone"):
        pve.cluster.free_volume(node, base)
    assert pve_orphans(pve, {int(tpl.id), int(clone.id)}) == []
