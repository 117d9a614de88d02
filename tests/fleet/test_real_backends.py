"""Fleet plans run on real backends that allow moves: vcsim (``RelocateVM_Task``) and the Proxmox simulator.

Each test builds a real imbalance (VMs created and started on one host), plans with the Fleet, checks
the plan with the independent checker (``_check.check_plan``) on the same problem, runs it with
``fleet.execute`` (``hv.vms.migrate``), and then reads the backend again, without the fleet code, to
verify that every running VM sits where the plan predicted and that no host is over the target.

Load is the *allocated* demand (vCPUs and memory of running VMs): that is what both simulators really
hold. Their "measured" figures are synthetic (vcsim's performance manager returns random samples, e.g.
9981 MiB used by a 4096 MiB VM; the Proxmox simulator reports 256 MiB and 5% CPU for every running
VM), so balancing on measured demand is not exercised here.

KVM is in ``tests/kvm/test_migrate.py`` (``test_fleet_balances_and_evacuates_across_two_libvirt_hosts``),
beside the namespaced libvirt daemons it needs: a kvm connection with ``peers`` is one cluster, so the
Fleet plans moves between its daemons as between the hosts of a vCenter.
"""

from __future__ import annotations

import contextlib
import shutil
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

import hvkit
from hvkit import DiskSpec, Hypervisor, VMSpec
from hvkit.errors import HvkitError, InvalidState
from hvkit.fleet import AntiAffinity, Fleet, PlacementPlan, Rule, balance, consolidate
from hvkit.fleet._build import CONSUMING

from ._check import check_plan

CPU_OVERCOMMIT = 4.0  # the Fleet's default for allocated demand


# -- helpers shared by the backends ----------------------------------------------------------------
def checked_balance(
    fleet: Fleet, target: float, rules: Iterable[Rule] = (), evacuate: Iterable[str] = ()
) -> PlacementPlan:
    """The Fleet's balance plan, after the independent checker replayed it on the same problem."""
    rules, evacuate = list(rules), list(evacuate)
    public = fleet.balance(target, rules, evacuate=evacuate)  # reads the VMs it moves in full where needed
    built = fleet.host_problem(rules, evacuate=evacuate)  # with those VMs as read
    raw = balance(built.problem, target)
    check_plan(built.problem, raw)
    plan = built.dress(raw)
    assert plan == public  # what the public API plans too
    return plan


def checked_consolidation(fleet: Fleet, headroom: float) -> PlacementPlan:
    fleet.consolidate(headroom)  # reads the VMs it moves in full where needed
    built = fleet.host_problem()
    check_plan(built.problem, consolidate(built.problem, headroom))
    plan = fleet.consolidate(headroom)
    assert [(m.vm, m.target) for m in plan.moves] == [
        (m.vm, m.target) for m in built.dress(consolidate(built.problem, headroom)).moves
    ]
    return plan


def predicted(plan: PlacementPlan) -> dict[str, str]:
    """The plan's final placement as VM id -> host id."""
    return {vm.split("#", 1)[1]: host.split("#", 1)[1] for vm, host in plan.placement.items()}


def run(fleet: Fleet, plan: PlacementPlan) -> list[str]:
    steps: list[str] = []
    outcome = fleet.execute(plan, progress=lambda s: steps.append(s.status))
    assert outcome.ok, f"{outcome.failed} failed: {outcome.error}"
    assert outcome.done == plan.moves and steps.count("done") == len(plan.moves)
    return steps


def verify_real(hv: Hypervisor, plan: PlacementPlan, target: float) -> dict[str, str]:
    """Read the backend again (not through the fleet) and compare with the plan; return VM name -> host id."""
    hosts = hv.hosts.list()
    host_id = {h.name: h.id for h in hosts} | {h.id: h.id for h in hosts}
    vms = [v for v in hv.vms.list() if v.power_state in CONSUMING and not v.template]
    actual = {v.id: host_id[str(v.host)] for v in vms}
    assert actual == predicted(plan)
    for h in hosts:
        mine = [v for v in vms if host_id[str(v.host)] == h.id]
        memory, cpus = sum(v.memory_mib for v in mine), sum(v.cpus for v in mine)
        assert memory <= h.memory_mib * target, f"{h.name}: {memory} MiB of {h.memory_mib} over {target}"
        assert cpus <= h.cpu_threads * CPU_OVERCOMMIT * target, f"{h.name}: {cpus} vCPUs over {target}"
    return {v.name: host_id[str(v.host)] for v in vms}


def delete_all(hv: Hypervisor, names: list[str]) -> None:
    for name in reversed(names):
        with contextlib.suppress(HvkitError):
            hv.vms.delete(name, force=True)


# -- VMware: vcsim in vCenter mode, one cluster of three hosts -------------------------------------
@pytest.fixture(scope="module")
def vcsim() -> Iterator[Any]:
    pytest.importorskip("pyVmomi")
    if shutil.which("go") is None:
        pytest.skip("vcsim needs the Go compiler: see scripts/setup.d/30-vmware.packages")
    from hvkit.testing.vcsim import Vcsim, VcsimConfig, VcsimError

    # No standalone host and no pre-made VMs: every host is in the one cluster (a vMotion domain), and
    # the only load is what the tests create.
    config = VcsimConfig(esx=False, cluster_hosts=3, standalone_hosts=0, vms=0, password="Fleet-pa55word")
    sim = Vcsim(config)
    try:
        try:
            sim.start()
        except VcsimError as exc:  # a start that failed halfway may have left its process and files: stop below
            pytest.skip(f"vcsim could not be built or started: {exc}")
        yield sim
    finally:
        sim.stop()  # whatever the outcome: the daemon and its certificate folder go


@pytest.fixture
def vc(vcsim: Any) -> Iterator[tuple[Hypervisor, list[str]]]:
    """A vCenter connection and the names of the VMs a test makes (removed even when the test fails)."""
    made: list[str] = []
    with hvkit.connect(vcsim.url, password=vcsim.password, ca_file=vcsim.cert_file) as hv:
        try:
            yield hv, made
        finally:
            delete_all(hv, made)


@contextlib.contextmanager
def vsphere_maintenance(sim: Any, host_name: str) -> Iterator[None]:
    """Put a host in maintenance mode through pyVmomi (hvkit has no call for it), and take it out after.

    vcsim enters maintenance at once, VMs and all; a real vCenter's task waits until the host's
    running VMs are gone (DRS moves them) -- which is what the evacuation plan does here.
    """
    from pyVim.connect import Disconnect, SmartConnect
    from pyVmomi import vim

    si = SmartConnect(  # type: ignore[no-untyped-call]
        host=sim.host,
        port=sim.port,
        user=sim.username,
        pwd=sim.password,
        sslContext=ssl.create_default_context(cafile=sim.cert_file),
    )

    def task_done(task: Any) -> None:
        deadline = time.monotonic() + 30
        while task.info.state not in ("success", "error"):
            assert time.monotonic() < deadline, "vSphere maintenance task did not finish"
            time.sleep(0.05)
        assert task.info.state == "success", task.info.error

    try:
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
        host = next(h for h in view.view if h.name == host_name)
        view.DestroyView()
        task_done(host.EnterMaintenanceMode_Task(timeout=0))
        try:
            yield
        finally:
            task_done(host.ExitMaintenanceMode_Task(timeout=0))
    finally:
        Disconnect(si)  # type: ignore[no-untyped-call]


def started(hv: Hypervisor, made: list[str], name: str, host: str, cpus: int, memory_mib: int, **kw: Any) -> None:
    made.append(name)
    hv.vms.create(VMSpec(name=name, cpus=cpus, memory_mib=memory_mib, host=host, **kw))
    hv.vms.start(name)


def test_vcsim_balance_then_evacuate_a_host_in_maintenance(vc: tuple[Hypervisor, list[str]], vcsim: Any) -> None:
    hv, made = vc
    hosts = sorted(hv.hosts.list(), key=lambda h: h.name)
    assert len(hosts) == 3 and all(h.memory_mib >= 4000 for h in hosts)  # vcsim: 2 threads, 4095 MiB each
    first = hosts[0]
    for i in range(5):  # 5 x 640 MiB = 3200 MiB on one host: 78% of its memory
        started(hv, made, f"fl-v{i}", first.name, cpus=1, memory_mib=640)
    rules: list[Rule] = [AntiAffinity({"fl-v0", "fl-v1"})]
    fleet = Fleet({"vc": hv})
    target = 0.5  # 2047 MiB: at most 3 of these VMs per host

    plan = checked_balance(fleet, target, rules)
    assert plan.complete and len(plan.moves) == 2  # the fewest: the host must shed two VMs
    assert all(m.source == first.id and m.kind == "host" and m.hypervisor == "vc" for m in plan.moves)
    assert plan.before[f"vc#{first.id}"][1] > target
    run(fleet, plan)
    now = verify_real(hv, plan, target)
    assert now["fl-v0"] != now["fl-v1"]
    assert checked_balance(fleet, target, rules).moves == ()  # a fresh plan on the new state: nothing to do

    # maintenance: the host holding the most VMs goes in; the plan empties it, still under the target
    busiest = max(hosts, key=lambda h: sum(1 for host in now.values() if host == h.id))
    staying = sum(1 for host in now.values() if host == busiest.id)
    with vsphere_maintenance(vcsim, busiest.name):
        fleet.refresh()
        assert [h.name for h in fleet.hosts(maintenance=True)] == [busiest.name]
        with pytest.raises(InvalidState):  # hvkit itself refuses to move a VM onto it
            hv.vms.migrate(next(n for n, h in now.items() if h != busiest.id), host=busiest.name)
        plan = checked_balance(fleet, target, rules)
        assert plan.complete and len(plan.moves) == staying
        assert {m.reason for m in plan.moves} == {"maintenance"} and {m.source for m in plan.moves} == {busiest.id}
        run(fleet, plan)
        now = verify_real(hv, plan, target)
        assert busiest.id not in now.values() and now["fl-v0"] != now["fl-v1"]


def test_vcsim_consolidation_frees_hosts(vc: tuple[Hypervisor, list[str]]) -> None:
    hv, made = vc
    hosts = sorted(hv.hosts.list(), key=lambda h: h.name)
    for i, h in enumerate(hosts):  # one small VM per host: all fit on one host under 80%
        started(hv, made, f"fl-c{i}", h.name, cpus=1, memory_mib=512)
    fleet = Fleet({"vc": hv})
    plan = checked_consolidation(fleet, 0.8)
    assert plan.bins_used == 1 and len(plan.freed) == 2 and len(plan.moves) == 2
    run(fleet, plan)
    now = verify_real(hv, plan, 0.8)
    assert len(set(now.values())) == 1


# -- Proxmox: the API simulator, three nodes ---------------------------------------------------------
@pytest.fixture(scope="module")
def pve() -> Iterator[Any]:
    pytest.importorskip("proxmoxer")
    from hvkit.testing.proxmox_sim import ProxmoxSimulator

    with ProxmoxSimulator(nodes=3, task_delay=0.01, lock_timeout=0.5) as sim:
        yield sim


@pytest.fixture
def px(pve: Any) -> Iterator[tuple[Hypervisor, list[str]]]:
    made: list[str] = []
    with hvkit.connect(pve.url, token=pve.token, ca_file=pve.ca_file, timeout=10) as hv:
        try:
            yield hv, made
        finally:
            delete_all(hv, made)


def disk_files(pve: Any, hv: Hypervisor, name: str) -> Callable[[str], bool]:
    """Whether the VM's disk images exist in a node's local storage directory (the simulator keeps real files)."""
    vm = hv.vms.get(name)
    volids = [str(d.volume) for d in vm.disks]
    assert volids

    def on(node: str) -> bool:
        return all(pve.cluster.volume_path(node, v).exists() for v in volids)

    return on


def test_proxmox_balance_then_evacuate_a_node(px: tuple[Hypervisor, list[str]], pve: Any) -> None:
    hv, made = px
    nodes = sorted(h.id for h in hv.hosts.list())
    assert nodes == ["pve1", "pve2", "pve3"]
    for i in range(4):  # 4 x 12 GiB = 48 GiB on pve1: 75% of its 64 GiB; each with a node-local disk
        started(
            hv, made, f"fl-p{i}", "pve1", cpus=2, memory_mib=12288, disks=[DiskSpec(size_gib=0.01, pool="local-lvm")]
        )
    rules: list[Rule] = [AntiAffinity({"fl-p0", "fl-p1"})]
    fleet = Fleet({"pve": hv})
    target = 0.5  # 32 GiB: at most two of these VMs per node

    plan = checked_balance(fleet, target, rules)
    assert plan.complete and len(plan.moves) == 2
    assert all(m.source == "pve1" for m in plan.moves)
    moved = [str(m.vm_name) for m in plan.moves]
    files = {n: disk_files(pve, hv, n) for n in moved}
    run(fleet, plan)
    now = verify_real(hv, plan, target)
    assert now["fl-p0"] != now["fl-p1"]
    for n in moved:  # a real move: the local disks were copied to the new node and removed from pve1
        assert files[n](now[n]) and not files[n]("pve1")
    assert checked_balance(fleet, target, rules).moves == ()

    # PVE has no node maintenance mode in its API (only HA's crm-command), and neither has the
    # simulator: hvkit reads every node as not in maintenance. evacuate= stands in for it.
    assert not fleet.hosts(maintenance=True)
    leaving = "pve1"
    staying = sum(1 for node in now.values() if node == leaving)
    plan = checked_balance(fleet, target, rules, evacuate=[leaving])
    assert plan.complete and len(plan.moves) == staying >= 1
    assert {m.reason for m in plan.moves} == {"maintenance"}
    run(fleet, plan)
    now = verify_real(hv, plan, target)
    assert leaving not in now.values() and now["fl-p0"] != now["fl-p1"]
