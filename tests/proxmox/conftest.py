"""Fixtures: one Proxmox simulator per module (HTTPS, verification on through its CA file)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import hvkit
from hvkit.hypervisor import Hypervisor
from hvkit.testing.proxmox_sim import ProxmoxSimulator

pytest.importorskip("proxmoxer")


@pytest.fixture(scope="module")
def sim() -> Iterator[ProxmoxSimulator]:
    with ProxmoxSimulator(nodes=3, task_delay=0.02, lock_timeout=0.3) as simulator:
        yield simulator


@pytest.fixture
def hv(sim: ProxmoxSimulator) -> Iterator[Hypervisor]:
    conn = hvkit.connect(sim.url, token=sim.token, ca_file=sim.ca_file, timeout=10)
    try:
        yield conn
    finally:
        for vm in sorted(conn.vms.list(), key=lambda v: v.template):  # whatever a test left (templates last)
            try:
                conn.vms.delete(vm.id, force=True)
            except hvkit.errors.HvkitError:
                pass
        conn.close()


@pytest.fixture
def px(sim: ProxmoxSimulator):  # type: ignore[no-untyped-def]
    """A raw proxmoxer client on the simulator (for schema-fidelity checks)."""
    from proxmoxer import ProxmoxAPI

    ident, _, secret = sim.token.partition("=")
    user, _, name = ident.partition("!")
    return ProxmoxAPI(sim.host, user=user, token_name=name, token_value=secret, verify_ssl=sim.ca_file, timeout=10)
