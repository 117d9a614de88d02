"""The whole public conformance suite against the XAPI simulator, through the XenAPI client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import hvkit
from hvkit.hypervisor import Hypervisor
from hvkit.testing.conformance import AllTests
from hvkit.testing.xapi_sim import XapiSimulator


class XenFixtures:
    pool: str | None = "NFS storage"
    second_pool: str | None = "Local storage (xcp-ng-1)"
    network: str | None = "Pool-wide network associated with eth0"
    second_host = "xcp-ng-2"
    disk_gib = 0.01

    @pytest.fixture
    def hv(self, xapi: XapiSimulator) -> Iterator[Hypervisor]:
        with hvkit.connect(xapi.url, password=xapi.password, ca_file=xapi.ca_file, timeout=10) as conn:
            yield conn


class TestXenConformance(XenFixtures, AllTests):
    pass
