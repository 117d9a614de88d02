"""Snapshots and their tree."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ... import errors
from ...capabilities import Capability
from ...hypervisor import Hypervisor
from ...models import VM, PowerState, Snapshot
from ._base import ConformanceBase, requires


class SnapshotTests(ConformanceBase):
    @requires(Capability.VM_CREATE, Capability.SNAPSHOT)
    def test_tree_revert_delete(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        vm = make_vm("snap", cpus=1)
        s1 = hv.snapshots.create(vm, "first", description="a first snapshot", timeout=self.operation_timeout)
        assert isinstance(s1, Snapshot) and s1.name == "first" and s1.parent is None
        if Capability.VM_RECONFIGURE in hv.capabilities:
            hv.vms.reconfigure(vm, cpus=2)
        s2 = hv.snapshots.create(vm, "second", timeout=self.operation_timeout)
        assert s2.parent == s1.id
        tree = {s.name: s for s in hv.snapshots.list(vm)}
        assert set(tree) == {"first", "second"} and tree["second"].parent == tree["first"].id
        with pytest.raises(errors.AlreadyExists):
            hv.snapshots.create(vm, "first")
        hv.snapshots.revert(tree["first"], timeout=self.operation_timeout)
        if Capability.VM_RECONFIGURE in hv.capabilities:
            assert hv.vms.get(vm).cpus == 1
        hv.snapshots.delete(tree["second"])
        assert [s.name for s in hv.snapshots.list(vm)] == ["first"]
        hv.snapshots.delete(hv.snapshots.get(vm, "first"))
        assert hv.snapshots.list(vm) == []

    @requires(Capability.VM_CREATE, Capability.SNAPSHOT)
    def test_delete_with_children(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        vm = make_vm("snaptree")
        root = hv.snapshots.create(vm, "root")
        hv.snapshots.create(vm, "child")
        hv.snapshots.delete(root, children=True)
        assert hv.snapshots.list(vm) == []

    @requires(Capability.VM_CREATE, Capability.SNAPSHOT)
    def test_delete_middle_reparents(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        vm = make_vm("reparent")
        a = hv.snapshots.create(vm, "snap_a")
        b = hv.snapshots.create(vm, "snap_b")
        c = hv.snapshots.create(vm, "snap_c")
        hv.snapshots.delete(b)
        tree = {s.name: s for s in hv.snapshots.list(vm)}
        assert set(tree) == {"snap_a", "snap_c"} and tree["snap_c"].parent == a.id
        assert c.id == tree["snap_c"].id

    @requires(Capability.VM_CREATE, Capability.VM_POWER, Capability.SNAPSHOT_MEMORY)
    def test_memory_snapshot_restores_running(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        vm = hv.vms.start(make_vm("memsnap"))
        snap = hv.snapshots.create(vm, "live", memory=True, timeout=self.operation_timeout)
        assert snap.memory
        hv.vms.stop(vm, force=True)
        restored = hv.snapshots.revert(snap, timeout=self.operation_timeout)
        assert restored.power_state in (PowerState.RUNNING, PowerState.PAUSED)
        hv.vms.stop(restored, force=True)

    @requires(Capability.SNAPSHOT)
    def test_revert_takes_a_snapshot(self, hv: Hypervisor) -> None:
        with pytest.raises(errors.InvalidSpec):
            hv.snapshots.revert("first")  # type: ignore[arg-type]
