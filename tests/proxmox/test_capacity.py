"""Proxmox through its simulator: a storage with no room is InsufficientCapacity, and nothing is left
(the Proxmox backend makes volumes only as VM disks)."""

from __future__ import annotations

import pytest

from hvkit import errors
from hvkit.hypervisor import Hypervisor
from hvkit.models import DiskSpec, NicSpec, VMSpec
from hvkit.testing.proxmox_sim import ProxmoxSimulator

POOL = "pve1/local"


def _files(sim: ProxmoxSimulator) -> set[str]:
    return {str(p.relative_to(sim.root)) for p in (sim.root / "storage").rglob("*") if p.is_file()}


def test_vm_whose_disk_does_not_fit_is_not_made(sim: ProxmoxSimulator, hv: Hypervisor) -> None:
    vms, files = {v.id for v in hv.vms.list()}, _files(sim)
    free = hv.pools.get(POOL).free_bytes
    spec = VMSpec(
        "px-no-room-vm",
        cpus=1,
        memory_mib=512,
        disks=[DiskSpec(size_gib=0.25, pool="local-lvm"), DiskSpec(size_gib=free / 1024**3 + 1, pool="local")],
        nics=[NicSpec("vmbr0")],
        host="pve1",
    )
    with pytest.raises(errors.InsufficientCapacity, match="no space left"):
        hv.vms.create(spec)
    assert {v.id for v in hv.vms.list()} == vms
    assert _files(sim) == files
