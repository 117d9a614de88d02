"""The capability contract: every undeclared capability raises Unsupported, naming backend and call."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest

from ... import errors
from ...capabilities import Capability
from ...hypervisor import Hypervisor
from ...models import DiskSpec, Firmware, Snapshot, VMSpec
from ._base import ConformanceBase

_VM = "hvkit-no-such-vm"
_SNAP = Snapshot(id="s", name="s", vm=_VM)


def _create_uefi(hv: Hypervisor) -> Any:
    return hv.vms.create(VMSpec(name="hvkit-uefi-probe", firmware=Firmware.UEFI))


def _create_cloud_init(hv: Hypervisor) -> Any:
    from ...models import CloudInit

    return hv.vms.create(VMSpec(name="hvkit-ci-probe", cloud_init=CloudInit(hostname="x")))


CALLS: dict[Capability, Callable[[Hypervisor], Any]] = {
    Capability.VM_CREATE: lambda hv: hv.vms.create(VMSpec(name="hvkit-probe")),
    Capability.VM_DELETE: lambda hv: hv.vms.delete(_VM),
    Capability.VM_POWER: lambda hv: hv.vms.start(_VM),
    Capability.VM_PAUSE: lambda hv: hv.vms.pause(_VM),
    Capability.VM_SUSPEND: lambda hv: hv.vms.suspend(_VM),
    Capability.VM_RECONFIGURE: lambda hv: hv.vms.reconfigure(_VM, cpus=2),
    Capability.VM_RECONFIGURE_LIVE: None,  # type: ignore[dict-item]  # shown as InvalidState, tested in ReconfigureTests
    Capability.VM_TEMPLATE: lambda hv: hv.vms.mark_template(_VM),
    Capability.VM_CLONE: lambda hv: hv.vms.clone(_VM, "hvkit-clone-probe"),
    Capability.VM_LINKED_CLONE: lambda hv: hv.vms.clone(_VM, "hvkit-clone-probe", linked=True),
    Capability.VM_CONSOLE: lambda hv: hv.vms.console(_VM),
    Capability.VM_METRICS: lambda hv: hv.vms.metrics([_VM]),
    Capability.VM_GUEST_IPS: lambda hv: hv.vms.guest_ips(_VM),
    Capability.VM_EVENTS: lambda hv: hv.vms.watch(print),
    Capability.VM_MIGRATE: lambda hv: hv.vms.migrate(_VM, host="h"),
    Capability.VM_STORAGE_MIGRATE: lambda hv: hv.vms.migrate(_VM, pool="p"),
    Capability.UEFI: _create_uefi,
    Capability.CLOUD_INIT: _create_cloud_init,
    Capability.SNAPSHOT: lambda hv: hv.snapshots.revert(_SNAP),
    Capability.SNAPSHOT_MEMORY: lambda hv: hv.snapshots.create(_VM, "m", memory=True),
    Capability.HOST_METRICS: lambda hv: hv.hosts.metrics(),
    Capability.VOLUME_CREATE: lambda hv: hv.volumes.create("p", "v", 1),
    Capability.VOLUME_DELETE: lambda hv: hv.volumes.delete("v"),
    Capability.VOLUME_UPLOAD: lambda hv: hv.volumes.upload("v", io.BytesIO(b"")),
    Capability.VOLUME_DOWNLOAD: lambda hv: hv.volumes.download("v", io.BytesIO()),
    Capability.VOLUME_LINKED: lambda hv: hv.vms.create(
        VMSpec(name="hvkit-probe", disks=[DiskSpec(image="hvkit-probe-image", linked=True)])
    ),
}


def _undeclared_probe(capability: Capability) -> Callable[[Hypervisor], Any] | None:
    return CALLS.get(capability)


class CapabilityContractTests(ConformanceBase):
    @pytest.mark.parametrize("capability", list(Capability), ids=lambda c: c.value)
    def test_undeclared_capability_raises_unsupported(self, hv: Hypervisor, capability: Capability) -> None:
        if capability in hv.capabilities:
            pytest.skip(f"{hv.kind} declares {capability.value}")
        call = _undeclared_probe(capability)
        if call is None:
            pytest.skip(f"{capability.value} is checked by its area's tests")
        if capability in (Capability.UEFI, Capability.CLOUD_INIT) and Capability.VM_CREATE not in hv.capabilities:
            pytest.skip("create itself is unsupported")
        if capability is Capability.VM_LINKED_CLONE and Capability.VM_CLONE not in hv.capabilities:
            pytest.skip("clone itself is unsupported")
        if capability is Capability.SNAPSHOT_MEMORY and Capability.SNAPSHOT not in hv.capabilities:
            pytest.skip("snapshots themselves are unsupported")
        with pytest.raises(errors.Unsupported) as info:
            call(hv)
        assert hv.kind in str(info.value)
        assert isinstance(info.value, NotImplementedError)

    def test_every_capability_has_a_probe(self) -> None:
        assert set(CALLS) == set(Capability)
