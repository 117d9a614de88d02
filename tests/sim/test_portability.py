"""The sim backend models what KVM does around linked clones: the source moves onto its own overlay,
so its snapshots (taken before or after the clone) revert without touching the clone's base."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator

import attrs
import pytest

import hvkit
from hvkit import DiskSpec, NicSpec, PowerState, VMSpec, errors
from hvkit.backends.sim import forget

MIB = 1024 * 1024


@pytest.fixture
def sim(tmp_path, monkeypatch) -> Iterator[hvkit.Hypervisor]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HVKIT_SIM_STATE_DIR", str(tmp_path / "sim-state"))
    name = f"p{uuid.uuid4().hex[:8]}"
    with hvkit.connect(f"sim://{name}") as hv:
        yield hv
    forget(name)


def _spec(name: str, fmt: str = "qcow2") -> VMSpec:
    return VMSpec(name=name, memory_mib=256, disks=[DiskSpec(size_gib=4 / 1024, format=fmt)], nics=[NicSpec("default")])


def _read(hv: hvkit.Hypervisor, vm: hvkit.VM) -> bytes:
    volume = hv.vms.get(vm).disks[0].volume
    assert volume is not None
    out = io.BytesIO()
    hv.volumes.download(volume, out)
    return out.getvalue()[:MIB]


def _write(hv: hvkit.Hypervisor, vm: hvkit.VM) -> bytes:
    volume = hv.vms.get(vm).disks[0].volume
    assert volume is not None
    data = os.urandom(MIB)
    hv.volumes.upload(volume, io.BytesIO(data))
    return data


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_revert_after_a_linked_clone_keeps_the_clone_intact(sim: hvkit.Hypervisor, fmt: str) -> None:
    vm = sim.vms.create(_spec("src", fmt))
    first = _write(sim, vm)
    vm = sim.vms.start(vm)
    before = sim.snapshots.create(vm, "before-upgrade")
    assert before.memory  # memory=None: a running VM's snapshot keeps its memory where the backend can
    cloned_state = _write(sim, vm)
    clone = sim.vms.clone(vm, "clone", linked=True)
    assert sim.vms.get(vm).disks[0].volume != vm.disks[0].volume  # the source moved onto its own overlay
    after = sim.snapshots.create(vm, "after")
    latest = _write(sim, vm)

    reverted = sim.snapshots.revert(before)
    assert reverted.power_state is PowerState.RUNNING
    assert _read(sim, vm) == first
    assert _read(sim, clone) == cloned_state
    sim.snapshots.revert(after)
    assert _read(sim, vm) == cloned_state
    assert _read(sim, clone) == cloned_state
    _write(sim, vm)
    sim.snapshots.revert(before)
    assert _read(sim, vm) == first and latest != first

    with pytest.raises(errors.InvalidState, match="linked clones"):
        sim.vms.delete(vm, force=True)
    sim.vms.delete(clone)
    sim.vms.delete(vm, force=True)
    assert sim.volumes.list() == []


def test_memory_false_on_a_running_vm_is_a_disk_snapshot(sim: hvkit.Hypervisor) -> None:
    vm = sim.vms.start(sim.vms.create(_spec("disk-only")))
    snap = sim.snapshots.create(vm, "disk", memory=False)
    assert not snap.memory
    assert sim.snapshots.revert(snap).power_state is PowerState.STOPPED
    stopped = sim.snapshots.create(vm, "stopped")
    assert not stopped.memory  # a stopped VM has no memory to keep
    sim.vms.delete(vm)


def test_list_detail_knob_and_backends_without_it(sim: hvkit.Hypervisor, monkeypatch: pytest.MonkeyPatch) -> None:
    vm = sim.vms.create(_spec("listed"))
    assert [v.id for v in sim.vms.list(detail=True)] == [v.id for v in sim.vms.list()] == [vm.id]
    # a backend written before the knob (list_vms() without detail): detail=True reads each VM in full
    plain = sim.backend.list_vms
    monkeypatch.setattr(sim.backend, "list_vms", lambda: [attrs.evolve(v, disks=()) for v in plain()])
    assert sim.vms.list()[0].disks == ()
    assert sim.vms.list(detail=True)[0].disks == sim.vms.get(vm).disks != ()


def test_any_hvkit_name_is_kept(sim: hvkit.Hypervisor) -> None:
    for name in ("web server #1 (ü) 100%", "x" * 80):
        vm = sim.vms.create(VMSpec(name=name, memory_mib=64, disks=[DiskSpec(size_gib=0.01)]))
        assert sim.vms.get(name).id == vm.id
        snap = sim.snapshots.create(vm, "before-upgrade: 100% (ü)")
        assert sim.snapshots.get(vm, "before-upgrade: 100% (ü)").id == snap.id
        clone = sim.vms.clone(vm, name[:70] + " clone", linked=True)
        sim.vms.delete(clone)
        sim.vms.delete(vm)
    volume = sim.volumes.create("default", "data disk #1 (ü) 50%", 0.01)
    assert sim.volumes.get(volume.id).name.startswith("data disk #1 (ü) 50%")
    with pytest.raises(errors.AlreadyExists):
        sim.vms.clone(sim.vms.create(VMSpec(name="a", memory_mib=64)), "a")
