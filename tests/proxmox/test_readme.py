"""The README example runs verbatim on the Proxmox simulator (only the URL changed), and names PVE refuses work."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

import hvkit
from hvkit import DiskSpec, NicSpec, VMSpec, errors
from hvkit.hypervisor import Hypervisor
from hvkit.testing.proxmox_sim import ProxmoxSimulator
from hvkit.testing.proxmox_sim.state import Storage
from tests.readme_example import DocBlock, check_output, doc_blocks, run_block, run_readme_example


@pytest.fixture(scope="module")
def sim() -> Iterator[ProxmoxSimulator]:
    """A simulator whose cluster has a storage and a bridge called 'default', as the README names them."""
    with ProxmoxSimulator(nodes=2, task_delay=0.02, lock_timeout=0.3) as simulator:
        cluster = simulator.cluster
        cluster.storages["default"] = Storage(
            "default", "dir", frozenset({"images", "import"}), True, 100 * 1024**3, ("qcow2", "raw")
        )
        cluster.bridges.append("default")
        yield simulator


@pytest.fixture
def hv(sim: ProxmoxSimulator) -> Iterator[Hypervisor]:
    conn = hvkit.connect(sim.url, token=sim.token, ca_file=sim.ca_file, timeout=10)
    try:
        yield conn
    finally:
        for vm in conn.vms.list():
            try:
                conn.vms.delete(vm.id, force=True)
            except hvkit.errors.HvkitError:
                pass
        conn.close()


def test_readme_example_runs_verbatim(sim: ProxmoxSimulator, hv: Hypervisor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVKIT_PROXMOX_TOKEN", sim.token)
    url = f"{sim.url}?ca_file={urllib.parse.quote(sim.ca_file)}&timeout=10"
    check_output(run_readme_example(url), "proxmox")
    web1 = hv.vms.get("web-1")
    assert [s.name for s in hv.snapshots.list(web1)] == ["before-upgrade"]
    assert hv.snapshots.list(web1)[0].id == "before_upgrade"


def _spec(name: str) -> VMSpec:
    return VMSpec(name=name, memory_mib=256, disks=[DiskSpec(size_gib=0.01, pool="default")], nics=[NicSpec("default")])


def test_names_pve_refuses_are_mapped_and_kept(hv: Hypervisor) -> None:
    vm = hv.vms.create(_spec("Web Server #1"))
    assert vm.name == "Web Server #1" and vm.tags == frozenset()
    assert hv.vms.get("Web Server #1").id == vm.id
    assert [v.name for v in hv.vms.list() if v.id == vm.id] == ["Web Server #1"]
    assert (
        hv.vms.get(
            vm.id,
        ).extra["config"]["name"]
        == "Web-Server-1"
    )
    with pytest.raises(errors.AlreadyExists, match="Web-Server-1"):
        hv.vms.create(_spec("Web-Server-1"))

    clone = hv.vms.clone(vm, "copy of web_1")
    assert clone.name == "copy of web_1"
    assert hv.vms.get(vm.id).name == "Web Server #1"  # the clone did not take its source's name

    for name in ("before-upgrade", "current", "9 lives", "x" * 80):
        snap = hv.snapshots.create(vm, name, description="why")
        assert snap.name == name and snap.description == "why"
        assert hv.snapshots.get(vm, name).id == snap.id
    with pytest.raises(errors.AlreadyExists, match="before_upgrade"):
        hv.snapshots.create(vm, "before_upgrade")
    hv.snapshots.delete(hv.snapshots.get(vm, "current"))
    assert sorted(s.name for s in hv.snapshots.list(vm)) == sorted(["before-upgrade", "9 lives", "x" * 80])
    hv.vms.delete(clone)
    hv.vms.delete(vm)


def test_linked_clone_of_a_running_vm_with_snapshots(hv: Hypervisor) -> None:
    vm = hv.vms.start(hv.vms.create(_spec("busy")))
    snap = hv.snapshots.create(vm, "s1")
    assert snap.memory  # memory=None: a running VM keeps its memory in the snapshot (vmstate)
    clone = hv.vms.clone(vm, "busy-copy", linked=True)  # PVE links templates only: a full copy
    assert clone.disks and {d.volume for d in clone.disks}.isdisjoint({d.volume for d in hv.vms.get(vm).disks})
    assert hv.snapshots.revert(snap).power_state.value == "running"
    hv.vms.delete(clone)
    hv.vms.delete(vm, force=True)


@pytest.mark.parametrize("block", doc_blocks("proxmox"), ids=lambda b: b.where)
def test_docs_proxmox_examples_run(
    block: DocBlock, sim: ProxmoxSimulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The docs' Proxmox examples, against the simulator: URLs point at it, credentials and CA file are its own."""
    monkeypatch.chdir(tmp_path)
    url = f"{sim.url}?ca_file={urllib.parse.quote(sim.ca_file)}"
    keywords: dict[str, object] = {"token": sim.token, "password": sim.password, "ca_file": sim.ca_file}
    run_block(block, lambda _url: url, {"hvkit": hvkit}, keywords)


def test_list_detail_reads_disks_and_nics(hv: Hypervisor) -> None:
    vm = hv.vms.create(_spec("detailed"))
    [brief] = [v for v in hv.vms.list() if v.id == vm.id]
    [full] = [v for v in hv.vms.list(detail=True) if v.id == vm.id]
    assert not brief.disks and not brief.extra["detail"]
    assert full.disks and full.nics and full.extra["detail"] and full.name == "detailed"
    hv.vms.delete(vm)
