"""One name, one VM: racing creates and clones of one name end with one VM and one success."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import hvkit
from hvkit import errors
from hvkit.testing.proxmox_sim import ProxmoxSimulator

from ._orphans import connect_pve, fresh_sim, pve_orphans, pve_session, pve_spec, sim_orphans, spec

pytest.importorskip("proxmoxer")


def race(n: int, fn: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """Run ``fn(i)`` in ``n`` threads released at once; return (results, errors)."""
    gate = threading.Barrier(n)
    results: list[Any] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        gate.wait()
        try:
            out = fn(i)
            with lock:
                results.append(out)
        except BaseException as exc:  # collected and asserted on below
            with lock:
                failures.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results, failures


@pytest.fixture
def sim() -> Iterator[hvkit.Hypervisor]:
    yield from fresh_sim()


@pytest.fixture(scope="module")
def pve() -> Iterator[ProxmoxSimulator]:
    with ProxmoxSimulator(nodes=2, task_delay=0.005, lock_timeout=2.0) as simulator:
        yield simulator


@pytest.fixture
def phv(pve: ProxmoxSimulator) -> Iterator[hvkit.Hypervisor]:
    yield from pve_session(pve)


def test_sim_four_creates_of_one_name(sim: hvkit.Hypervisor) -> None:
    conns = [hvkit.connect(sim.url) for _ in range(4)]
    made, failed = race(4, lambda i: conns[i].vms.create(spec("twin")))
    assert len(made) == 1 and all(isinstance(e, errors.AlreadyExists) for e in failed), failed
    assert [v.id for v in sim.vms.list() if v.name == "twin"] == [made[0].id]
    assert sim_orphans(sim, {made[0].id}) == []


def test_sim_four_clones_to_one_name(sim: hvkit.Hypervisor) -> None:
    src = sim.vms.create(spec("src"))
    made, failed = race(4, lambda i: sim.vms.clone(src, "twin", linked=i % 2 == 0))
    assert len(made) == 1 and all(isinstance(e, errors.AlreadyExists) for e in failed), failed
    assert sorted(v.id for v in sim.vms.list()) == sorted([src.id, made[0].id])
    assert sim_orphans(sim, {src.id, made[0].id}) == []


def test_pve_five_creates_of_one_name(phv: hvkit.Hypervisor, pve: ProxmoxSimulator) -> None:
    made, failed = race(5, lambda i: phv.vms.create(pve_spec("same")))
    assert len(made) == 1, (made, failed)
    assert all(isinstance(e, errors.AlreadyExists) for e in failed), failed
    assert [v.id for v in phv.vms.list() if v.name == "same"] == [made[0].id]
    assert pve_orphans(pve, {int(made[0].id)}) == []


def test_pve_five_creates_on_five_connections(phv: hvkit.Hypervisor, pve: ProxmoxSimulator) -> None:
    conns = [connect_pve(pve) for _ in range(5)]
    made, failed = race(5, lambda i: conns[i].vms.create(pve_spec("same2")))
    assert len(made) == 1 and all(isinstance(e, errors.AlreadyExists) for e in failed), failed
    assert [v.id for v in phv.vms.list() if v.name == "same2"] == [made[0].id]
    assert pve_orphans(pve, {int(made[0].id)}) == []


def test_pve_racing_clones_of_one_name(phv: hvkit.Hypervisor, pve: ProxmoxSimulator) -> None:
    tpl = phv.vms.mark_template(phv.vms.create(pve_spec("tpl")))
    made, failed = race(4, lambda i: phv.vms.clone(tpl, "twin", linked=True))
    assert len(made) == 1 and all(isinstance(e, errors.AlreadyExists) for e in failed), failed
    assert sorted(v.id for v in phv.vms.list()) == sorted([tpl.id, made[0].id])
    assert pve_orphans(pve, {int(tpl.id), int(made[0].id)}) == []


def test_pve_twenty_threads_mixing_create_and_delete(phv: hvkit.Hypervisor, pve: ProxmoxSimulator) -> None:
    """60 operations from 20 threads: every one succeeds (PVE serialises them with its locks)."""
    rng = random.Random(11)
    plans = [[rng.choice(["create", "create-delete"]) for _ in range(3)] for _ in range(20)]

    def worker(i: int) -> int:
        done = 0
        for j, op in enumerate(plans[i]):
            vm = phv.vms.create(pve_spec(f"mix-{i}-{j}"))
            done += 1
            if op == "create-delete":
                phv.vms.delete(vm)
        return done

    made, failed = race(20, worker)
    assert failed == [] and sum(made) == 60
    left = {int(v.id) for v in phv.vms.list()}
    assert len(left) == sum(plan.count("create") for plan in plans)
    assert pve_orphans(pve, left) == []


def test_vmware_four_creates_and_clones_of_one_name() -> None:
    """vcsim (like some vCenter folders) takes duplicate names: the backend checks by id after creating."""
    import shutil

    pytest.importorskip("pyVmomi")
    if shutil.which("go") is None:
        pytest.skip("vcsim needs the Go compiler")
    from hvkit.testing.vcsim import Vcsim, VcsimConfig

    config = VcsimConfig(esx=False, datastores=1, username="admin@vsphere.local", password="Sim-pa55word")
    with Vcsim(config) as vc:
        conns = [hvkit.connect(vc.url, password=vc.password, ca_file=vc.cert_file) for _ in range(4)]
        hv = conns[0]
        pool, net = hv.pools.list()[0].name, hv.networks.list()[-1].name
        twin = hvkit.VMSpec(
            name="twin", memory_mib=256, disks=[hvkit.DiskSpec(size_gib=1, pool=pool)], nics=[hvkit.NicSpec(net)]
        )
        made, failed = race(4, lambda i: conns[i].vms.create(twin))
        assert len(made) == 1 and all(isinstance(e, errors.AlreadyExists) for e in failed), failed
        assert [v.id for v in hv.vms.list() if v.name == "twin"] == [made[0].id]
        made, failed = race(4, lambda i: conns[i].vms.clone(made[0], "copy"))
        assert len(made) == 1 and all(isinstance(e, errors.AlreadyExists) for e in failed), failed
        assert [v.id for v in hv.vms.list() if v.name == "copy"] == [made[0].id]
        for conn in conns:
            conn.close()
