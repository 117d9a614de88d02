"""Xen through the XAPI simulator: no room on an SR or a host is InsufficientCapacity, and nothing is left."""

from __future__ import annotations

import pytest

from hvkit import errors
from hvkit.hypervisor import Hypervisor
from hvkit.models import DiskSpec, NicSpec, PowerState, VMSpec

POOL = "NFS storage"
NET = "Pool-wide network associated with eth0"


def test_volume_past_the_sr_is_insufficient_capacity_and_nothing_is_left(hv: Hypervisor) -> None:
    before = {v.id for v in hv.volumes.list(POOL)}
    free = hv.pools.get(POOL).free_bytes
    with pytest.raises(errors.InsufficientCapacity, match="SR_FULL") as info:
        hv.volumes.create(POOL, "xen-no-room", free / 1024**3 + 1)
    assert type(info.value.__cause__).__name__ == "Failure"
    assert info.value.__cause__.details[0] == "SR_FULL"  # type: ignore[union-attr]
    assert {v.id for v in hv.volumes.list(POOL)} == before
    assert hv.pools.get(POOL).free_bytes == free


def test_vm_whose_disk_does_not_fit_is_not_made(hv: Hypervisor) -> None:
    vms, volumes = {v.id for v in hv.vms.list()}, {v.id for v in hv.volumes.list(POOL)}
    free = hv.pools.get(POOL).free_bytes
    spec = VMSpec(
        name="xen-no-room-vm",
        memory_mib=128,
        disks=[DiskSpec(size_gib=0.01, pool=POOL), DiskSpec(size_gib=free / 1024**3, pool=POOL)],
        nics=[NicSpec(network=NET)],
    )
    with pytest.raises(errors.InsufficientCapacity, match="SR_FULL"):
        hv.vms.create(spec)
    assert {v.id for v in hv.vms.list()} == vms
    assert {v.id for v in hv.volumes.list(POOL)} == volumes
    assert hv.pools.get(POOL).free_bytes == free


def test_start_past_the_hosts_memory_is_insufficient_capacity(hv: Hypervisor, made: list[str]) -> None:
    vm = hv.vms.create(
        VMSpec(name="xen-too-much-ram", memory_mib=512 * 1024, disks=[DiskSpec(size_gib=0.01, pool=POOL)])
    )
    made.append(vm.name)
    with pytest.raises(errors.InsufficientCapacity, match="HOST_NOT_ENOUGH_FREE_MEMORY"):
        hv.vms.start(vm)
    assert hv.vms.get(vm.id).power_state is PowerState.STOPPED
    hv.vms.reconfigure(vm, memory_mib=256)
    assert hv.vms.start(vm).power_state is PowerState.RUNNING
