"""What a backend declares (hvkit.driver.Traits) and how the core, migration and fleet read it."""

from __future__ import annotations

import datetime as dt

import pytest

import hvkit
from hvkit.driver import Limits, MacRange, Traits
from hvkit.errors import InvalidSpec
from hvkit.models import VM, DiskBus, DiskSpec, NicModel, PowerState, VMSpec


def _spec(name: str = "v1", cpus: int = 2, disks: int = 1, bus: DiskBus = DiskBus.VIRTIO) -> VMSpec:
    return VMSpec(name, cpus, 1024, disks=[DiskSpec(1, bus=bus) for _ in range(disks)])


def test_limits_name_each_broken_limit() -> None:
    limits = Limits(
        max_cpus=32, max_memory_mib=4096, disks_per_bus={DiskBus.IDE: 4}, max_name_length=8, name_pattern="[a-z]+"
    )
    problems = limits.problems(
        "vbox", name="Too-Long-Name", cpus=48, memory_mib=8192, buses=[DiskBus.IDE] * 5 + [DiskBus.SCSI] * 40
    )
    assert len(problems) == 5
    for limit in ("max_cpus", "max_memory_mib", "disks_per_bus", "max_name_length", "name_pattern"):
        assert any(f"({limit})" in p for p in problems), limit
    assert "at most 32 vCPUs" in problems[0] and "48" in problems[0]
    assert limits.problems("vbox", name="ok", cpus=32, memory_mib=4096, buses=[DiskBus.IDE] * 4) == []
    assert Limits().problems("x", name="x" * 500, cpus=10**6, memory_mib=10**9, buses=[DiskBus.IDE] * 99) == []


def test_mac_ranges() -> None:
    vmware = MacRange("00:50:56:00:00:00", "00:50:56:3F:FF:FF")
    assert "00:50:56:12:34:56" in vmware
    assert "00:50:56:40:00:00" not in vmware
    assert "52:54:00:12:34:56" not in vmware
    assert str(vmware) == "00:50:56:00:00:00-00:50:56:3f:ff:ff"
    assert Traits().owns_mac("52:54:00:12:34:56")
    assert not Traits(mac_ranges=(vmware,)).owns_mac("52:54:00:12:34:56")
    with pytest.raises(ValueError, match="ends before it starts"):
        MacRange("00:50:56:00:00:02", "00:50:56:00:00:01")


def test_core_checks_limits_before_any_call(sim: hvkit.Hypervisor) -> None:
    sim.backend.traits = Traits(limits=Limits(max_cpus=32, disks_per_bus={DiskBus.IDE: 2}, name_pattern="[a-z0-9-]+"))
    calls: list[str] = []
    real = sim.backend.list_vms

    def counting_list_vms(detail: bool = False) -> list[VM]:
        calls.append("list_vms")
        return real(detail)

    sim.backend.list_vms = counting_list_vms  # type: ignore[method-assign]
    with pytest.raises(InvalidSpec, match=r"at most 32 vCPUs \(max_cpus\)"):
        sim.vms.create(_spec(cpus=48))
    with pytest.raises(InvalidSpec, match=r"at most 2 ide disks per VM \(disks_per_bus\)"):
        sim.vms.create(_spec(disks=3, bus=DiskBus.IDE))
    with pytest.raises(InvalidSpec, match=r"name_pattern"):
        sim.vms.create(_spec(name="Has Space"))
    assert calls == []  # refused before the backend was asked anything
    vm = sim.vms.create(_spec(cpus=32, disks=2, bus=DiskBus.IDE))
    with pytest.raises(InvalidSpec, match="max_cpus"):
        sim.vms.reconfigure(vm, cpus=33)
    with pytest.raises(InvalidSpec, match="name_pattern"):
        sim.vms.clone(vm, "Bad_Name")
    assert sim.vms.reconfigure(vm, cpus=4).cpus == 4


def test_sim_says_since_when_a_vm_is_in_its_state(sim: hvkit.Hypervisor) -> None:
    before = dt.datetime.now(dt.UTC)
    vm = sim.vms.create(_spec())
    assert vm.power_state is PowerState.STOPPED
    assert vm.state_since is not None and before - dt.timedelta(seconds=1) <= vm.state_since
    started = sim.vms.start(vm)
    assert started.state_since is not None and started.state_since >= vm.state_since


def test_backends_declare_their_buses_and_models() -> None:
    from hvkit.backends.proxmox.backend import ProxmoxBackend
    from hvkit.backends.sim.backend import SimBackend

    assert DiskBus.NVME not in ProxmoxBackend.traits.disk_buses
    assert ProxmoxBackend.traits.default_disk_bus is DiskBus.SCSI
    assert ProxmoxBackend.traits.disk_export and ProxmoxBackend.traits.disk_import
    assert ProxmoxBackend.traits.limits.problems("proxmox", buses=[DiskBus.IDE] * 5)
    assert SimBackend.traits.nic_models == frozenset(NicModel)
    pytest.importorskip("pyVmomi")
    from hvkit.backends.vmware.backend import VmwareBackend

    traits = VmwareBackend.traits
    assert DiskBus.VIRTIO not in traits.disk_buses and traits.default_nic_model is NicModel.VMXNET3
    assert traits.owns_mac("00:50:56:00:00:01") and not traits.owns_mac("52:54:00:00:00:01")
    assert traits.limits.disks_per_bus[DiskBus.SCSI] == 14  # one controller, unit 7 is its own
