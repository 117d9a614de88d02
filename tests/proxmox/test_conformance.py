"""The whole public conformance suite against the Proxmox simulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import hvkit
from hvkit.hypervisor import Hypervisor
from hvkit.testing.conformance import AllTests
from hvkit.testing.proxmox_sim import ProxmoxSimulator


@pytest.fixture(scope="module")
def conformance_sim() -> Iterator[ProxmoxSimulator]:
    with ProxmoxSimulator(nodes=2, task_delay=0.01, lock_timeout=0.5) as sim:
        yield sim


class ProxmoxFixtures:
    pool: str | None = "local-lvm"
    network: str | None = "vmbr0"
    second_pool: str | None = "local"
    second_host = "pve2"
    disk_gib = 0.01
    keeps_disks = False  # PVE destroys a VM's disks with it; volumes themselves can be deleted

    @pytest.fixture
    def hv(self, conformance_sim: ProxmoxSimulator) -> Iterator[Hypervisor]:
        with hvkit.connect(conformance_sim.url, token=conformance_sim.token, ca_file=conformance_sim.ca_file) as conn:
            yield conn


class TestProxmoxConformance(ProxmoxFixtures, AllTests):
    pass
