"""Recorded Hyper-V (WinRM) sessions, replayed with vcrpy: no host, no network.

Re-record against the host model with ``HVKIT_RECORD=1 pytest tests/hyperv/test_replay.py``; against a
real host, also set ``HVKIT_RECORD_URL=hyperv://user@host`` and ``HVKIT_HYPERV_PASSWORD`` (and
``HVKIT_RECORD_CA_FILE``, ``HVKIT_RECORD_NETWORK`` for a switch other than the first): see
docs/backends/hyperv.md.
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

from hvkit.backends.hyperv.recording import cassette, envelope_key, scrub_text

HERE = Path(__file__).parent / "cassettes"
RECORD = os.environ.get("HVKIT_RECORD") == "1"
REPLAY_URL = "hyperv://recorded@127.0.0.1:5986"  # any URL: replay matches method, path and the envelope


@pytest.fixture
def session(request: pytest.FixtureRequest) -> Iterator[Hypervisor]:
    path = str(HERE / f"{request.node.name}.yaml")
    if RECORD:
        url = os.environ.get("HVKIT_RECORD_URL")
        if url:  # a real host
            password = os.environ["HVKIT_HYPERV_PASSWORD"]
            user = url.split("://", 1)[1].split("@", 1)[0]
            host_name = url.split("@", 1)[1].split(":", 1)[0].split("?", 1)[0]
            with (
                cassette(path, mode="record", secrets=[password, user, host_name]),
                hvkit.connect(url, password=password, ca_file=os.environ.get("HVKIT_RECORD_CA_FILE")) as hv,
            ):
                yield hv
            return
        from hvkit.testing.hyperv_sim import HyperVHost

        with (
            HyperVHost() as host,
            cassette(path, mode="record", secrets=[host.password, host.user]),
            hvkit.connect(host.url, password=host.password, ca_file=host.ca_file) as hv,
        ):
            yield hv
        return
    if not Path(path).exists():
        pytest.skip(f"no cassette {path}; record it with HVKIT_RECORD=1")
    with cassette(path, mode="replay"), hvkit.connect(REPLAY_URL, password="not-needed", verify_tls=False) as hv:
        yield hv


def test_inventory_replayed(session: Hypervisor) -> None:
    hv = session
    (host,) = hv.hosts.list()
    assert host.hypervisor_kind == "hyperv" and host.cpu_threads > 0
    assert "default" in {p.name for p in hv.pools.list()}
    assert hv.networks.list()
    assert all(isinstance(v.power_state, PowerState) for v in hv.vms.list())


def test_lifecycle_replayed(session: Hypervisor) -> None:
    hv = session
    network = os.environ.get("HVKIT_RECORD_NETWORK") or hv.networks.list()[0].name
    spec = VMSpec(
        name="hvkit-rec1",
        cpus=2,
        memory_mib=512,
        disks=[DiskSpec(size_gib=1, pool="default")],
        nics=[NicSpec(network=network)],
    )
    vm = hv.vms.create(spec)
    assert vm.power_state is PowerState.STOPPED and vm.cpus == 2
    assert hv.vms.start(vm).power_state is PowerState.RUNNING
    snap = hv.snapshots.create(vm, "s1")
    assert snap.current and snap.memory
    assert hv.vms.stop(vm, force=True).power_state is PowerState.STOPPED
    assert hv.snapshots.revert(snap).power_state is PowerState.RUNNING
    hv.vms.delete(vm, force=True)


def test_checkpoint_disks_replayed(session: Hypervisor) -> None:
    """A checkpoint puts the VM's disk on a differencing .avhdx beside it: listed, read by id, merged away on delete."""
    hv = session
    network = os.environ.get("HVKIT_RECORD_NETWORK") or hv.networks.list()[0].name
    spec = VMSpec(
        name="hvkit-rec2", cpus=1, memory_mib=512, disks=[DiskSpec(size_gib=1, pool="default")], nics=[NicSpec(network)]
    )
    vm = hv.vms.create(spec)
    try:
        base = vm.disks[0].volume or ""
        snap = hv.snapshots.create(vm, "s1", memory=False)
        leaf = hv.vms.get(vm).disks[0].volume or ""
        assert leaf.lower().endswith(".avhdx")
        listed = {v.id.lower(): v for v in hv.volumes.list("default")}
        current = listed[leaf.lower()]
        assert current.backing is not None and current.backing.lower() == base.lower()
        assert current.extra["differencing"] and current.extra["attached_to"] == vm.id
        assert listed[base.lower()].extra["read_by"] == (vm.id,)
        assert hv.volumes.get(leaf).id.lower() == leaf.lower()
        hv.snapshots.delete(snap)
        assert (hv.vms.get(vm).disks[0].volume or "").lower() == base.lower()
    finally:
        hv.vms.delete(vm, force=True)


def test_cassettes_hold_no_secrets() -> None:
    paths = list(HERE.glob("*.yaml"))
    assert paths or RECORD
    for path in paths:
        text = path.read_text()
        assert "authorization" not in text.lower()  # the NTLM exchange's client side is dropped
        assert "TlRMTVNTUAAD" not in text  # no NTLM AUTHENTICATE message (user name, password-derived response)
        assert not re.search(r"hvkit-[0-9a-f]{6}", text)  # the recorded user (the host model's) is scrubbed


def test_scrub_and_envelope_key() -> None:
    assert scrub_text("user hvkit-abc123 pw Secr3t!", ["Secr3t!", "hvkit-abc123"]) == "user *** pw ***"
    a = (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"><s:Header>'
        "<a:Action>x</a:Action><a:MessageID>uuid:1</a:MessageID><a:To>https://h1:5986/wsman</a:To>"
        "</s:Header><s:Body/></s:Envelope>"
    )
    b = a.replace("uuid:1", "uuid:2").replace("h1:5986", "h2:443")
    assert envelope_key(a) == envelope_key(b)
    assert envelope_key(a) != envelope_key(a.replace(">x<", ">y<"))
