"""Fleet on the sim backend: inventory, filters, capacity, health, balance, consolidation, execution."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hvkit
from hvkit import Hypervisor, PowerState, VMSpec
from hvkit.backends.sim._world import forget
from hvkit.errors import BackendError, InsufficientCapacity, InvalidSpec, InvalidState
from hvkit.fleet import Affinity, AntiAffinity, Fleet, Rule, capacity, health

GIB = 1024**3


def sim(hosts: int = 3, cpus: int = 8, memory_mib: int = 32768, **opts: Any) -> Hypervisor:
    name = f"fleet-{uuid.uuid4().hex[:8]}"
    return hvkit.connect(f"sim://{name}", hosts=hosts, host_cpus=cpus, host_memory_mib=memory_mib, task_delay=0, **opts)


@pytest.fixture
def hvs() -> Iterator[list[Hypervisor]]:
    made: list[Hypervisor] = []
    yield made
    for hv in made:
        name = hv.url.split("://", 1)[1]
        hv.close()
        forget(name)


def running(hv: Hypervisor, name: str, host: str, cpus: int = 2, memory_mib: int = 4096, **kw: object) -> None:
    hv.vms.create(VMSpec(name=name, cpus=cpus, memory_mib=memory_mib, host=host, **kw))  # type: ignore[arg-type]
    hv.vms.start(name)


def where(hv: Hypervisor) -> dict[str, str | None]:
    return {v.name: v.host for v in hv.vms.list()}


def test_inventory_tags_every_item_and_reports_a_failing_member(hvs: list[Hypervisor]) -> None:
    a, b = sim(hosts=2), sim(hosts=3)
    hvs += [a, b]
    running(a, "web-1", "host-1", tags=frozenset({"web"}))
    a.vms.create(VMSpec(name="db-1", host="host-2", tags=frozenset({"db"})))
    running(b, "web-2", "host-3", tags=frozenset({"web", "prod"}))
    b.backend.faults.fail("list_hosts", times=1)  # type: ignore[attr-defined]
    fleet = Fleet({"a": a, "b": b, "gone": "sim-missing-kind+x://nowhere"})
    inv = fleet.inventory
    assert {f.hypervisor for f in inv.failures} == {"b", "gone"}  # b's read failed, gone never connected
    assert {h.hypervisor for h in inv.hosts} == {"a"}
    inv = fleet.refresh()  # the fault was one-shot: b reads now
    assert {f.hypervisor for f in inv.failures} == {"gone"}
    assert len(inv.hosts) == 5 and all(h.hypervisor in ("a", "b") for h in inv.hosts)
    assert all(v.hypervisor for v in inv.vms) and all(p.hypervisor for p in inv.pools)
    assert {v.name for v in fleet.vms(name="web-*")} == {"web-1", "web-2"}
    assert [v.name for v in fleet.vms(power_state="stopped")] == ["db-1"]
    assert [v.name for v in fleet.vms(tag=["web", "prod"])] == ["web-2"]
    assert [v.name for v in fleet.vms(host="sim-host-2")] == ["db-1"]
    assert [v.name for v in fleet.vms(hypervisor="b")] == ["web-2"]
    assert len(fleet.vms(kind="sim")) == 3 and fleet.vms(kind="kvm") == []
    assert [h.name for h in fleet.hosts(hypervisor="a", name="*-2")] == ["sim-host-2"]
    bads: list[dict[str, Any]] = [{"power_state": "on"}, {"name": ""}, {"tag": []}, {"host": 3}]
    for bad in bads:
        with pytest.raises(InvalidSpec):
            fleet.vms(**bad)


def test_fleet_rejects_bad_members_before_connecting() -> None:
    for bad in ([], "sim://x", [3], [""]):
        with pytest.raises(InvalidSpec):
            Fleet(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidSpec):
        Fleet(["sim://x"], max_workers=0)


def test_capacity_and_health(hvs: list[Hypervisor]) -> None:
    a = sim(hosts=2, cpus=4, memory_mib=16384)
    solo = sim(hosts=1)
    hvs += [a, solo]
    for i in range(3):
        running(a, f"v{i}", "host-1", cpus=2, memory_mib=4096)
    a.vms.create(VMSpec(name="old", host="host-2"))
    running(solo, "lonely", "host-1")
    fleet = Fleet({"a": a, "solo": solo})
    report = fleet.capacity()
    h1 = next(h for h in report.hosts if h.hypervisor == "a" and h.host == "host-1")
    assert (h1.vcpus_allocated, h1.memory_allocated_mib, h1.vms_running) == (6, 12288, 3)
    assert h1.cpu_overcommit == pytest.approx(1.5) and h1.memory_overcommit == pytest.approx(0.75)
    assert h1.cpu_usage is not None and h1.memory_used_mib == 12288  # measured by host metrics
    assert {p.name for p in report.pools if p.hypervisor == "a"} == {"default", "fast"}
    findings = fleet.health(host_threshold=0.7, snapshot_days=7)
    checks = {(f.check, f.hypervisor, f.subject) for f in findings}
    assert ("host-overloaded", "a", "sim-host-1") in checks  # 75% memory > 70%
    assert ("single-point-of-failure", "solo", "sim-host-1") in checks
    assert not any(f.check == "stopped-long" for f in findings)  # "old" stopped just now
    # the sim says since when a VM is stopped: a month later it is reported
    inv = fleet.inventory
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=40)
    found = health(report, inv.vms, inv.networks, inv.pools, inv.kinds, stopped_days=30, now=later)
    assert [f.subject for f in found if f.check == "stopped-long"] == ["old"]
    with pytest.raises(InvalidSpec):
        fleet.health(host_threshold=2)


def test_stopped_time_unknown_is_said_not_faked() -> None:
    vm = hvkit.VM("x", "x", PowerState.STOPPED, 1, 1024, hypervisor="h")
    report = capacity([], [vm], [], {"h": "kvm"})
    found = health(report, [vm], [], [], {"h": "kvm"})
    assert [f.check for f in found] == ["stopped-since-unknown"]
    assert "does not report since when" in found[0].message


def test_old_snapshots_are_found(hvs: list[Hypervisor]) -> None:
    a = sim(hosts=1)
    hvs.append(a)
    a.vms.create(VMSpec(name="s", host="host-1"))
    a.snapshots.create("s", "before-upgrade")
    fleet = Fleet([a])
    assert not [f for f in fleet.health(snapshot_days=7) if f.check == "old-snapshot"]
    assert [f.subject for f in fleet.health(snapshot_days=0) if f.check == "old-snapshot"] == ["s/before-upgrade"]


def test_balance_plan_runs_and_reaches_its_prediction(hvs: list[Hypervisor]) -> None:
    a = sim(hosts=3)
    hvs.append(a)
    for i in range(6):
        running(a, f"v{i}", "host-1", cpus=2, memory_mib=4096)
    fleet = Fleet([a])
    rules: list[Rule] = [AntiAffinity({"v0", "v1"}), Affinity({"v2", "v3"})]
    plan = fleet.balance(0.5, rules)
    assert plan.complete and plan.moves
    assert all(m.hypervisor == a.url and m.kind == "host" for m in plan.moves)
    steps: list[str] = []
    outcome = fleet.execute(plan, progress=lambda s: steps.append(s.status))
    assert outcome.ok and len(outcome.done) == len(plan.moves)
    assert steps.count("done") == len(plan.moves)
    now = where(a)
    predicted = {fleet_vm.split("#", 1)[1]: host.split("#", 1)[1] for fleet_vm, host in plan.placement.items()}
    assert {a.vms.get(i).name: h for i, h in predicted.items()} == now
    assert now["v0"] != now["v1"] and now["v2"] == now["v3"]
    # a fresh plan on the new state has nothing to do
    assert fleet.balance(0.5, rules).moves == ()


def test_maintenance_hosts_are_evacuated(hvs: list[Hypervisor]) -> None:
    a = sim(hosts=3)
    hvs.append(a)
    running(a, "x", "host-2")
    running(a, "y", "host-2")
    a.backend.set_maintenance("host-2")  # type: ignore[attr-defined]
    fleet = Fleet([a])
    plan = fleet.balance(0.9)
    assert {m.reason for m in plan.moves} == {"maintenance"} and len(plan.moves) == 2
    assert fleet.execute(plan).ok
    assert "host-2" not in where(a).values()
    # evacuate= plans the same for a host not (yet) in maintenance
    plan = fleet.balance(0.9, evacuate=["sim-host-1"])
    assert all(m.source == "host-1" for m in plan.moves)
    with pytest.raises(InvalidSpec):
        fleet.balance(0.9, evacuate=["no-such-host"])


def test_execution_stops_at_the_first_failure(hvs: list[Hypervisor]) -> None:
    a = sim(hosts=3)
    hvs.append(a)
    for i in range(5):
        running(a, f"v{i}", "host-1", cpus=2, memory_mib=4096)
    fleet = Fleet([a])
    plan = fleet.balance(0.3)
    assert len(plan.moves) >= 2
    before = where(a)
    a.backend.faults.fail("migrate_vm", times=1)  # type: ignore[attr-defined]
    outcome = fleet.execute(plan)
    assert not outcome.ok and outcome.done == () and outcome.failed == plan.moves[0]
    assert isinstance(outcome.error, BackendError)
    assert where(a) == before  # nothing after the failure ran
    # a stale plan is refused at the move that no longer matches
    first = plan.moves[0]
    a.vms.migrate(str(first.vm), host=first.target)
    outcome = fleet.execute(plan)
    assert outcome.failed == first and isinstance(outcome.error, InvalidState)


def test_consolidation_frees_hosts_on_sim(hvs: list[Hypervisor]) -> None:
    a = sim(hosts=4)
    hvs.append(a)
    for i in range(4):
        running(a, f"v{i}", f"host-{i + 1}", cpus=2, memory_mib=4096)
    fleet = Fleet([a])
    plan = fleet.consolidate(0.8, [AntiAffinity({"v0", "v1"})], watts_per_host=250)
    assert plan.bins_used == 2 and len(plan.freed) == 2 and plan.power_saved_watts == 500
    assert fleet.execute(plan).ok
    now = where(a)
    assert len(set(now.values())) == 2 and now["v0"] != now["v1"]


def test_storage_balance_moves_disks(hvs: list[Hypervisor]) -> None:
    a = sim(hosts=1, pool_gib=10)
    hvs.append(a)
    for i in range(3):
        a.vms.create(VMSpec(name=f"d{i}", host="host-1", disks=[hvkit.DiskSpec(size_gib=3, pool="default")]))
    fleet = Fleet([a])
    plan = fleet.balance_storage(0.8)
    assert plan.kind == "storage" and len(plan.moves) == 1 and plan.moves[0].target == "fast"
    assert fleet.execute(plan).ok
    pools = {v.name: {d.pool for d in v.disks} for v in a.vms.list()}
    moved = plan.moves[0].vm_name
    assert pools[str(moved)] == {"fast"}


def test_rules_and_targets_are_checked_before_any_call(hvs: list[Hypervisor]) -> None:
    a = sim(hosts=2)
    hvs.append(a)
    running(a, "v", "host-1")
    fleet = Fleet([a])
    with pytest.raises(InvalidSpec, match="not in the fleet"):
        fleet.balance(0.8, [AntiAffinity({"v", "ghost"})])
    with pytest.raises(InvalidSpec):
        fleet.balance(0)
    with pytest.raises(InvalidSpec):
        fleet.balance(0.8, demand="guess")
    with pytest.raises(InvalidSpec):
        AntiAffinity({"only"})
    with pytest.raises(InvalidSpec):
        Affinity({"a", "b"}, scope="rack")


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    placement=st.lists(
        st.tuples(st.integers(1, 3), st.sampled_from([1, 2, 4]), st.sampled_from([2048, 4096, 8192])), max_size=8
    ),
    target=st.sampled_from([0.4, 0.6, 0.8]),
)
def test_running_any_plan_on_sim_reaches_the_predicted_state(
    placement: list[tuple[int, int, int]], target: float
) -> None:
    a = sim(hosts=3, cpus=8, memory_mib=24576)
    try:
        for i, (host, cpus, mem) in enumerate(placement):
            try:
                running(a, f"v{i}", f"host-{host}", cpus=cpus, memory_mib=mem)
            except InsufficientCapacity:  # the host is full: leave it stopped
                pass
        fleet = Fleet([a])
        plan = fleet.balance(target)
        assert fleet.execute(plan).ok
        predicted = {k.split("#", 1)[1]: v.split("#", 1)[1] for k, v in plan.placement.items()}
        actual = {v.id: v.host for v in a.vms.list() if v.power_state is PowerState.RUNNING}
        assert predicted == actual
        limit = 24576 * target
        for h in a.hosts.list():
            used = sum(v.memory_mib for v in a.vms.list() if v.host == h.id and v.power_state is PowerState.RUNNING)
            assert used <= limit or h.name in " ".join(plan.unresolved)
    finally:
        name = a.url.split("://", 1)[1]
        a.close()
        forget(name)
