"""The whole public conformance suite against the Hyper-V host model, through pywinrm and a WinRM endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import hvkit
from hvkit.hypervisor import Hypervisor
from hvkit.testing.conformance import AllTests
from hvkit.testing.hyperv_sim import HyperVHost
from hvkit.testing.hyperv_sim._samba import samba_available


@pytest.fixture(scope="module")
def conformance_host() -> Iterator[HyperVHost]:
    with HyperVHost(smb=samba_available()) as host:
        yield host


class HyperVFixtures:
    pool: str | None = "default"
    network: str | None = "External"
    second_pool: str | None = "fast"
    second_host = None
    disk_gib = 0.01

    @pytest.fixture
    def hv(self, conformance_host: HyperVHost) -> Iterator[Hypervisor]:
        url = f"{conformance_host.url}?pools=fast=D:/VMs&{conformance_host.options}"
        with hvkit.connect(url, password=conformance_host.password, ca_file=conformance_host.ca_file) as conn:
            yield conn


class TestHyperVConformance(HyperVFixtures, AllTests):
    pass
