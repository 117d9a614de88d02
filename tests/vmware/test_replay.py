"""Recorded vcsim sessions, replayed with vcrpy: no simulator, no network.

Re-record with ``HVKIT_RECORD=1 pytest tests/vmware/test_replay.py`` (needs the vcsim launcher).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit import DiskSpec, NicSpec, PowerState, VMSpec
from hvkit.hypervisor import Hypervisor

pytest.importorskip("vcr")
pytest.importorskip("pyVmomi")

from hvkit.backends.vmware.recording import cassette, scrub_text

HERE = Path(__file__).parent / "cassettes"
RECORD = os.environ.get("HVKIT_RECORD") == "1"
PASSWORD = "Rec0rded-pa55"
REPLAY_URL = "vcenter://user@127.0.0.1:18443"  # any URL: replay matches method, path and body only


@pytest.fixture
def session(request: pytest.FixtureRequest) -> Iterator[Hypervisor]:
    path = str(HERE / f"{request.node.name}.yaml")
    if RECORD:
        from hvkit.testing.vcsim import Vcsim, VcsimConfig

        with (
            Vcsim(VcsimConfig(password=PASSWORD)) as sim,
            cassette(path, mode="record", secrets=[PASSWORD]),
            hvkit.connect(sim.url, password=PASSWORD, verify_tls=False) as hv,
        ):
            yield hv
        return
    if not Path(path).exists():
        pytest.skip(f"no cassette {path}; record it with HVKIT_RECORD=1")
    with cassette(path, mode="replay"), hvkit.connect(REPLAY_URL, password="not-needed", verify_tls=False) as hv:
        yield hv


def test_inventory_replayed(session: Hypervisor) -> None:
    hv = session
    hosts = hv.hosts.list()
    assert [h.name for h in hosts] == ["DC0_H0", "DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"]
    assert [p.name for p in hv.pools.list()] == ["LocalDS_0"]
    assert "DC0_DVPG0" in {n.name for n in hv.networks.list()}
    vms = hv.vms.list()
    assert len(vms) == 4 and all(v.power_state is PowerState.RUNNING for v in vms)


def test_lifecycle_replayed(session: Hypervisor) -> None:
    hv = session
    spec = VMSpec(
        name="rec1", cpus=2, memory_mib=512, disks=[DiskSpec(size_gib=1)], nics=[NicSpec(network="DC0_DVPG0")]
    )
    vm = hv.vms.create(spec)
    assert vm.power_state is PowerState.STOPPED and vm.cpus == 2
    assert hv.vms.start(vm).power_state is PowerState.RUNNING
    snap = hv.snapshots.create(vm, "s1")
    assert snap.current
    assert hv.vms.stop(vm, force=True).power_state is PowerState.STOPPED
    hv.snapshots.revert(snap)
    hv.vms.delete(vm)


def test_cassettes_hold_no_secrets() -> None:
    for path in HERE.glob("*.yaml"):
        text = path.read_text()
        assert PASSWORD not in text
        assert "vmware_soap_session=" not in text.replace('vmware_soap_session="***"', "")
        assert all(value == "***" for value in re.findall(r"<password[^>]*>(.*?)</password>", text))
        assert all(value == "***" for value in re.findall(r"<userName[^>]*>(.*?)</userName>", text))


def test_scrub_text() -> None:
    login = "<Login><userName>admin</userName><password>pw</password></Login>"
    assert scrub_text(login) == "<Login><userName>***</userName><password>***</password></Login>"
    ticket = "<AcquireCloneTicketResponse><returnval>abc-123</returnval></AcquireCloneTicketResponse>"
    assert "abc-123" not in scrub_text(ticket)
    key = "<LoginResponse><returnval><key>52a1-secret</key></returnval></LoginResponse>"
    assert "52a1-secret" not in scrub_text(key)
    assert scrub_text("x my-token y", ["my-token"]) == "x *** y"
