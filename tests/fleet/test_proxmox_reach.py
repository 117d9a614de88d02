"""Proxmox storage reach: the fleet reads the configurations of the VMs a plan moves (the cluster listing
has no disks) and plans again, so no VM goes to a node its storage is not on (storage.cfg "nodes")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import hvkit
from hvkit import DiskSpec, Hypervisor, VMSpec
from hvkit.fleet import Fleet, balance

from ._check import check_plan

pytest.importorskip("proxmoxer")


@pytest.fixture
def pve() -> Iterator[Any]:
    from hvkit.testing.proxmox_sim import ProxmoxSimulator
    from hvkit.testing.proxmox_sim.state import Storage

    with ProxmoxSimulator(nodes=3, task_delay=0.01, lock_timeout=0.5) as sim:
        sim.cluster.storages["san-a"] = Storage(
            "san-a", "nfs", frozenset({"images"}), True, 2**40, ("qcow2", "raw"), nodes=frozenset({"pve1", "pve2"})
        )
        yield sim


def started(hv: Hypervisor, name: str, node: str, memory_mib: int, pool: str) -> None:
    spec = VMSpec(name=name, cpus=1, memory_mib=memory_mib, disks=[DiskSpec(size_gib=0.01, pool=pool)], host=node)
    hv.vms.start(hv.vms.create(spec))


def test_evacuation_sends_vms_only_where_their_storage_is(pve: Any) -> None:
    with hvkit.connect(pve.url, token=pve.token, ca_file=pve.ca_file, timeout=10) as hv:
        started(hv, "on-san", "pve1", 4096, "san-a")  # san-a is on pve1 and pve2 only
        started(hv, "on-shared", "pve1", 4096, "shared")
        started(hv, "busy", "pve2", 30000, "shared")  # pve2 is busier: without reach, both would go to pve3
        fleet = Fleet({"pve": hv})
        listed = {v.name: v for v in fleet.vms()}
        assert not listed["on-san"].disks  # the one-request listing carries no disks
        before = pve.request_count
        plan = fleet.balance(0.9, evacuate=["pve1"])
        assert plan.complete
        where = {m.vm_name: m.target for m in plan.moves}
        assert where == {"on-san": "pve2", "on-shared": "pve3"}
        # only the VMs some plan moved were read in full (one config + status read each, and the plan again)
        reads = [p for _, p in pve.requests[before:] if "/config" in p]
        assert len(reads) <= 2
        built = fleet.host_problem(evacuate=["pve1"])  # with the VMs read in full
        check_plan(built.problem, balance(built.problem, 0.9))
        outcome = fleet.execute(plan)
        assert outcome.error is None, outcome.error
        now = {v.name: v.host for v in hv.vms.list()}
        assert now["on-san"] == "pve2" and now["on-shared"] == "pve3"


def test_the_simulator_refuses_a_node_without_the_storage(pve: Any) -> None:
    with hvkit.connect(pve.url, token=pve.token, ca_file=pve.ca_file, timeout=10) as hv:
        started(hv, "pinned", "pve1", 1024, "san-a")
        with pytest.raises(hvkit.errors.HvkitError, match="not available on node"):
            hv.vms.migrate(hv.vms.get("pinned"), host="pve3", live=True)
