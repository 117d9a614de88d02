"""Reconfigure, clone and migrate."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ... import errors
from ...capabilities import Capability
from ...hypervisor import Hypervisor
from ...models import VM, PowerState
from ._base import ConformanceBase, requires


class ReconfigureTests(ConformanceBase):
    @requires(Capability.VM_CREATE, Capability.VM_RECONFIGURE)
    def test_reconfigure_stopped(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        vm = make_vm("reconf")
        vm = hv.vms.reconfigure(vm, cpus=2, memory_mib=256)
        assert (vm.cpus, vm.memory_mib) == (2, 256)
        assert (hv.vms.get(vm).cpus, hv.vms.get(vm).memory_mib) == (2, 256)

    @requires(Capability.VM_RECONFIGURE)
    def test_reconfigure_validates_first(self, hv: Hypervisor) -> None:
        with pytest.raises(errors.InvalidSpec):
            hv.vms.reconfigure("hvkit-no-such-vm")
        with pytest.raises(errors.InvalidSpec):
            hv.vms.reconfigure("hvkit-no-such-vm", cpus=-1)

    @requires(Capability.VM_CREATE, Capability.VM_POWER, Capability.VM_RECONFIGURE)
    def test_reconfigure_running(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        vm = hv.vms.start(make_vm("live", cpus=1, memory_mib=256))
        if Capability.VM_RECONFIGURE_LIVE in hv.capabilities:
            vm = hv.vms.reconfigure(vm, cpus=2)
            assert hv.vms.get(vm).cpus == 2
        else:
            with pytest.raises(errors.InvalidState):
                hv.vms.reconfigure(vm, cpus=2)
        hv.vms.stop(vm, force=True)


class CloneTests(ConformanceBase):
    @requires(Capability.VM_CREATE, Capability.VM_CLONE)
    def test_full_clone(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        src = make_vm("src", cpus=2, memory_mib=256)
        clone = hv.vms.clone(src, f"{src.name}-full", timeout=self.operation_timeout)
        assert clone.id != src.id and clone.name == f"{src.name}-full"
        assert (clone.cpus, clone.memory_mib, len(clone.disks)) == (2, 256, len(src.disks))
        assert clone.power_state is PowerState.STOPPED
        assert {d.volume for d in clone.disks}.isdisjoint({d.volume for d in src.disks})
        if src.nics:
            assert clone.nics[0].mac != src.nics[0].mac
        hv.vms.delete(clone)
        assert hv.vms.get(src).id == src.id

    @requires(Capability.VM_CREATE, Capability.VM_LINKED_CLONE)
    def test_linked_clone(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        src = make_vm("base")
        if Capability.VM_TEMPLATE in hv.capabilities:  # some vendors link clones to templates only
            src = hv.vms.mark_template(src)
        clone = hv.vms.clone(src, f"{src.name}-linked", linked=True, timeout=self.operation_timeout)
        assert clone.power_state is PowerState.STOPPED and len(clone.disks) == len(src.disks)
        assert not clone.template
        hv.vms.delete(clone)

    @requires(Capability.VM_CREATE, Capability.VM_TEMPLATE, Capability.VM_CLONE)
    def test_template_never_starts_and_clones(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        tpl = hv.vms.mark_template(make_vm("tpl"))
        assert tpl.template
        with pytest.raises(errors.InvalidState):
            hv.vms.start(tpl)
        with pytest.raises(errors.InvalidState):
            hv.vms.mark_template(tpl)
        clone = hv.vms.clone(tpl, f"{tpl.name}-copy", timeout=self.operation_timeout)
        assert not clone.template and clone.power_state is PowerState.STOPPED
        hv.vms.delete(clone)

    @requires(Capability.VM_CREATE, Capability.VM_CLONE)
    def test_clone_name_taken(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        a, b = make_vm("a"), make_vm("b")
        with pytest.raises(errors.AlreadyExists):
            hv.vms.clone(a, b.name)
        with pytest.raises(errors.InvalidSpec):
            hv.vms.clone(a, "bad/name")


class MigrateTests(ConformanceBase):
    @requires(Capability.VM_CREATE, Capability.VM_POWER, Capability.VM_MIGRATE)
    def test_live_migrate_to_other_host(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        hosts = [h for h in hv.hosts.list() if not h.maintenance]
        if len(hosts) < 2:
            pytest.skip("needs two hosts")
        vm = hv.vms.start(make_vm("mig"))
        target = next(h for h in hosts if vm.host not in (h.id, h.name))
        moved = hv.vms.migrate(vm, host=target.id, timeout=self.operation_timeout)
        assert moved.host in (target.id, target.name)
        assert moved.power_state is PowerState.RUNNING
        with pytest.raises(errors.InvalidSpec):
            hv.vms.migrate(moved, host=target.id)
        hv.vms.stop(moved, force=True)

    @requires(Capability.VM_CREATE, Capability.VM_STORAGE_MIGRATE)
    def test_storage_migrate(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        if not self.second_pool:
            pytest.skip("this binding names no second pool")
        vm = make_vm("smig")
        moved = hv.vms.migrate(vm, pool=self.second_pool, timeout=self.operation_timeout)
        assert {d.pool for d in moved.disks} == {self.second_pool}

    @requires(Capability.VM_MIGRATE)
    def test_migrate_needs_a_target(self, hv: Hypervisor) -> None:
        with pytest.raises(errors.InvalidSpec):
            hv.vms.migrate("hvkit-no-such-vm")
