"""The sim backend passes the whole conformance suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import hvkit
from hvkit.testing.conformance import AllTests


class SimFixtures:
    pool: str | None = "default"
    network: str | None = "default"
    second_pool: str | None = "fast"

    @pytest.fixture
    def hv(self) -> Iterator[hvkit.Hypervisor]:
        with hvkit.connect("sim://conformance") as hv:
            yield hv


class TestSimConformance(SimFixtures, AllTests):
    pass
