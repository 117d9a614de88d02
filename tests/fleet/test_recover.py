"""Restart after a host failure on sim: plan (capacity, rules, priorities, storage reach, vendor HA) and run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import hvkit
from hvkit.errors import InvalidSpec, InvalidState
from hvkit.fleet import AntiAffinity, Fleet, plan_recovery
from hvkit.hypervisor import Hypervisor
from hvkit.models import VM, Disk, Host, PowerState, StoragePool
from tests.fleet.test_real_backends import started, vc, vcsim  # noqa: F401 - vcsim fixtures


@pytest.fixture
def hv() -> Iterator[Hypervisor]:
    # 3 hosts of 4 threads and 8 GiB: room is scarce on purpose
    url = f"sim://rec-{uuid.uuid4().hex[:8]}?hosts=3&host_cpus=4&host_memory_mib=8192"
    with hvkit.connect(url) as conn:
        yield conn


def _run(hv: Hypervisor, name: str, host: str, memory_mib: int, *tags: str) -> VM:
    spec = hvkit.VMSpec(name=name, cpus=2, memory_mib=memory_mib, host=host, disks=[hvkit.DiskSpec(size_gib=0.01)],
                        tags=frozenset(tags))  # fmt: skip
    started: VM = hv.vms.start(hv.vms.create(spec))
    return started


def test_recover_restarts_by_priority_keeps_rules_and_reports(hv: Hypervisor) -> None:
    _run(hv, "db", "sim-host-1", 2048, "restart-priority=high", "anti-affinity=db")
    _run(hv, "web", "sim-host-1", 1024)
    _run(hv, "batch", "sim-host-1", 3072, "restart-priority=low")
    _run(hv, "scratch", "sim-host-1", 512, "restart-priority=never")
    _run(hv, "managed", "sim-host-1", 512, "sim-ha")
    stopped = hv.vms.create(hvkit.VMSpec(name="idle", memory_mib=512, host="sim-host-1"))
    _run(hv, "db-replica", "sim-host-2", 1024, "anti-affinity=db")
    _run(hv, "filler", "sim-host-2", 6144)
    _run(hv, "busy", "sim-host-3", 4096)
    fleet = Fleet({"site": hv})
    with pytest.raises(InvalidState, match="is up"):
        fleet.recover("sim-host-1")

    hv.backend.set_host_down("sim-host-1")  # type: ignore[attr-defined]
    assert hv.vms.get("db").power_state is PowerState.UNKNOWN
    assert not hv.hosts.get("sim-host-1").connected

    plan = fleet.recover("sim-host-1", dry_run=True).plan
    assert [r.vm_name for r in plan.restarts] == ["db", "web"]  # high first; batch does not fit after them
    placed = {r.vm_name: r.target_name for r in plan.restarts}
    assert placed == {"db": "sim-host-3", "web": "sim-host-3"}  # db: anti-affinity with db-replica; web: more room
    reasons = {x.vm_name: x.reason for x in plan.left}
    assert "no surviving host has room" in reasons["batch"]
    assert "never" in reasons["scratch"] and "stopped" in reasons["idle"]
    assert [x.vm_name for x in plan.vendor_ha] == ["managed"] and "sim's HA" in plan.vendor_ha[0].reason
    assert hv.vms.get("db").power_state is PowerState.UNKNOWN  # a dry run changes nothing

    steps: list[tuple[str, str]] = []
    result = fleet.recover("sim-host-1", progress=lambda r, what: steps.append((r.vm_name, what)))
    assert [r.vm_name for r in result.restarted] == ["db", "web"] and result.failed == ()
    assert not result.ok  # batch, scratch and idle were not restarted
    assert steps == [("db", "starting"), ("db", "started"), ("web", "starting"), ("web", "started")]
    for name, host in placed.items():
        vm = hv.vms.get(name)
        assert vm.power_state is PowerState.RUNNING and vm.host == hv.hosts.get(host).id
    assert hv.vms.get(stopped.id).power_state is PowerState.STOPPED
    assert hv.vms.get("managed").power_state is PowerState.UNKNOWN  # left to the vendor's HA

    hv.backend.set_host_down("sim-host-1", False)  # type: ignore[attr-defined]
    assert hv.vms.get("db").host == hv.hosts.get(placed["db"]).id  # it does not come back on the old host


def test_recover_rejects_unknown_host_and_bad_priority(hv: Hypervisor) -> None:
    fleet = Fleet({"site": hv})
    with pytest.raises(InvalidSpec, match="no host"):
        fleet.recover("nowhere", assume_down=True)
    _run(hv, "odd", "sim-host-1", 512, "restart-priority=soon")
    with pytest.raises(InvalidSpec, match="a priority is"):
        fleet.recover("sim-host-1", assume_down=True, dry_run=True)


def test_a_failed_restart_is_reported_and_the_rest_go_on(hv: Hypervisor, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(hv, "first", "sim-host-1", 1024, "restart-priority=high")
    _run(hv, "second", "sim-host-1", 1024)
    hv.backend.set_host_down("sim-host-1")  # type: ignore[attr-defined]
    real = hv.backend.recover_vm  # type: ignore[attr-defined]

    def flaky(vm: VM, host: str) -> Any:
        if vm.name == "first":
            raise InvalidState("the target refused")
        return real(vm, host)

    monkeypatch.setattr(hv.backend, "recover_vm", flaky)
    result = Fleet({"site": hv}).recover("sim-host-1")
    assert [r.vm_name for r in result.restarted] == ["second"]
    assert [x.vm_name for x in result.failed] == ["first"] and "the target refused" in result.failed[0].reason
    assert hv.vms.get("second").power_state is PowerState.RUNNING


def _host(name: str, memory_mib: int = 8192, connected: bool = True) -> Host:
    return Host(name, name, 1, 8, 8, memory_mib, "m", connected=connected, hypervisor="m")


def _vm(name: str, host: str, pool: str, memory_mib: int = 1024, **kw: Any) -> VM:
    disk = Disk("d0", 1 << 30, pool=pool)
    return VM(name, name, kw.pop("state", PowerState.UNKNOWN), 2, memory_mib, disks=(disk,), host=host,
              hypervisor="m", **kw)  # fmt: skip


def test_plan_needs_storage_other_hosts_reach() -> None:
    pools = [
        StoragePool("shared", "shared", 1 << 40, 1 << 39, shared=True, hypervisor="m"),
        StoragePool("local-a", "local-a", 1 << 40, 1 << 39, shared=False, host="a", hypervisor="m"),
        StoragePool("san", "san", 1 << 40, 1 << 39, shared=True, hosts=frozenset({"a", "c"}), hypervisor="m"),
    ]
    hosts = [_host("a", connected=False), _host("b"), _host("c")]
    vms = [_vm("on-shared", "a", "shared"), _vm("on-local", "a", "local-a"), _vm("on-san", "a", "san")]
    plan = plan_recovery(hosts[0], hosts, vms, pools, [AntiAffinity({"on-shared", "on-san"})])
    placed = {r.vm_name: r.target for r in plan.restarts}
    assert placed["on-san"] == "c"  # only c mounts the SAN besides the failed host
    assert placed["on-shared"] == "b"  # anti-affinity with on-san, which went to c
    assert [(x.vm_name, "no surviving host reaches" in x.reason) for x in plan.left] == [("on-local", True)]
    with pytest.raises(InvalidSpec):
        plan_recovery(hosts[0], hosts, vms, pools, cpu_overcommit=0)


def test_cli_fleet_recover(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from hvkit.cli import main

    url = f"sim://cli-rec-{uuid.uuid4().hex[:6]}?state_dir={tmp_path}&hosts=2"
    with hvkit.connect(url) as hv:
        _run(hv, "app", "sim-host-1", 1024)
        hv.backend.set_host_down("sim-host-1")  # type: ignore[attr-defined]
    assert main(["fleet", "recover", "sim-host-1", "-m", f"site={url}", "--dry-run"]) == 0
    assert "restart app on sim-host-2" in capsys.readouterr().out
    assert main(["fleet", "recover", "sim-host-1", "-m", f"site={url}", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["vm_name"] for r in out["restarted"]] == ["app"] and out["failed"] == []
    with hvkit.connect(url) as hv:
        assert hv.vms.get("app").power_state is PowerState.RUNNING
    assert main(["fleet", "recover", "sim-host-2", "-m", f"site={url}"]) == 4  # it is up: InvalidState


def test_a_backend_without_recover_vm_says_so(hv: Hypervisor, monkeypatch: pytest.MonkeyPatch) -> None:
    from hvkit.backend import Backend
    from hvkit.errors import Unsupported

    _run(hv, "lonely", "sim-host-1", 512)
    hv.backend.set_host_down("sim-host-1")  # type: ignore[attr-defined]
    monkeypatch.setattr(type(hv.backend), "recover_vm", Backend.recover_vm)
    monkeypatch.setattr(type(hv.backend), "ha_policy", Backend.ha_policy)
    fleet = Fleet({"site": hv})
    assert [r.vm_name for r in fleet.recover("sim-host-1", dry_run=True).plan.restarts] == ["lonely"]
    with pytest.raises(Unsupported, match=r"fleet\.recover"):
        fleet.recover("sim-host-1")
    assert hv.vms.get("lonely").power_state is PowerState.UNKNOWN


def test_proxmox_ha_resources_are_left_to_proxmox_ha() -> None:
    """On the Proxmox simulator: a node goes offline; its HA-managed VM is Proxmox HA's, the other one is
    planned on a node that reaches its storage; running the plan while the node is online restarts nothing
    (Proxmox HA recovers only from an offline node). The restart itself is in test_recover_proxmox.py."""
    pytest.importorskip("proxmoxer")
    from hvkit.testing.proxmox_sim import ProxmoxSimulator

    with (
        ProxmoxSimulator(nodes=3, task_delay=0.0) as sim,
        hvkit.connect(sim.url, token=sim.token, ca_file=sim.ca_file, timeout=10) as hv,
    ):
        made = []
        for name in ("guarded", "plain", "local-only"):
            pool = "local" if name == "local-only" else "shared"
            spec = hvkit.VMSpec(
                name=name, memory_mib=512, host="pve1", disks=[hvkit.DiskSpec(size_gib=0.01, pool=pool)]
            )
            made.append(hv.vms.start(hv.vms.create(spec)))
        hv.backend.api.cluster.ha.resources.post(sid=f"vm:{made[0].id}", state="started", max_relocate=2)  # type: ignore[attr-defined]
        assert hv.backend.ha_policy([made[1]]) == {}
        sim.cluster.node_offline.add("pve1")
        fleet = Fleet({"pve": hv})
        plan = fleet.recover("pve1", dry_run=True).plan
        assert [x.vm_name for x in plan.vendor_ha] == ["guarded"]
        assert "Proxmox HA fences node pve1 and starts it on another node" in plan.vendor_ha[0].reason
        assert "max_relocate 2" in plan.vendor_ha[0].reason
        # the API reads no configuration of a VM on an offline node: its disks come from the shared storages
        assert [(r.vm_name, "cannot be seen" in r.warning) for r in plan.restarts] == [("plain", True)]
        assert [(x.vm_name, "own storage" in x.reason) for x in plan.left] == [("local-only", True)]
        sim.cluster.node_offline.discard("pve1")
        with pytest.raises(InvalidState, match="is up"):
            fleet.recover("pve1")
        plan = fleet.recover("pve1", assume_down=True, dry_run=True).plan  # fenced, while the API still reads it
        assert [r.vm_name for r in plan.restarts] == ["plain"] and plan.restarts[0].target_name in ("pve2", "pve3")
        assert [(x.vm_name, "no surviving host reaches" in x.reason) for x in plan.left] == [("local-only", True)]
        result = fleet.recover("pve1", assume_down=True)
        assert [("is online; migrate the VM instead" in x.reason) for x in result.failed] == [True]


def test_vsphere_ha_off_in_vcsim_leaves_the_vms_to_hvkit(vc: tuple[Hypervisor, list[str]]) -> None:  # noqa: F811
    """vcsim's cluster has HA off (vcsim does not apply dasConfig): ha_policy reports nothing, hvkit plans
    both VMs; the run, with the host still connected to vCenter, restarts none (each says so).
    The restart itself is in test_recover_vmware.py."""
    hv, made = vc
    host = sorted(hv.hosts.list(), key=lambda h: h.name)[0].name
    started(hv, made, "ha-a", host, 1, 256)
    started(hv, made, "ha-b", host, 1, 256)
    fleet = Fleet({"vc": hv})
    plan = fleet.recover(host, assume_down=True, dry_run=True).plan
    assert plan.vendor_ha == () and sorted(r.vm_name for r in plan.restarts) == ["ha-a", "ha-b"]
    assert all(r.target_name != host for r in plan.restarts)
    result = fleet.recover(host, assume_down=True)
    assert result.restarted == () and len(result.failed) == 2
    assert all("is connected; migrate the VM instead" in x.reason for x in result.failed)
    assert {v.name: v.host for v in hv.vms.list() if v.name in ("ha-a", "ha-b")} == {"ha-a": host, "ha-b": host}


def test_vsphere_ha_policy_reads_cluster_settings() -> None:
    """The vSphere HA reading, on pyVmomi's own data objects as a vCenter returns them: HA on with default
    priority high; one VM's override ``disabled``; a VM on a host of no HA cluster."""
    pytest.importorskip("pyVmomi")
    from pyVmomi import vim

    from hvkit.backends.vmware._ha import ha_policy

    config = vim.cluster.ConfigInfoEx(
        dasConfig=vim.cluster.DasConfigInfo(
            enabled=True, defaultVmSettings=vim.cluster.DasVmSettings(restartPriority="high")
        ),
        dasVmConfig=[
            vim.cluster.DasVmConfigInfo(
                key=vim.VirtualMachine("vm-2"), dasSettings=vim.cluster.DasVmSettings(restartPriority="disabled")
            )
        ],
    )
    props = {"name": "C1", "host": [vim.HostSystem("host-1")], "configurationEx": config}

    class Session:
        is_vcenter = True
        dc = None

        class pc:  # the session's property collector
            @staticmethod
            def collect(root: Any, wanted: Any) -> list[tuple[Any, dict[str, Any]]]:
                assert list(wanted) == [vim.ClusterComputeResource]
                return [(vim.ClusterComputeResource("domain-c1"), props)]

    def vm(ident: str, host_id: str) -> VM:
        return VM(ident, ident, PowerState.UNKNOWN, 1, 256, host="h", extra={"host_id": host_id})

    found = ha_policy(Session(), [vm("vm-1", "host-1"), vm("vm-2", "host-1"), vm("vm-3", "host-9")])
    assert found == {"vm-1": "vSphere HA of cluster C1 restarts it on another host (restart priority high)"}
    config.dasConfig.enabled = False
    assert ha_policy(Session(), [vm("vm-1", "host-1")]) == {}
