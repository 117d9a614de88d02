"""Recovery's storage check when a disk names its pool by a name that repeats per host (KVM's ``default``,
Proxmox's ``local``) and the failed host's own pool is not in the inventory (its daemon is down)."""

from __future__ import annotations

from hvkit.fleet import plan_recovery
from hvkit.models import VM, Disk, Host, PowerState, StoragePool


def _host(name: str, connected: bool = True) -> Host:
    return Host(name, name, 1, 8, 8, 8192, "m", connected=connected, hypervisor="m")


def _vm(name: str, pool: str) -> VM:
    disk = Disk("vda", 1 << 30, pool=pool)
    return VM(name, name, PowerState.UNKNOWN, 1, 512, disks=(disk,), host="dead", hypervisor="m")


def _pool(name: str, host: str | None, shared: bool = False) -> StoragePool:
    return StoragePool(f"{name}@{host}", name, 1 << 40, 1 << 39, shared=shared, host=host, hypervisor="m")


def test_a_survivors_local_pool_of_the_same_name_does_not_reach_the_dead_hosts_disk() -> None:
    hosts = [_host("dead", connected=False), _host("live")]
    pools = [_pool("default", "live"), _pool("nfs", None, shared=True)]
    plan = plan_recovery(hosts[0], hosts, [_vm("local", "default"), _vm("shared", "nfs")], pools)
    assert [(r.vm_name, r.target) for r in plan.restarts] == [("shared", "live")]
    assert [(x.vm_name, x.reason) for x in plan.left] == [
        ("local", "its disks are on storage no surviving host reaches (default: host-local)")
    ]


def test_a_pool_nobody_lists_is_unknown_and_the_failed_hosts_own_pool_is_preferred() -> None:
    hosts = [_host("dead", connected=False), _host("live")]
    pools = [_pool("default", "live"), _pool("default", "dead")]
    plan = plan_recovery(hosts[0], hosts, [_vm("gone", "nowhere"), _vm("own", "default")], pools)
    assert not plan.restarts
    reasons = {x.vm_name: x.reason for x in plan.left}
    assert reasons == {
        "gone": "its disks are in unknown pool(s) nowhere",
        "own": "its disks are on storage no surviving host reaches (default)",
    }
