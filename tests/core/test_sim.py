"""The sim backend's own behaviour: faults, rollback, persistence, data, tasks, events, metrics."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import hvkit
from hvkit import DiskSpec, NicSpec, PowerState, TaskState, VMSpec, errors
from hvkit.tasks import TaskInfo, wait_for
from hvkit.testing.recording import RecordingBackend

MIB = 1024 * 1024


def spec(name: str, **kw: object) -> VMSpec:
    fields: dict[str, object] = {"memory_mib": 256, "disks": [DiskSpec(size_gib=0.01)], "nics": [NicSpec("default")]}
    return VMSpec(name=name, **{**fields, **kw})  # type: ignore[arg-type]


def files(hv: hvkit.Hypervisor) -> set[str]:
    root = hv.backend.world.root / "pools"  # type: ignore[attr-defined]
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_failed_create_leaves_nothing(sim: hvkit.Hypervisor) -> None:
    before = files(sim)
    sim.backend.faults.fail("create_vm", stage="define")  # type: ignore[attr-defined]
    with pytest.raises(errors.BackendError, match="injected"):
        sim.vms.create(spec("half", disks=[DiskSpec(size_gib=0.01), DiskSpec(size_gib=0.01)]))
    assert files(sim) == before and sim.vms.list() == [] and sim.volumes.list() == []


def test_failed_clone_leaves_nothing(sim: hvkit.Hypervisor) -> None:
    vm = sim.vms.create(spec("src"))
    before = files(sim)
    sim.backend.faults.fail("clone_vm", stage="define")  # type: ignore[attr-defined]
    with pytest.raises(errors.BackendError):
        sim.vms.clone(vm, "copy")
    assert files(sim) == before and [v.name for v in sim.vms.list()] == ["src"]


def test_dropped_connection_and_retry(sim: hvkit.Hypervisor) -> None:
    sim.backend.faults.drop_connection()  # type: ignore[attr-defined]
    with pytest.raises(errors.ConnectionError):
        sim.vms.list()
    assert sim.vms.list() == []


def test_slow_task_times_out_and_cancel_changes_nothing(sim: hvkit.Hypervisor) -> None:
    sim.backend.faults.slow("create_vm", 5.0)  # type: ignore[attr-defined]
    with pytest.raises(errors.Timeout, match="did not finish within"):
        sim.vms.create(spec("slow"), timeout=0.2)
    task = sim.vms.create(spec("slow2"), wait=False)
    time.sleep(0.3)
    inner = task.info()
    assert inner.state is TaskState.RUNNING and 0 <= inner.progress < 100
    sim.backend.faults.clear()  # type: ignore[attr-defined]


def test_cancel_through_the_core(sim: hvkit.Hypervisor) -> None:
    sim.backend.faults.slow("create_vm", 3.0)  # type: ignore[attr-defined]
    task = sim.vms.create(spec("cancelled"), wait=False)
    time.sleep(0.2)
    task.cancel()
    info = wait_for(task.info, timeout=5, what="cancel")
    assert info.state is TaskState.CANCELLED
    assert [v.name for v in sim.vms.list()] == [] and sim.volumes.list() == []


def test_progress_is_reported(sim: hvkit.Hypervisor) -> None:
    sim.backend.faults.slow("create_vm", 0.5)  # type: ignore[attr-defined]
    seen: list[TaskInfo] = []
    sim.vms.create(spec("progress"), progress=seen.append)
    progress = [i.progress for i in seen]
    assert progress == sorted(progress) and progress[-1] == 100 and len(set(progress)) >= 3


def test_invalid_requests_reach_no_backend_call() -> None:
    hvkit.register("rec", "hvkit.testing.recording:RecordingBackend")
    with hvkit.connect("rec://recorded") as hv:
        rec = hv.backend
        assert isinstance(rec, RecordingBackend)
        vm = hv.vms.create(spec("real"))
        rec.calls.clear()
        bad_calls: list[Callable[[], object]] = [
            lambda: hv.vms.create("web"),  # type: ignore[arg-type]
            lambda: hv.vms.reconfigure(vm),
            lambda: hv.vms.reconfigure(vm, cpus=0),
            lambda: hv.vms.clone(vm, "bad/name"),
            lambda: hv.vms.migrate(vm),
            lambda: hv.vms.stop(vm, timeout=0),
            lambda: hv.vms.get(""),
            lambda: hv.snapshots.create(vm, ""),
            lambda: hv.snapshots.revert("snap"),  # type: ignore[arg-type]
            lambda: hv.volumes.create("default", "v", -1),
            lambda: hv.volumes.create("default", "", 1),
            lambda: hv.volumes.upload("x", "/nonexistent/file"),
        ]
        for call in bad_calls:
            with pytest.raises(errors.InvalidSpec):
                call()
        assert rec.calls == []
        # Requests that name what does not exist are checked with reads only: nothing is changed.
        for call in (
            lambda: hv.vms.create(spec("x", disks=[DiskSpec(size_gib=1, pool="nope")])),
            lambda: hv.vms.create(spec("x", nics=[NicSpec("nope")])),
            lambda: hv.vms.create(spec("x", host="nope")),
            lambda: hv.vms.create(spec("real")),
            lambda: hv.vms.create(spec("x", disks=[DiskSpec(size_gib=1, pool="fast", format="vmdk")])),
            lambda: hv.vms.start("nope"),
        ):
            with pytest.raises((errors.NotFound, errors.AlreadyExists, errors.InvalidSpec)):
                call()
        assert rec.mutating_calls() == []
        hv.vms.delete(vm)
    hvkit._registry._registered.pop("rec", None)


def test_snapshot_revert_restores_disk_data(sim: hvkit.Hypervisor) -> None:
    for fmt in ("qcow2", "raw"):
        vm = sim.vms.create(spec(f"data-{fmt}", disks=[DiskSpec(size_gib=4 / 1024, format=fmt)]))
        vol = vm.disks[0].volume
        assert vol is not None
        first = os.urandom(MIB)
        sim.volumes.upload(vol, io.BytesIO(first))
        snap = sim.snapshots.create(vm, "good")
        sim.volumes.upload(vol, io.BytesIO(os.urandom(MIB)))
        sim.snapshots.revert(snap)
        out = io.BytesIO()
        sim.volumes.download(vol, out)
        assert out.getvalue()[:MIB] == first
        sim.vms.delete(vm)


def test_linked_clone_protects_its_base(sim: hvkit.Hypervisor) -> None:
    base = sim.vms.create(spec("base"))
    clone = sim.vms.clone(base, "child", linked=True)
    assert clone.disks[0].format is hvkit.DiskFormat.QCOW2
    assert sim.volumes.get(clone.disks[0].volume).backing == base.disks[0].volume  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidState, match="linked clones"):
        sim.vms.delete(base)
    with pytest.raises(errors.InvalidState):
        sim.volumes.delete(base.disks[0].volume)  # type: ignore[arg-type]
    sim.vms.delete(clone)
    sim.vms.delete(base)


def test_graceful_stop_timeout(sim: hvkit.Hypervisor) -> None:
    vm = sim.vms.start(sim.vms.create(spec("stubborn")))
    sim.backend.set_guest_ignores_shutdown(vm)  # type: ignore[attr-defined]
    with pytest.raises(errors.Timeout, match="did not shut down"):
        sim.vms.stop(vm, timeout=0.2)
    assert sim.vms.get(vm).power_state is PowerState.RUNNING
    assert sim.vms.stop(vm, force=True).power_state is PowerState.STOPPED


def test_crash_and_maintenance(sim: hvkit.Hypervisor) -> None:
    vm = sim.vms.start(sim.vms.create(spec("crashy")))
    sim.backend.crash(vm)  # type: ignore[attr-defined]
    assert sim.vms.get(vm).power_state is PowerState.CRASHED
    sim.vms.stop(vm, force=True)
    sim.backend.set_maintenance(vm.host)  # type: ignore[attr-defined]
    with pytest.raises(errors.InvalidState, match="maintenance"):
        sim.vms.start(vm)
    other = next(h for h in sim.hosts.list() if h.id != vm.host)
    sim.backend.set_maintenance(other.id)  # type: ignore[attr-defined]
    with pytest.raises(errors.InvalidState, match="maintenance"):
        sim.vms.migrate(vm, host=other.id)


def test_host_capacity_is_enforced() -> None:
    with hvkit.connect("sim://tiny", hosts=1, host_memory_mib=1024) as hv:
        a = hv.vms.start(hv.vms.create(VMSpec(name="a", memory_mib=768)))
        b = hv.vms.create(VMSpec(name="b", memory_mib=512))
        with pytest.raises(errors.InsufficientCapacity, match="MiB free"):
            hv.vms.start(b)
        hv.vms.stop(a, force=True)
        assert hv.vms.start(b).power_state is PowerState.RUNNING


def test_events_metrics_and_ips(sim: hvkit.Hypervisor) -> None:
    events: list[dict[str, object]] = []
    stop_watching = sim.vms.watch(events.append)
    vm = sim.vms.start(sim.vms.create(spec("watched", extra={"sim.load": 0.8})))
    assert vm.ip_addresses and sim.vms.guest_ips(vm) == list(vm.ip_addresses)
    time.sleep(0.05)
    (metrics,) = sim.vms.metrics([vm])
    assert metrics.cpu_usage == 0.8 and metrics.cpu_time_ns and metrics.cpu_time_ns > 0
    host = next(m for m in sim.hosts.metrics() if m.host == vm.host)
    assert host.memory_used_mib == 256
    vm = sim.vms.stop(vm, force=True)
    assert vm.ip_addresses == ()
    stop_watching()
    sim.vms.delete(vm)
    assert [e["event"] for e in events] == ["defined", "started", "stopped"]


def test_state_dir_keeps_vms_between_processes(tmp_path: Path) -> None:
    env = {**os.environ, "HVKIT_SIM_STATE_DIR": str(tmp_path)}
    run = [sys.executable, "-m", "hvkit"]
    subprocess.run(
        [*run, "vm", "create", "kept", "--disk", "0.01", "--nic", "default"], env=env, check=True, capture_output=True
    )
    out = subprocess.run([*run, "--json", "vm", "list"], env=env, check=True, capture_output=True, text=True).stdout
    assert '"name": "kept"' in out


def test_untranslated_exception_becomes_backend_error(sim: hvkit.Hypervisor) -> None:
    empty: dict[str, int] = {}
    with pytest.raises(errors.BackendError, match="KeyError") as info:
        sim.call("probe", lambda: empty["missing"])
    assert isinstance(info.value.__cause__, KeyError)


def test_snapshots_of_many_vms(sim: hvkit.Hypervisor) -> None:
    a, b = sim.vms.create(spec("many-a")), sim.vms.create(spec("many-b"))
    snap = sim.snapshots.create(a, "one")
    bulk = sim.snapshots.list_many(sim.vms.list())
    assert bulk == {a.id: [snap], b.id: []}
    with pytest.raises(errors.InvalidSpec):
        sim.snapshots.list_many(["many-a"])  # type: ignore[list-item]
