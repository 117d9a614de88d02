"""The whole public conformance suite against the stand-in VBoxManage (VirtualBox 7.0 and 6.1)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit.hypervisor import Hypervisor
from hvkit.testing.conformance import AllTests
from hvkit.testing.vbox_sim import VBoxSim


@pytest.fixture(scope="module", params=["7.0", "6.1"])
def conformance_sim(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VBoxSim]:
    sim = VBoxSim(Path(tmp_path_factory.mktemp(f"vbox{request.param}")), version=request.param)
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{sim.bin_dir}{os.pathsep}{old}"
    try:
        yield sim
    finally:
        os.environ["PATH"] = old


class VBoxFixtures:
    pool: str | None = "default"
    network: str | None = "nat"
    disk_gib = 0.01

    @pytest.fixture
    def hv(self, conformance_sim: VBoxSim) -> Iterator[Hypervisor]:
        with hvkit.connect("vbox:///", lock_backoff=0.01) as conn:
            yield conn


class TestVBoxConformance(VBoxFixtures, AllTests):
    pass
