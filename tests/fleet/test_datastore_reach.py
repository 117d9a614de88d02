"""Datastores mounted on some hosts only (vCenter): a VM moves only to hosts that mount all of its datastores."""

from __future__ import annotations

from hvkit.capabilities import Capability
from hvkit.fleet._build import host_problem, key, storage_problem
from hvkit.fleet._consolidation import consolidate
from hvkit.fleet._placement import balance
from hvkit.models import VM, Disk, Host, PowerState, StoragePool

from ._check import check_plan

GIB = 1024**3
CAPS = {"vc": frozenset({Capability.VM_MIGRATE, Capability.VM_STORAGE_MIGRATE})}


def host(name: str, maintenance: bool = False) -> Host:
    return Host(f"host-{name}", name, 1, 8, 16, 65536, "vcenter", maintenance=maintenance, hypervisor="vc")


def pool(name: str, hosts: set[str]) -> StoragePool:
    return StoragePool(f"ds-{name}", name, 1000 * GIB, 900 * GIB, shared=True, hosts=frozenset(hosts), hypervisor="vc")


def vm(name: str, on: str, datastore: str, memory_mib: int = 8192) -> VM:
    disk = Disk("Hard disk 1", 20 * GIB, pool=datastore)
    return VM(f"vm-{name}", name, PowerState.RUNNING, 2, memory_mib, disks=[disk], host=on, hypervisor="vc")


def test_evacuation_goes_only_to_hosts_that_mount_the_datastore() -> None:
    hosts = [host("esx1", maintenance=True), host("esx2"), host("esx3")]
    pools = [pool("san-a", {"esx1", "esx2"}), pool("san-b", {"esx1", "esx2", "esx3"})]
    # esx2 is busier than esx3: without the mounts, the planner would pick esx3 for both
    vms = [vm("a", "esx1", "san-a"), vm("b", "esx1", "san-b"), vm("busy", "esx2", "san-b", memory_mib=40000)]
    built = host_problem(hosts, vms, pools, CAPS)
    items = {it.label: it for it in built.problem.items}
    assert items["a"].allowed == frozenset({key("vc", "host-esx1"), key("vc", "host-esx2")})
    assert items["b"].allowed == frozenset(key("vc", f"host-{h}") for h in ("esx1", "esx2", "esx3"))
    plan = balance(built.problem, 0.9)
    check_plan(built.problem, plan)
    where = {built.items[m.item].name: built.bins[m.target].name for m in plan.moves}
    assert where == {"a": "esx2", "b": "esx3"}
    plan = consolidate(built.problem, 0.9)
    check_plan(built.problem, plan)
    assert all(built.bins[m.target].name != "esx3" for m in plan.moves if built.items[m.item].name == "a")


def test_storage_moves_only_to_datastores_the_host_mounts() -> None:
    hosts = [host("esx1"), host("esx2")]
    pools = [pool("san-a", {"esx1", "esx2"}), pool("san-b", {"esx2"}), pool("san-c", {"esx1"})]
    built = storage_problem(hosts, [vm("a", "esx1", "san-a")], pools, CAPS)
    (item,) = built.problem.items
    assert item.allowed == frozenset({key("vc", "ds-san-a"), key("vc", "ds-san-c")})
