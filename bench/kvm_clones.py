"""Benchmark: provision N linked clones of one template on real QEMU (qemu:///system, TCG) and start them.

Prints the wall time to clone and start 1 clone, then N clones at once (hvkit ``wait=False`` Tasks:
N clone Tasks, then N start Tasks), and the ratio N / 1 — goal <= 3x for N = 10. "Running" means
libvirt reports the domain running; the time until each guest prints its boot marker on its serial
console is reported too (TCG guests share the CPUs, so booting N guests takes about N times the CPU
of one). Removes everything it made, also when it fails.

    .venv/bin/python bench/kvm_clones.py [N]
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable

import hvkit
from hvkit.errors import NotFound
from hvkit.hypervisor import Hypervisor
from hvkit.models import VM, DiskSpec, PowerState, VMSpec
from hvkit.tasks import Task
from hvkit.testing.guest_image import build_guest_image, find_marker

PREFIX = f"hvbench-lc-{uuid.uuid4().hex[:6]}-"
MARKER = "hvkit-bench-clones"
BOOT_TIMEOUT = 600.0


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as fh:  # noqa: PTH123
            return fh.read()
    except FileNotFoundError:
        return ""


def _marker_times(vms: list[VM], t0: float) -> list[float]:
    """Seconds from ``t0`` until each VM's serial log shows the template's marker."""
    found: dict[str, float] = {}
    deadline = time.monotonic() + BOOT_TIMEOUT
    while len(found) < len(vms) and time.monotonic() < deadline:
        for vm in vms:
            if vm.id not in found:
                marker = find_marker(_read(vm.extra["serial_log"]))
                if marker is not None:
                    if marker != MARKER:
                        raise AssertionError(f"{vm.name} booted a disk marked {marker!r}")
                    found[vm.id] = time.monotonic() - t0
        time.sleep(0.1)
    if len(found) < len(vms):
        raise TimeoutError(f"{len(vms) - len(found)} clones printed no marker in {BOOT_TIMEOUT:g} s")
    return sorted(found.values())


def provision(hv: Hypervisor, template: VM, names: list[str]) -> tuple[list[float], list[float], list[VM], list[float]]:
    """Clone ``names`` concurrently, then start them concurrently (hvkit ``wait=False`` Tasks).

    The clones are all made before the first start: a running TCG guest takes a whole CPU, which the
    next clone's qemu-img and the next QEMU start would wait for. Returns the seconds until each clone
    was made, until each VM ran, the VMs, and the seconds until each printed its boot marker.
    """
    t0 = time.monotonic()
    clone_tasks: list[Task] = [hv.vms.clone(template, n, linked=True, wait=False) for n in names]
    cloned = _finish_times(clone_tasks, t0)
    start_tasks: list[Task] = [hv.vms.start(task.wait(), wait=False) for task in clone_tasks]
    running = _finish_times(start_tasks, t0)
    vms = [task.wait() for task in start_tasks]
    assert all(vm.power_state is PowerState.RUNNING for vm in vms), [vm.power_state for vm in vms]
    return cloned, running, vms, _marker_times(vms, t0)


def _finish_times(tasks: list[Task], t0: float) -> list[float]:
    """Wait for every task (raising the first error); the sorted seconds from ``t0`` at which each finished."""
    done: dict[int, float] = {}
    while len(done) < len(tasks):
        for i, task in enumerate(tasks):
            if i not in done and task.done:
                task.wait()
                done[i] = time.monotonic() - t0
        if time.monotonic() - t0 > BOOT_TIMEOUT:
            raise TimeoutError(f"{len(tasks) - len(done)} tasks not done after {BOOT_TIMEOUT:g} s")
        time.sleep(0.005)
    return sorted(done.values())


def _remove(hv: Hypervisor, vms: list[VM]) -> None:
    for vm in vms:
        hv.vms.delete(vm, force=True)


def _fmt(times: list[float]) -> str:
    return f"first {times[0]:.2f} s, median {statistics.median(times):.2f} s, last {times[-1]:.2f} s"


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    signal.signal(signal.SIGTERM, _interrupt)  # a stopped run still removes its VMs and volumes
    image = build_guest_image(MARKER)
    with hvkit.connect("kvm:///system", virt_type="qemu") as hv:
        cleanups: list[Callable[[], object]] = []
        try:
            base = hv.volumes.create("default", f"{PREFIX}base.qcow2", image.stat().st_size / 1024**3)
            cleanups.append(lambda: hv.volumes.delete(base.id))
            hv.volumes.upload(base, image)
            template = hv.vms.create(VMSpec(f"{PREFIX}tmpl", cpus=1, memory_mib=128, disks=[DiskSpec(volume=base.id)]))
            cleanups.append(lambda: hv.vms.delete(template))

            cloned_one, run_one, vms, marks_one = provision(hv, template, [f"{PREFIX}one"])
            _remove(hv, vms)
            cloned, running, vms, marks = provision(hv, template, [f"{PREFIX}{i:02d}" for i in range(count)])
            _remove(hv, vms)

            print(f"{hv.backend.version}, virt_type qemu (TCG), {os.cpu_count()} CPUs, load now {_load()}")
            one = f"cloned {cloned_one[0]:.2f} s, running {run_one[0]:.2f} s, marker {marks_one[0]:.2f} s"
            print(f"1 linked clone: {one}")
            print(f"{count} linked clones: cloned {_fmt(cloned)}")
            print(f"{count} linked clones: running {_fmt(running)}")
            print(f"{count} linked clones: boot markers {_fmt(marks)}")
            print(f"ratio all {count} running / 1 running = {running[-1] / run_one[0]:.2f} (goal <= 3)")
            print(f"ratio all {count} booted / 1 booted = {marks[-1] / marks_one[0]:.2f}")
        finally:
            for vm in hv.vms.list():  # whatever a failure left, clones before the template
                if vm.name.startswith(PREFIX) and vm.name != f"{PREFIX}tmpl":
                    hv.vms.delete(vm, force=True)
            for undo in reversed(cleanups):
                try:
                    undo()
                except NotFound:
                    pass
            for vol in hv.volumes.list("default"):  # the template's overlays, made by each linked clone
                if vol.name.startswith(PREFIX):
                    hv.volumes.delete(vol)


if __name__ == "__main__":
    main()
