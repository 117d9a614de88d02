"""Inventory: hosts, pools, networks, VMs, lookups."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ... import errors
from ...capabilities import Capability
from ...hypervisor import Hypervisor
from ...models import VM, Host, Network, PowerState, StoragePool
from ._base import ConformanceBase, requires


class InventoryTests(ConformanceBase):
    def test_identity(self, hv: Hypervisor) -> None:
        assert isinstance(hv.kind, str) and hv.kind
        assert isinstance(hv.version, str)
        assert all(isinstance(c, Capability) for c in hv.capabilities)
        assert "password" not in repr(hv).lower() or "***" in repr(hv)

    def test_hosts(self, hv: Hypervisor) -> None:
        hosts = hv.hosts.list()
        assert hosts and all(isinstance(h, Host) for h in hosts)
        for h in hosts:
            assert h.cpu_threads >= h.cpu_cores >= 1 and h.cpu_sockets >= 1
            assert h.memory_mib > 0
            assert h.hypervisor_kind
        assert hv.hosts.get(hosts[0].id) == hosts[0]
        assert hv.hosts.get(hosts[0].name).id == hosts[0].id

    def test_pools(self, hv: Hypervisor) -> None:
        pools = hv.pools.list()
        assert pools and all(isinstance(p, StoragePool) for p in pools)
        for p in pools:
            assert p.capacity_bytes >= 0 and p.free_bytes >= 0
        if self.pool:
            assert hv.pools.get(self.pool).name == self.pool or hv.pools.get(self.pool).id == self.pool

    def test_networks(self, hv: Hypervisor) -> None:
        nets = hv.networks.list()
        assert all(isinstance(n, Network) for n in nets)
        if self.network:
            assert self.network in {n.name for n in nets} | {n.id for n in nets}

    def test_missing_objects_raise_not_found(self, hv: Hypervisor) -> None:
        for call in (
            lambda: hv.vms.get("hvkit-no-such-vm"),
            lambda: hv.hosts.get("hvkit-no-such-host"),
            lambda: hv.pools.get("hvkit-no-such-pool"),
            lambda: hv.networks.get("hvkit-no-such-net"),
        ):
            with pytest.raises(errors.NotFound):
                call()

    @requires(Capability.VM_CREATE)
    def test_vm_listed_and_found_by_id_name_and_value(self, hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
        vm = make_vm()
        assert vm.power_state is PowerState.STOPPED
        assert vm.id in {v.id for v in hv.vms.list()}
        assert hv.vms.get(vm.id).name == vm.name
        assert hv.vms.get(vm.name).id == vm.id
        assert hv.vms.get(vm).id == vm.id
        if vm.host is not None:
            assert vm.host in {h.id for h in hv.hosts.list()} | {h.name for h in hv.hosts.list()}

    def test_bad_reference_is_invalid_spec(self, hv: Hypervisor) -> None:
        with pytest.raises(errors.InvalidSpec):
            hv.vms.get(42)  # type: ignore[arg-type]
        with pytest.raises(errors.InvalidSpec):
            hv.vms.get("")
