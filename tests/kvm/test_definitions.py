"""Kept domain definitions and restart after a host failure, on libvirt's in-memory test driver (no root, no
QEMU): a peer that does not answer is listed from its kept definitions, and fleet recovery starts its VM on
this daemon. The real two-daemon failure is tests/kvm/test_recover.py."""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

import hvkit
from hvkit.errors import InvalidSpec, InvalidState, NotFound
from hvkit.fleet import Fleet
from hvkit.hypervisor import Hypervisor
from hvkit.models import VM, PowerState

GONE = "0f5b2c7e-9d3a-4c1e-8b6f-2a7d9e4c1b30"  # the host id of the peer that died
DEAD_URI = "test:///nonexistent/hvkit-dead-peer.xml"  # the test driver cannot open it: a peer that is down


def _domain_xml(name: str, uuid: str, disk: str) -> str:
    return (
        f"<domain type='test'><name>{name}</name><uuid>{uuid}</uuid><memory unit='MiB'>256</memory>"
        "<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices>"
        f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{disk}'/>"
        "<target dev='vda' bus='virtio'/></disk></devices></domain>"
    )


@pytest.fixture
def kept(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def cluster(kept: Path, prefix: str) -> Iterator[Hypervisor]:
    opts: dict[str, Any] = {"definitions": str(kept), "shared_pools": "default-pool"}
    with hvkit.connect("libvirt://test/default", peers=[{"name": "gone", "uri": DEAD_URI}], **opts) as hv:
        try:
            yield hv
        finally:
            conn = hv.backend.conn  # type: ignore[attr-defined]
            for dom in conn.listAllDomains(0):
                if dom.name().startswith(prefix):
                    if dom.isActive():
                        dom.destroy()
                    dom.undefine()
            for vol in conn.storagePoolLookupByName("default-pool").listAllVolumes(0):
                if vol.name().startswith(prefix):
                    vol.delete(0)


def _keep_dead_peer(hv: Hypervisor, kept: Path, prefix: str, state: str = "running") -> tuple[str, str]:
    """What the store held when the peer ``gone`` last answered: one VM, its disk on the shared pool."""
    vol = hv.volumes.create("default-pool", f"{prefix}disk.img", 0.01, format="raw")
    uuid = str(uuidlib.uuid4())
    folder = kept / GONE
    folder.mkdir()
    (folder / f"{uuid}.xml").write_text(_domain_xml(prefix + "vm", uuid, vol.path or ""))
    record = {
        "id": GONE,
        "name": "gone-host",
        "names": ["gone", "gone-host"],
        "uris": [DEAD_URI],
        "vms": {
            uuid: {"name": prefix + "vm", "fingerprint": None, "state": state, "pools": {vol.path: "default-pool"}}
        },
    }
    (folder / "member.json").write_text(json.dumps(record))
    return uuid, vol.path or ""


def test_listing_keeps_persistent_definitions_and_rewrites_only_changes(
    cluster: Hypervisor, kept: Path, prefix: str
) -> None:
    hv = cluster
    host = hv.backend.host_id  # type: ignore[attr-defined]
    [vm] = [v for v in hv.vms.list() if v.name == "test"]
    member = kept / host / "member.json"
    xml = kept / host / f"{vm.id}.xml"
    assert xml.exists() and "<name>test</name>" in xml.read_text()
    # the copies hold what libvirt's own files hold (a VNC password): readable by their owner only
    assert xml.stat().st_mode & 0o077 == 0 == member.stat().st_mode & 0o077 == xml.parent.stat().st_mode & 0o077
    record = json.loads(member.read_text())
    assert record["id"] == host and record["vms"][vm.id]["state"] == "running"
    stamps = (member.stat().st_mtime_ns, xml.stat().st_mtime_ns)
    hv.vms.list()
    hv.vms.list(detail=True)
    assert (member.stat().st_mtime_ns, xml.stat().st_mtime_ns) == stamps  # nothing changed: nothing written
    uuid = str(uuidlib.uuid4())
    hv.backend.conn.defineXML(_domain_xml(prefix + "cfg", uuid, "/default-pool/c.img"))  # type: ignore[attr-defined]
    hv.vms.list()
    hv.vms.reconfigure(uuid, cpus=2)  # a change through this connection: its XML is read again
    assert json.loads(member.read_text())["vms"][uuid]["fingerprint"] is None
    hv.vms.list()
    assert json.loads(member.read_text())["vms"][uuid]["fingerprint"] is not None
    assert "<vcpu placement='static'>2</vcpu>" in (kept / host / f"{uuid}.xml").read_text()


def test_a_removed_domain_is_no_longer_kept(cluster: Hypervisor, kept: Path, prefix: str) -> None:
    hv = cluster
    conn = hv.backend.conn  # type: ignore[attr-defined]
    uuid = str(uuidlib.uuid4())
    dom = conn.defineXML(_domain_xml(prefix + "x", uuid, "/default-pool/none.img"))
    hv.vms.list()
    folder = kept / hv.backend.host_id  # type: ignore[attr-defined]
    assert (folder / f"{uuid}.xml").exists()
    dom.undefine()
    hv.vms.list()
    assert not (folder / f"{uuid}.xml").exists() and uuid not in json.loads((folder / "member.json").read_text())["vms"]


def test_a_down_peer_is_listed_from_its_kept_definitions(cluster: Hypervisor, kept: Path, prefix: str) -> None:
    hv = cluster
    uuid, path = _keep_dead_peer(hv, kept, prefix)
    [host] = [h for h in hv.hosts.list() if h.id == GONE]
    assert host.name == "gone-host" and not host.connected
    [vm] = [v for v in hv.vms.list() if v.id == uuid]
    assert vm.host == GONE and vm.power_state is PowerState.UNKNOWN and vm.extra["kept"]
    assert [(d.pool, d.path) for d in vm.disks] == [("default-pool", path)]
    assert hv.vms.get(uuid).id == uuid == hv.vms.get(prefix + "vm").id
    with pytest.raises(InvalidState, match="answers"):  # the local daemon's VM: migrate it instead
        hv.backend.recover_vm(hv.vms.get("test"), GONE)  # type: ignore[attr-defined]


def test_fleet_recovery_starts_the_kept_vm_here_and_the_old_host_forgets_it(
    cluster: Hypervisor, kept: Path, prefix: str
) -> None:
    hv = cluster
    here = hv.backend.host_id  # type: ignore[attr-defined]
    uuid, path = _keep_dead_peer(hv, kept, prefix)
    with Fleet({"t": hv}) as fleet:
        result = fleet.recover("gone-host")
    assert result.ok and [(r.vm, r.target) for r in result.restarted] == [(uuid, here)], result
    vm = hv.vms.get(uuid)
    assert vm.host == here and vm.power_state is PowerState.RUNNING and vm.disks[0].path == path
    assert json.loads((kept / GONE / "moved.json").read_text()) == {uuid: {"to": here}}
    assert not (kept / GONE / f"{uuid}.xml").exists() and (kept / here / f"{uuid}.xml").exists()
    assert [v.host for v in hv.vms.list() if v.id == uuid] == [here]  # listed once, here
    with pytest.raises(NotFound):  # its kept copy moved: nothing to restart from the failed host
        hv.backend.recover_vm(attrs_host(vm, GONE), here)  # type: ignore[attr-defined]


def attrs_host(vm: VM, host: str) -> VM:
    import attrs

    return attrs.evolve(vm, host=host)


def test_a_stopped_vm_stays_stopped_and_unreachable_storage_is_said(
    cluster: Hypervisor, kept: Path, prefix: str
) -> None:
    hv = cluster
    uuid, _ = _keep_dead_peer(hv, kept, prefix, state="stopped")
    assert hv.vms.get(uuid).power_state is PowerState.STOPPED
    with Fleet({"t": hv}) as fleet:
        plan = fleet.recover("gone-host", dry_run=True).plan
    assert [(x.vm, x.reason) for x in plan.left] == [(uuid, "it was stopped before the failure")]
    # the same VM running, its disk on the dead host's own "default" pool (this host has a local one too)
    record = json.loads((kept / GONE / "member.json").read_text())
    record["vms"][uuid].update(state="running", pools={p: "default-pool" for p in record["vms"][uuid]["pools"]})
    (kept / GONE / "member.json").write_text(json.dumps(record))
    with (
        hvkit.connect(
            "libvirt://test/default", peers=[{"name": "gone", "uri": DEAD_URI}], definitions=str(kept)
        ) as unshared,
        Fleet({"t": unshared}) as fleet,
    ):  # no shared_pools: default-pool is each host's own
        plan = fleet.recover("gone-host", dry_run=True).plan
    assert not plan.restarts
    assert [x.reason for x in plan.left] == [
        "its disks are on storage no surviving host reaches (default-pool: host-local)"
    ]


def test_a_vm_restarted_elsewhere_is_undefined_by_uuid_when_its_host_answers(
    cluster: Hypervisor, kept: Path, prefix: str
) -> None:
    hv = cluster
    here = hv.backend.host_id  # type: ignore[attr-defined]
    conn = hv.backend.conn  # type: ignore[attr-defined]
    stopped, running = str(uuidlib.uuid4()), str(uuidlib.uuid4())
    conn.defineXML(_domain_xml(prefix + "old", stopped, "/default-pool/a.img"))
    conn.defineXML(_domain_xml(prefix + "both", running, "/default-pool/b.img")).create()
    (kept / here).mkdir()
    (kept / here / "moved.json").write_text(json.dumps({stopped: {"to": GONE}, running: {"to": GONE}}))
    names = [v.name for v in hv.vms.list()]
    assert prefix + "old" not in names and prefix + "both" in names  # a running copy is left and listed
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByUUIDString(stopped)
    assert json.loads((kept / here / "moved.json").read_text()) == {running: {"to": GONE}}


def test_recovery_needs_the_definitions_option() -> None:
    with hvkit.connect("libvirt://test/default") as hv:
        vm = attrs_host(hv.vms.get("test"), GONE)
        with pytest.raises(InvalidSpec, match="definitions"):
            hv.backend.recover_vm(vm, "vm")  # type: ignore[attr-defined]
    with (
        pytest.raises(InvalidSpec, match="not a directory"),
        hvkit.connect("libvirt://test/default", definitions="/nonexistent/hvkit-defs") as hv,
    ):
        hv.vms.list()


def test_a_restart_that_fails_to_start_removes_only_what_it_defined(
    cluster: Hypervisor, kept: Path, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hv = cluster
    uuid, _ = _keep_dead_peer(hv, kept, prefix)
    vm = hv.vms.get(uuid)

    def refuse(self: libvirt.virDomain) -> int:
        raise libvirt.libvirtError("no start today")

    monkeypatch.setattr(libvirt.virDomain, "create", refuse)
    with pytest.raises(hvkit.errors.HvkitError, match="no start today"):
        hv.backend.recover_vm(vm, hv.backend.host_id)  # type: ignore[attr-defined]
    with pytest.raises(libvirt.libvirtError):
        hv.backend.conn.lookupByUUIDString(uuid)  # type: ignore[attr-defined]
    assert (kept / GONE / f"{uuid}.xml").exists() and not (kept / GONE / "moved.json").exists()
    assert hv.vms.get(uuid).host == GONE  # still the failed host's, to restart again


def test_the_cli_recovers_a_down_peer_named_in_the_url(
    cluster: Hypervisor, kept: Path, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from urllib.parse import urlencode

    from hvkit.cli import main

    uuid, _ = _keep_dead_peer(cluster, kept, prefix)
    query = urlencode({"definitions": str(kept), "shared_pools": "default-pool", "peers": f"gone={DEAD_URI}"})
    url = f"libvirt://test/default?{query}"
    assert main(["fleet", "recover", "gone-host", "-m", url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"restart {prefix}vm on vm" in out, out
    assert main(["fleet", "recover", "gone-host", "-m", url, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["vm"] for r in result["restarted"]] == [uuid] and not result["failed"]
    assert cluster.vms.get(uuid).power_state is PowerState.RUNNING


def test_a_kept_vm_has_empty_metrics_and_calls_on_it_say_its_host_is_unreachable(
    cluster: Hypervisor, kept: Path, prefix: str
) -> None:
    uuid, _ = _keep_dead_peer(cluster, kept, prefix)
    vm = cluster.vms.get(uuid)
    [m] = cluster.vms.metrics([vm])
    assert m.vm == uuid and m.cpu_time_ns is None
    with pytest.raises(InvalidState, match="unknown"):
        cluster.vms.start(vm)
    with pytest.raises(NotFound, match="reachable"):
        cluster.snapshots.list(vm)


def test_what_this_connection_creates_starts_and_deletes_is_kept_without_a_listing(
    cluster: Hypervisor, kept: Path, prefix: str
) -> None:
    from hvkit.models import VMSpec

    folder = kept / cluster.backend.host_id  # type: ignore[attr-defined]

    def state(uuid: str) -> str | None:
        entry = json.loads((folder / "member.json").read_text())["vms"].get(uuid)
        return None if entry is None else str(entry["state"])

    vm = cluster.vms.create(VMSpec(prefix + "new", cpus=1, memory_mib=64))
    assert (folder / f"{vm.id}.xml").exists() and state(vm.id) == "stopped"
    cluster.vms.start(vm)
    assert state(vm.id) == "running"  # a VM started after the last listing is restarted after a failure
    cluster.vms.stop(vm, force=True)
    assert state(vm.id) == "stopped"
    cluster.vms.delete(vm)
    assert state(vm.id) is None and not (folder / f"{vm.id}.xml").exists()
