"""A call that raises Timeout has cancelled its work or removed it: never a silent VM afterwards."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import hvkit
from hvkit import errors, hypervisor
from hvkit.models.enums import TaskState
from hvkit.tasks import Task, TaskInfo
from hvkit.testing.proxmox_sim import ProxmoxSimulator

from ._orphans import connect_pve, fresh_sim, pve_orphans, pve_spec, sim_orphans, spec

pytest.importorskip("proxmoxer")
SETTLE = 0.8  # longer than the slowed task: whatever it would have made exists by now


@pytest.fixture
def sim() -> Iterator[hvkit.Hypervisor]:
    yield from fresh_sim()


@pytest.fixture(scope="module")
def pve() -> Iterator[ProxmoxSimulator]:
    with ProxmoxSimulator(nodes=2, task_delay=0.02, lock_timeout=1.0) as simulator:
        yield simulator


@contextlib.contextmanager
def slow_tasks(pve: ProxmoxSimulator, step: float = 1.0) -> Iterator[None]:
    """PVE tasks started meanwhile take ``step`` s per step: far longer than the timeouts tried."""
    before, pve.cluster.runner.delay = pve.cluster.runner.delay, step
    try:
        yield
    finally:
        pve.cluster.runner.delay = before


@pytest.fixture
def phv(pve: ProxmoxSimulator) -> Iterator[hvkit.Hypervisor]:
    hv = connect_pve(pve)
    yield hv
    for vm in sorted(hv.vms.list(), key=lambda v: v.template):  # linked clones before their templates
        hv.vms.delete(vm.id, force=True)
    hv.close()


# -- sim ----------------------------------------------------------------------------------------------
def test_sim_create_timeout_leaves_no_vm(sim: hvkit.Hypervisor) -> None:
    sim.backend.faults.slow("create_vm", 0.5)  # type: ignore[attr-defined]
    with pytest.raises(errors.Timeout, match="cancelled") as caught:
        sim.vms.create(spec("late"), timeout=0.1)
    assert caught.value.task is None
    time.sleep(SETTLE)
    assert sim.vms.list() == [] and sim_orphans(sim, set()) == []


@pytest.mark.parametrize("linked", [False, True])
def test_sim_clone_timeout_leaves_no_vm(sim: hvkit.Hypervisor, linked: bool) -> None:
    src = sim.vms.create(spec("src"))
    sim.backend.faults.slow("clone_vm", 0.5)  # type: ignore[attr-defined]
    with pytest.raises(errors.Timeout, match="cancelled"):
        sim.vms.clone(src, "late", linked=linked, timeout=0.1)
    time.sleep(SETTLE)
    assert [v.id for v in sim.vms.list()] == [src.id] and sim_orphans(sim, {src.id}) == []


def test_sim_snapshot_timeout_leaves_no_snapshot(sim: hvkit.Hypervisor) -> None:
    vm = sim.vms.create(spec("snapped"))
    sim.backend.faults.slow("create_snapshot", 0.5)  # type: ignore[attr-defined]
    with pytest.raises(errors.Timeout):
        sim.snapshots.create(vm, "late", timeout=0.1)
    time.sleep(SETTLE)
    assert sim.snapshots.list(vm) == []


def test_sim_timeout_without_waiting(sim: hvkit.Hypervisor) -> None:
    sim.backend.faults.slow("create_vm", 0.5)  # type: ignore[attr-defined]
    task = sim.vms.create(spec("late"), wait=False, timeout=0.1)
    with pytest.raises(errors.Timeout):
        task.wait(5)
    time.sleep(SETTLE)
    assert sim.vms.list() == [] and sim_orphans(sim, set()) == []


# -- the core's contract, with a task that cannot be cancelled ----------------------------------------
class _Uncancellable:
    """A vendor task that ignores cancel and makes a VM after ``seconds``."""

    def __init__(self, hv: hvkit.Hypervisor, seconds: float) -> None:
        self._info = TaskInfo(TaskState.RUNNING, 10)
        self.made: list[str] = []

        def run() -> None:
            time.sleep(seconds)
            vm = hv.vms.create(spec("made-late"))
            self.made.append(vm.id)
            self._info = TaskInfo(TaskState.SUCCESS, 100, result=vm.id)

        threading.Thread(target=run, daemon=True).start()

    def poll(self) -> TaskInfo:
        return self._info

    def cancel(self) -> None:
        raise errors.Unsupported("test", "cancel")


def _late_create(hv: hvkit.Hypervisor, seconds: float) -> tuple[Any, _Uncancellable]:
    source = _Uncancellable(hv, seconds)
    task = Task(id="t-1", operation="vms.create", target="made-late", source=source)
    run = hv.run(
        "vms.create",
        "made-late",
        lambda: task,
        wait=True,
        timeout=0.1,
        undo=hv.vms._remove_made("vms.create"),
    )
    return run, source


def test_core_removes_what_an_uncancellable_task_made_late(sim: hvkit.Hypervisor) -> None:
    named_like_it = sim.vms.create(spec("vm-2"))  # a VM *named* like the id the late VM will get
    with pytest.raises(errors.Timeout, match="removed again"):
        _late_create(sim, 0.4)
    assert [v.id for v in sim.vms.list()] == [named_like_it.id]


def test_core_hands_over_a_task_that_runs_on(sim: hvkit.Hypervisor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hypervisor, "CANCEL_GRACE", 0.2)
    with pytest.raises(errors.Timeout, match="still runs as task t-1") as caught:
        _late_create(sim, 0.6)
    running = caught.value.task
    assert isinstance(running, Task)
    made = running.wait(5)
    deadline = time.monotonic() + 5
    while sim.vms.list() and time.monotonic() < deadline:
        time.sleep(0.05)  # the watcher removes it once it is done
    assert made and sim.vms.list() == []


# -- Proxmox simulator --------------------------------------------------------------------------------
def test_pve_create_timeout_leaves_no_vm(phv: hvkit.Hypervisor, pve: ProxmoxSimulator) -> None:
    with slow_tasks(pve), pytest.raises(errors.Timeout, match=r"cancelled and left nothing|removed again") as caught:
        phv.vms.create(pve_spec("late"), timeout=0.05)
    assert caught.value.task is None
    time.sleep(1.0)
    assert phv.vms.list() == [] and pve_orphans(pve, set()) == []


@pytest.mark.parametrize("linked", [False, True])
def test_pve_clone_timeout_leaves_no_vm(phv: hvkit.Hypervisor, pve: ProxmoxSimulator, linked: bool) -> None:
    tpl = phv.vms.mark_template(phv.vms.create(pve_spec("tpl")))
    with slow_tasks(pve), pytest.raises(errors.Timeout, match=r"cancelled and left nothing|removed again") as caught:
        phv.vms.clone(tpl, "late", linked=linked, timeout=0.05)
    assert caught.value.task is None
    time.sleep(1.0)
    assert [v.id for v in phv.vms.list()] == [tpl.id] and pve_orphans(pve, {int(tpl.id)}) == []


def test_pve_snapshot_timeout_leaves_no_snapshot(phv: hvkit.Hypervisor, pve: ProxmoxSimulator) -> None:
    vm = phv.vms.create(pve_spec("snapped"))
    with slow_tasks(pve), pytest.raises(errors.Timeout):
        phv.snapshots.create(vm, "late", timeout=0.05)
    time.sleep(0.5)
    assert phv.snapshots.list(vm) == []
