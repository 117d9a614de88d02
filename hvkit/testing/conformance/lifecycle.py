"""Create, power operations, delete."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ... import errors
from ...capabilities import Capability
from ...hypervisor import Hypervisor
from ...models import VM, DiskSpec, PowerState, VMSpec
from ...tasks import Task
from ._base import ConformanceBase, requires


class LifecycleTests(ConformanceBase):
    @requires(Capability.VM_CREATE)
    def test_create_matches_spec(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        vm = make_vm("spec", cpus=2, memory_mib=256, notes="made by hvkit conformance")
        assert vm.cpus == 2 and vm.memory_mib == 256
        assert vm.power_state is PowerState.STOPPED
        assert len(vm.disks) == 1 and vm.disks[0].size_bytes >= int(self.disk_gib * 1024**3)
        if self.network:
            assert len(vm.nics) == 1 and vm.nics[0].mac
        again = hv.vms.get(vm)
        assert (again.cpus, again.memory_mib, len(again.disks)) == (2, 256, 1)

    @requires(Capability.VM_CREATE)
    def test_create_keeps_given_mac(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        if not self.network:
            pytest.skip("no network to attach")
        from ...models import NicSpec

        vm = make_vm("mac", nics=[NicSpec(network=self.network, mac="52:54:00:ab:cd:ef")])
        assert [n.mac for n in vm.nics] == ["52:54:00:ab:cd:ef"]

    @requires(Capability.VM_CREATE)
    def test_create_name_taken(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        vm = make_vm("taken")
        with pytest.raises(errors.AlreadyExists):
            hv.vms.create(self.vm_spec(vm.name))

    @requires(Capability.VM_CREATE)
    def test_create_unknown_pool_or_network_creates_nothing(self, hv: Hypervisor, prefix: str) -> None:
        before = {v.name for v in hv.vms.list()}
        with pytest.raises(errors.NotFound):
            hv.vms.create(self.vm_spec(f"{prefix}-x", disks=[DiskSpec(size_gib=1, pool="hvkit-no-such-pool")]))
        if self.network:
            from ...models import NicSpec

            with pytest.raises(errors.NotFound):
                hv.vms.create(self.vm_spec(f"{prefix}-y", nics=[NicSpec(network="hvkit-no-such-net")]))
        assert {v.name for v in hv.vms.list()} == before

    @requires(Capability.VM_CREATE, Capability.VM_POWER)
    def test_start_stop(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        vm = make_vm("power")
        vm = hv.vms.start(vm)
        assert vm.power_state is PowerState.RUNNING
        with pytest.raises(errors.InvalidState):
            hv.vms.start(vm)
        vm = hv.vms.stop(vm, force=True)
        assert vm.power_state is PowerState.STOPPED
        with pytest.raises(errors.InvalidState):
            hv.vms.stop(vm, force=True)

    @requires(Capability.VM_CREATE, Capability.VM_POWER)
    def test_graceful_stop_and_reboot(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        if not self.graceful_stop:
            pytest.skip("this binding's test guests do not answer shutdown requests")
        vm = hv.vms.start(make_vm("graceful"))
        vm = hv.vms.reboot(vm)
        assert vm.power_state is PowerState.RUNNING
        vm = hv.vms.stop(vm, timeout=self.operation_timeout)
        assert vm.power_state is PowerState.STOPPED

    @requires(Capability.VM_CREATE, Capability.VM_POWER)
    def test_wait_false_returns_task(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        vm = make_vm("task")
        task = hv.vms.start(vm, wait=False)
        assert isinstance(task, Task)
        started = task.wait(self.operation_timeout)
        assert started.power_state is PowerState.RUNNING
        assert task.info().progress == 100
        hv.vms.stop(started, force=True)

    @requires(Capability.VM_CREATE, Capability.VM_PAUSE)
    def test_pause_resume(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        vm = hv.vms.start(make_vm("pause"))
        vm = hv.vms.pause(vm)
        assert vm.power_state is PowerState.PAUSED
        with pytest.raises(errors.InvalidState):
            hv.vms.start(vm)
        vm = hv.vms.resume(vm)
        assert vm.power_state is PowerState.RUNNING
        hv.vms.stop(vm, force=True)

    @requires(Capability.VM_CREATE, Capability.VM_SUSPEND)
    def test_suspend_then_start_resumes(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        vm = hv.vms.start(make_vm("suspend"))
        vm = hv.vms.suspend(vm)
        assert vm.power_state is PowerState.SUSPENDED
        vm = hv.vms.start(vm)
        assert vm.power_state is PowerState.RUNNING
        hv.vms.stop(vm, force=True)

    @requires(Capability.VM_CREATE, Capability.VM_DELETE)
    def test_delete_removes_vm_and_disks(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        vm = make_vm("delete")
        volumes = [d.volume for d in vm.disks if d.volume]
        hv.vms.delete(vm)
        with pytest.raises(errors.NotFound):
            hv.vms.get(vm.id)
        for vol in volumes:
            with pytest.raises(errors.NotFound):
                hv.volumes.get(vol)

    @requires(Capability.VM_CREATE, Capability.VM_DELETE, Capability.VM_POWER)
    def test_delete_running_needs_force(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        vm = hv.vms.start(make_vm("running"))
        with pytest.raises(errors.InvalidState):
            hv.vms.delete(vm)
        assert hv.vms.get(vm).power_state is PowerState.RUNNING
        hv.vms.delete(vm, force=True)
        with pytest.raises(errors.NotFound):
            hv.vms.get(vm.id)

    @requires(Capability.VM_CREATE, Capability.VM_DELETE, Capability.VOLUME_DELETE)
    def test_delete_keep_disks(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        vm = make_vm("keep")
        volumes = [d.volume for d in vm.disks if d.volume]
        if not self.keeps_disks:  # refused before anything changes
            with pytest.raises(errors.Unsupported):
                hv.vms.delete(vm, keep_disks=True)
            assert hv.vms.get(vm.id).name == vm.name
            for vol in volumes:
                hv.volumes.get(vol)
            return
        hv.vms.delete(vm, keep_disks=True)
        for vol in volumes:
            hv.volumes.delete(hv.volumes.get(vol))

    @requires(Capability.VM_CREATE)
    def test_invalid_spec_never_reaches_backend(self, hv: Hypervisor) -> None:
        with pytest.raises(errors.InvalidSpec):
            hv.vms.create(VMSpec(name="x", cpus=0))
        with pytest.raises(errors.InvalidSpec):
            hv.vms.create("not a spec")  # type: ignore[arg-type]
