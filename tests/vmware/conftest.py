"""vcsim fixtures: one simulator per mode for the whole session, a fresh connection per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

import hvkit
from hvkit.errors import NotFound
from hvkit.hypervisor import Hypervisor
from hvkit.testing.vcsim import Vcsim, VcsimConfig

pytest.importorskip("pyVmomi")


def _need_go() -> None:
    if shutil.which("go") is None:
        pytest.skip("vcsim needs the Go compiler: see scripts/setup.d/30-vmware.packages")


VCENTER = VcsimConfig(esx=False, datastores=2, username="admin@vsphere.local", password="Sim-pa55word")
ESXI = VcsimConfig(esx=True, username="root", password="Esx-pa55word")


@pytest.fixture(scope="session")
def vcsim_vcenter() -> Iterator[Vcsim]:
    _need_go()
    with Vcsim(VCENTER) as sim:
        yield sim


@pytest.fixture(scope="session")
def vcsim_esxi() -> Iterator[Vcsim]:
    _need_go()
    with Vcsim(ESXI) as sim:
        yield sim


@pytest.fixture(params=["vcenter", "esxi"])
def sim(request: pytest.FixtureRequest) -> Vcsim:
    fixture: Vcsim = request.getfixturevalue(f"vcsim_{request.param}")
    return fixture


def connect(sim: Vcsim) -> Hypervisor:
    return hvkit.connect(sim.url, password=sim.password, ca_file=sim.cert_file)


@pytest.fixture
def hv(sim: Vcsim) -> Iterator[Hypervisor]:
    with connect(sim) as conn:
        yield conn


@pytest.fixture
def vc(vcsim_vcenter: Vcsim) -> Iterator[Hypervisor]:
    with connect(vcsim_vcenter) as conn:
        yield conn


@pytest.fixture
def esxi(vcsim_esxi: Vcsim) -> Iterator[Hypervisor]:
    with connect(vcsim_esxi) as conn:
        yield conn


@pytest.fixture
def cleanup() -> Iterator[list[tuple[Hypervisor, str]]]:
    """Names of VMs a test creates; removed afterwards even when the test fails."""
    made: list[tuple[Hypervisor, str]] = []
    yield made
    for conn, name in reversed(made):
        try:
            conn.vms.delete(name, force=True)
        except NotFound:
            pass
