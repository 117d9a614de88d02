"""Restart after a node failure on Proxmox VE (the simulator, PVE 9.1's API schema): the VM is handed to
Proxmox's HA manager, restricted to the chosen node by a strict node-affinity rule; the simulator's HA
manager fences the offline node, moves the VM's configuration and starts it (see its ``_ha_manager``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import hvkit
from hvkit.errors import BackendError, InvalidState, Timeout
from hvkit.fleet import Fleet
from hvkit.hypervisor import Hypervisor
from hvkit.models import VM, PowerState

pytest.importorskip("proxmoxer")
from hvkit.testing.proxmox_sim import ProxmoxSimulator

FENCE_DELAY = 0.4  # seconds offline before the simulated CRM fences a node (PVE: 60 s and the agent lock)


@pytest.fixture
def pve() -> Iterator[tuple[ProxmoxSimulator, Hypervisor]]:
    with (
        ProxmoxSimulator(nodes=3, task_delay=0.0) as sim,
        hvkit.connect(sim.url, token=sim.token, ca_file=sim.ca_file, timeout=10) as hv,
    ):
        sim.cluster.ha_fence_delay = FENCE_DELAY
        yield sim, hv


def _running(hv: Hypervisor, name: str, node: str, pool: str = "shared") -> VM:
    spec = hvkit.VMSpec(name=name, memory_mib=512, host=node, disks=[hvkit.DiskSpec(size_gib=0.01, pool=pool)])
    return hv.vms.get(hv.vms.start(hv.vms.create(spec)).id)


def _ha(hv: Hypervisor) -> tuple[list[Any], list[Any]]:
    api: Any = hv.backend.api  # type: ignore[attr-defined]
    return list(api.cluster.ha.resources.get()), list(api.cluster.ha.rules.get())


def _writes(sim: ProxmoxSimulator) -> list[tuple[str, str]]:
    return [(m, p) for m, p in sim.requests if m in ("POST", "PUT", "DELETE")]


def test_recover_vm_starts_the_vm_on_the_chosen_node_through_proxmox_ha(
    pve: tuple[ProxmoxSimulator, Hypervisor],
) -> None:
    sim, hv = pve
    before = _running(hv, "plain", "pve1")
    _running(hv, "busy", "pve3")  # the CRM's own pick would be the least loaded node, pve2
    sim.cluster.node_offline.add("pve1")
    sim.requests.clear()
    began = time.monotonic()
    after = hv.backend.recover_vm(before, "pve3").wait(30)
    assert time.monotonic() - began >= FENCE_DELAY  # the manager waited for the fence
    assert isinstance(after, VM)
    assert (after.id, after.name, after.host, after.power_state) == (before.id, "plain", "pve3", PowerState.RUNNING)
    assert [(d.name, d.pool, d.size_bytes) for d in after.disks] == [
        (d.name, d.pool, d.size_bytes) for d in before.disks
    ]
    sid = f"vm:{before.id}"
    writes = _writes(sim)
    assert writes[:3] == [
        ("POST", "/cluster/ha/resources"),
        ("POST", "/cluster/ha/rules"),
        ("PUT", f"/cluster/ha/resources/{sid}"),
    ]
    assert ("DELETE", f"/cluster/ha/resources/{sid}") in writes
    assert _ha(hv) == ([], [])  # no more an HA resource than before; the VM keeps running
    assert hv.vms.get(before.id).power_state is PowerState.RUNNING


def test_a_vm_whose_disks_stay_on_the_failed_node_fails_and_the_ha_entries_go(
    pve: tuple[ProxmoxSimulator, Hypervisor],
) -> None:
    """Proxmox HA moves the configuration, then the start fails (its disk is on pve1's local storage):
    the error says where the VM is now, and the HA resource and rule made for it are removed."""
    sim, hv = pve
    vm = _running(hv, "local-only", "pve1", pool="local")
    sim.cluster.node_offline.add("pve1")
    with pytest.raises(BackendError, match=r"error state.*Proxmox HA had moved the VM to pve2 \(stopped\)"):
        hv.backend.recover_vm(vm, "pve2").wait(30)
    assert _ha(hv) == ([], [])


@pytest.mark.parametrize("case", ["node up", "target down", "no quorum", "already HA"])
def test_recover_vm_refuses_before_changing_anything(pve: tuple[ProxmoxSimulator, Hypervisor], case: str) -> None:
    sim, hv = pve
    vm = _running(hv, "vm1", "pve1")
    api: Any = hv.backend.api  # type: ignore[attr-defined]
    target, expected = "pve2", "is online; migrate the VM instead"
    if case == "target down":
        sim.cluster.node_offline.update({"pve1", "pve2"})
        sim.cluster.nodes.append("pve4")  # 2 of 4 offline: no quorum either, but the target is checked first
        expected = "node 'pve2' is not online"
    elif case == "no quorum":
        sim.cluster.node_offline.update({"pve1", "pve3"})
        expected = "no quorum"
    elif case == "already HA":
        api.cluster.ha.resources.post(sid=f"vm:{vm.id}", state="disabled")
        sim.cluster.node_offline.add("pve1")
        expected = "already a Proxmox HA resource \\(state disabled\\)"
    sim.requests.clear()
    with pytest.raises(InvalidState, match=expected):
        hv.backend.recover_vm(vm, target)
    assert _writes(sim) == []


def test_a_recovery_that_times_out_removes_what_it_made(pve: tuple[ProxmoxSimulator, Hypervisor]) -> None:
    sim, hv = pve
    sim.cluster.ha_fence_delay = 3600.0  # the manager never gets to fence within the wait
    vm = _running(hv, "slow", "pve1")
    sim.cluster.node_offline.add("pve1")
    with pytest.raises(Timeout):
        hv.run("vms.recover", vm.name, lambda: hv.backend.recover_vm(vm, "pve2"), wait=True, timeout=0.5)
    assert _ha(hv) == ([], [])
    assert [(e["vmid"], e["node"]) for e in api_vms(hv)] == [(int(vm.id), "pve1")]


def api_vms(hv: Hypervisor) -> list[Any]:
    api: Any = hv.backend.api  # type: ignore[attr-defined]
    return list(api.cluster.resources.get(type="vm"))


def test_an_ha_managed_vm_is_left_to_proxmox_ha_which_recovers_it(pve: tuple[ProxmoxSimulator, Hypervisor]) -> None:
    sim, hv = pve
    guarded = _running(hv, "guarded", "pve1")
    plain = _running(hv, "plain", "pve1")
    api: Any = hv.backend.api  # type: ignore[attr-defined]
    api.cluster.ha.resources.post(sid=f"vm:{guarded.id}", state="started")
    api.cluster.ha.rules.post(type="node-affinity", rule="prefer_pve3", resources=f"vm:{guarded.id}", nodes="pve3")
    sim.cluster.node_offline.add("pve1")
    with Fleet({"pve": hv}) as fleet:
        plan = fleet.recover("pve1", dry_run=True).plan
    assert [x.vm_name for x in plan.vendor_ha] == ["guarded"] and plan.left == ()
    # the API reads no configuration of a VM on an offline node: plain's disk was found on shared storage
    assert [(r.vm_name, "cannot be seen" in r.warning) for r in plan.restarts] == [("plain", True)]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # Proxmox HA fences pve1 and starts guarded on its rule's node
        where = {e["vmid"]: (e["node"], e["status"]) for e in api_vms(hv)}
        if where[int(guarded.id)] == ("pve3", "running"):
            break
        time.sleep(0.05)
    assert where[int(guarded.id)] == ("pve3", "running")
    assert where[int(plain.id)][0] == "pve1"  # not HA's: left where it was
    status = {e["id"]: e for e in api.cluster.ha.status.current.get()}
    assert status[f"service:vm:{guarded.id}"]["crm_state"] == "started"
    assert "dead?" in status["lrm:pve1"]["status"] and status["quorum"]["quorate"] == 1


def test_the_simulated_ha_api_checks_what_pve_checks(pve: tuple[ProxmoxSimulator, Hypervisor]) -> None:
    from proxmoxer.core import ResourceException

    _, hv = pve
    vm = _running(hv, "vm1", "pve1")
    api: Any = hv.backend.api  # type: ignore[attr-defined]
    sid = f"vm:{vm.id}"
    with pytest.raises(ResourceException, match="cannot use unmanaged resource"):
        api.cluster.ha.rules.post(type="node-affinity", rule="r1", resources=sid, nodes="pve2")
    api.cluster.ha.resources.post(sid=sid, state="ignored")
    with pytest.raises(ResourceException, match="Parameter verification failed"):  # the schema's boolean
        api.cluster.ha.rules.post(type="node-affinity", rule="r1", resources=sid, nodes="pve2", strict="maybe")
    with pytest.raises(ResourceException, match="non-existent node"):
        api.cluster.ha.rules.post(type="node-affinity", rule="r1", resources=sid, nodes="pve9")
    api.cluster.ha.rules.post(type="node-affinity", rule="r1", resources=sid, nodes="pve2:2,pve3", strict=1)
    with pytest.raises(ResourceException, match="already defined"):
        api.cluster.ha.rules.post(type="node-affinity", rule="r1", resources=sid, nodes="pve2")
    assert api.cluster.ha.rules("r1").get()["nodes"] == "pve2:2,pve3"
    api.cluster.ha.resources(vm.id).delete()  # the vmid shortcut; purge drops the rule it was alone in
    assert _ha(hv) == ([], [])
    with pytest.raises(ResourceException, match="not HA managed"):
        api.cluster.ha.resources(sid).delete()


def test_fleet_recover_on_a_node_the_api_still_shows_online(pve: tuple[ProxmoxSimulator, Hypervisor]) -> None:
    """``assume_down`` plans from the configurations, but Proxmox HA recovers only from an offline node:
    each restart fails with the reason, and nothing changed."""
    _, hv = pve
    _running(hv, "plain", "pve1")
    with Fleet({"pve": hv}) as fleet:
        result = fleet.recover("pve1", assume_down=True)
    assert [r.vm_name for r in result.plan.restarts] == ["plain"]
    assert [("is online; migrate the VM instead" in x.reason) for x in result.failed] == [True]
    assert _ha(hv) == ([], []) and [e["node"] for e in api_vms(hv)] == ["pve1"]


def _vm(hv: Hypervisor, name: str, node: str, pools: list[str]) -> VM:
    disks = [hvkit.DiskSpec(size_gib=0.01, pool=p) for p in pools]
    return hv.vms.get(hv.vms.start(hv.vms.create(hvkit.VMSpec(name=name, memory_mib=512, host=node, disks=disks))).id)


def test_a_vm_of_an_offline_node_is_read_with_its_disks_on_shared_storage(
    pve: tuple[ProxmoxSimulator, Hypervisor],
) -> None:
    """PVE proxies a VM's config read to its node; for an offline node the VM comes from the cluster
    listing and its volumes from the shared storages' listings, read through a node that is online."""
    sim, hv = pve
    both = _vm(hv, "both", "pve1", ["shared", "local", "shared"])
    _vm(hv, "local-only", "pve1", ["local-lvm"])
    _vm(hv, "elsewhere", "pve2", ["shared"])
    sim.cluster.node_offline.add("pve1")
    sim.requests.clear()
    read = hv.vms.get(both.id)
    shared_before = sorted(str(d.volume) for d in both.disks if d.pool == "shared")
    assert sorted(str(d.volume) for d in read.disks) == shared_before and len(shared_before) == 2
    assert all(d.size_bytes >= 0.01 * 2**30 for d in read.disks)  # the volume's size, as the storage lists it
    assert {d.pool for d in read.disks} == {"shared"} and read.power_state is PowerState.RUNNING
    assert read.extra["disks_from"] == "shared storage; the node's config is unreachable"
    contents = [p for m, p in sim.requests if p.endswith("/content")]
    assert contents == ["/nodes/pve2/storage/shared/content"]  # one per shared storage, via an online node
    # the bulk read lists each shared storage once whatever the number of VMs
    sim.requests.clear()
    listed = {v.name: v for v in hv.vms.list(detail=True)}
    assert [p for m, p in sim.requests if p.endswith("/content")] == ["/nodes/pve2/storage/shared/content"]
    assert [d.volume for d in listed["both"].disks] == [d.volume for d in read.disks]
    assert listed["local-only"].disks == () and "disks_from" in listed["local-only"].extra
    assert "disks_from" not in listed["elsewhere"].extra and len(listed["elsewhere"].disks) == 1
    sim.cluster.node_offline.clear()
    assert "disks_from" not in hv.vms.get(both.id).extra and len(hv.vms.get(both.id).disks) == 3


def test_fleet_recover_restarts_vms_of_an_offline_node_from_shared_storage(
    pve: tuple[ProxmoxSimulator, Hypervisor],
) -> None:
    """End to end through the fleet: the VM on shared storage runs again on a surviving node; the VM with
    no disk on shared storage is left out with the reason; the VM with a disk on the dead node's own
    storage too is planned with the warning, and its start fails with Proxmox HA's reason."""
    sim, hv = pve
    web = _vm(hv, "web", "pve1", ["shared"])
    _vm(hv, "local-only", "pve1", ["local-lvm"])
    mixed = _vm(hv, "mixed", "pve1", ["shared", "local"])
    sim.cluster.node_offline.add("pve1")
    with Fleet({"pve": hv}) as fleet:
        result = fleet.recover("pve1", timeout=30)
    plan = result.plan
    assert sorted(r.vm_name for r in plan.restarts) == ["mixed", "web"]
    assert all("own storage cannot be seen" in r.warning for r in plan.restarts)
    assert "warning: disks read from: shared storage; the node's config is unreachable. A disk" in str(plan)
    assert [(x.vm_name, "no disk of it was found (disks read from: shared storage" in x.reason) for x in plan.left] == [
        ("local-only", True)
    ]
    assert [r.vm_name for r in result.restarted] == ["web"]
    assert [x.vm_name for x in result.failed] == ["mixed"]
    assert "Proxmox HA could not start VM 'mixed'" in result.failed[0].reason
    assert not result.ok
    now = hv.vms.get(web.id)
    target = next(r.target for r in plan.restarts if r.vm_name == "web")
    assert (now.host, now.power_state) == (target, PowerState.RUNNING) and target != "pve1"
    assert [d.volume for d in now.disks] == [d.volume for d in web.disks]
    assert _ha(hv) == ([], [])
    where = {e["vmid"]: e["node"] for e in api_vms(hv)}
    assert where[int(mixed.id)] != "pve1"  # Proxmox HA moved its configuration before the start failed


def test_after_the_offline_nodes_figures_expired_the_vms_are_still_recovered(
    pve: tuple[ProxmoxSimulator, Hypervisor],
) -> None:
    """PVE keeps an offline node's last VM figures 5 minutes (pmxcfs' RRD cache); then /cluster/resources
    lists its VMs with status "unknown" and no name, CPUs or memory. hvkit names them by vmid, plans them
    with the warning that their size and former state are unknown, and restarts them."""
    sim, hv = pve
    sim.cluster.stats_expire = 0.0
    web = _vm(hv, "web", "pve1", ["shared"])
    sim.cluster.node_offline.add("pve1")
    (entry,) = api_vms(hv)
    assert entry == {"id": f"qemu/{web.id}", "type": "qemu", "vmid": int(web.id), "node": "pve1", "status": "unknown"}
    seen = hv.vms.get(web.id)
    assert (seen.name, seen.power_state, seen.memory_mib) == (f"VM {web.id}", PowerState.UNKNOWN, 0)
    assert [d.volume for d in seen.disks] == [d.volume for d in web.disks]
    with Fleet({"pve": hv}) as fleet:
        result = fleet.recover("pve1", timeout=30)
    (restart,) = result.restarted
    assert "state before the failure are unknown" in restart.warning and "cannot be seen" in restart.warning
    now = hv.vms.get(web.id)
    assert (now.name, now.host, now.power_state, now.memory_mib) == ("web", restart.target, PowerState.RUNNING, 512)
