"""Fixtures every conformance test uses; a backend's test class supplies ``hv`` and a few names."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ...capabilities import Capability
from ...errors import HvkitError, NotFound
from ...hypervisor import Hypervisor
from ...models import VM, DiskSpec, NicSpec, PowerState, VMSpec

__all__ = ["ConformanceBase", "requires"]


def requires(*caps: Capability) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a test as needing capabilities; it is skipped where the backend lacks one."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn._hvkit_requires = caps  # type: ignore[attr-defined]
        return fn

    return mark


class ConformanceBase:
    """Base of every mixin. A backend's fixture class overrides the attributes and ``hv``.

    Attributes: ``pool`` and ``network`` (names to use), ``disk_gib`` (test disk size),
    ``graceful_stop`` (False where test guests cannot answer a shutdown request),
    ``second_pool`` / ``second_host`` (for storage/host migration, None to skip),
    ``keeps_disks`` (False where ``vms.delete(keep_disks=True)`` is documented as Unsupported: the
    vendor destroys a VM's disks with it, e.g. Proxmox, which deletes volumes but not a VM without them).
    """

    pool: str | None = None
    network: str | None = None
    disk_gib: float = 0.01
    graceful_stop: bool = True
    second_pool: str | None = None
    keeps_disks: bool = True
    operation_timeout: float = 300.0

    @pytest.fixture
    def hv(self) -> Iterator[Hypervisor]:  # pragma: no cover - overridden
        raise NotImplementedError("a conformance binding must provide an 'hv' fixture")

    @pytest.fixture(autouse=True)
    def _capability_gate(self, request: pytest.FixtureRequest, hv: Hypervisor) -> None:
        needed = getattr(request.function, "_hvkit_requires", ())
        missing = [c.value for c in needed if c not in hv.capabilities]
        if missing:
            pytest.skip(f"{hv.kind} does not declare {', '.join(missing)}")

    @pytest.fixture
    def prefix(self) -> str:
        return f"hvk-{uuid.uuid4().hex[:6]}"

    def vm_spec(self, name: str, **overrides: Any) -> VMSpec:
        """The spec conformance tests create; backends may override (e.g. to attach a bootable disk)."""
        fields: dict[str, Any] = {
            "name": name,
            "cpus": 1,
            "memory_mib": 128,
            "disks": [DiskSpec(size_gib=self.disk_gib, pool=self.pool)],
            "nics": [NicSpec(network=self.network)] if self.network else [],
        }
        fields.update(overrides)
        return VMSpec(**fields)

    @pytest.fixture
    def make_vm(self, hv: Hypervisor, prefix: str) -> Iterator[Callable[..., VM]]:
        """Create VMs named ``<prefix>-<suffix>``; every VM with the prefix is removed afterwards."""
        counter = iter(range(1, 1000))

        def make(suffix: str | None = None, **overrides: Any) -> VM:
            name = f"{prefix}-{suffix or next(counter)}"
            vm: VM = hv.vms.create(self.vm_spec(name, **overrides), timeout=self.operation_timeout)
            return vm

        yield make
        cleanup(hv, prefix)


def cleanup(hv: Hypervisor, prefix: str) -> None:
    """Delete every VM (clones first) and volume whose name starts with ``prefix``."""
    for _ in range(3):
        leftovers = [vm for vm in hv.vms.list() if vm.name.startswith(prefix)]
        if not leftovers:
            break
        leftovers.sort(key=lambda vm: vm.name.count("-"), reverse=True)  # clones are named after sources
        for vm in leftovers:
            with contextlib.suppress(HvkitError):
                if vm.power_state not in (PowerState.STOPPED,):
                    with contextlib.suppress(HvkitError):
                        hv.vms.stop(vm, force=True)
                hv.vms.delete(vm, force=True)
    with contextlib.suppress(HvkitError):
        for vol in hv.volumes.list():
            if vol.name.startswith(prefix):
                with contextlib.suppress(HvkitError, NotFound):
                    hv.volumes.delete(vol)
