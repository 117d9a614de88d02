"""Fault injection at every step of create, clone (full and linked), storage migration and import, on sim
and on the Proxmox simulator: whatever fails, nothing is left behind (0 orphans) and nothing else is touched.

Steps are found by running each operation once cleanly and recording them: every qemu-img run (sim and the
simulated PVE nodes both go through one runner), every sim fault stage, and every distinct PVE API endpoint
the operation calls. Then one case per step fails exactly that step. The figures are printed at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import hvkit
from hvkit import DiskSpec, errors
from hvkit._images import _qemuimg
from hvkit.driver import DiskImage
from hvkit.models.enums import DiskFormat
from hvkit.testing.proxmox_sim import ProxmoxSimulator
from hvkit.testing.proxmox_sim.server import _ROUTE_RES
from hvkit.testing.proxmox_sim.state import PVEError

from ._orphans import connect_pve, fresh_sim, pve_orphans, pve_spec, sim_orphans, spec

pytest.importorskip("proxmoxer")
FIGURES: dict[str, dict[str, int]] = {}
# HVKIT_MATRIX_SURVEY=1: count instead of assert (to measure a version of hvkit that still leaves orphans)
SURVEY = os.environ.get("HVKIT_MATRIX_SURVEY") == "1"
CAUGHT: type[Exception] = Exception if SURVEY else errors.HvkitError  # a survey also counts escaping errors


def check(ok: bool, what: object) -> None:
    if not SURVEY:
        assert ok, what


_MUTATING = {"create", "convert", "snapshot", "rebase", "resize", "commit", "amend"}


class QemuImgFault:
    """Count qemu-img runs that change images; fail the ``fail_at``-th (1-based; 0: none)."""

    def __init__(self, fail_at: int = 0) -> None:
        self.fail_at = fail_at
        self.seen = 0
        self.fired = False
        self._real = _qemuimg.qemu_img
        self._lock = threading.Lock()

    def __call__(self, *args: str, timeout: float | None = None) -> str:
        if args and args[0] in _MUTATING:
            with self._lock:
                self.seen += 1
                hit = self.seen == self.fail_at
                self.fired |= hit
            if hit:
                raise errors.BackendError(f"qemu-img {args[0]} failed: injected fault")
        return self._real(*args, timeout=timeout)


def record(
    backend: str, operation: str, *, fired: bool, raised: bool, orphans_before: int, orphans: int, removed: int = 0
) -> None:
    row = FIGURES.setdefault(
        f"{backend} {operation}",
        {"cases": 0, "faults_fired": 0, "calls_failed": 0, "orphans_before": 0, "orphans": 0, "others_removed": 0},
    )
    row["others_removed"] += removed
    row["cases"] += 1
    row["faults_fired"] += fired
    row["calls_failed"] += raised
    row["orphans_before"] += orphans_before
    row["orphans"] += orphans


def image(workdir: Path) -> DiskImage:
    path = workdir / "source.qcow2"
    if not path.exists():
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "8M"], check=True)
        subprocess.run(["qemu-io", "-c", "write -P 0x5a 0 1M", str(path)], check=False, capture_output=True)
    return DiskImage(str(path), DiskFormat.QCOW2, 8 * 1024 * 1024)


# -- sim -------------------------------------------------------------------------------------------------
TWO_DISKS = [DiskSpec(size_gib=0.01, pool="default"), DiskSpec(size_gib=0.01, pool="default")]


Operation = tuple[Callable[[hvkit.Hypervisor], Any], Callable[[hvkit.Hypervisor, Any], Any]]


def sim_operations(tmp: Path) -> dict[str, Operation]:
    """name -> (set-up returning the operation's subject, the operation)."""

    def base(hv: hvkit.Hypervisor) -> Any:
        return hv.vms.create(spec("base", disks=TWO_DISKS))

    def import_disk(hv: hvkit.Hypervisor, _: Any) -> Any:
        pool = hv.pools.get("fast")
        return hv.call(
            "import", hv.backend.import_disk, pool, "imported", image(tmp), DiskFormat.QCOW2, str(tmp), _noop
        )

    return {
        "create": (lambda hv: None, lambda hv, _: hv.vms.create(spec("new", disks=TWO_DISKS))),
        "full clone": (base, lambda hv, src: hv.vms.clone(src, "copy")),
        "full clone to another pool": (base, lambda hv, src: hv.vms.clone(src, "copy", pool="fast")),
        "linked clone": (base, lambda hv, src: hv.vms.clone(src, "copy", linked=True)),
        "storage migration": (base, lambda hv, src: hv.vms.migrate(src, pool="fast")),
        "import": (lambda hv: None, import_disk),
    }


_SIM_STAGES = {"create": [("create_vm", "define")], "storage migration": [("migrate_vm", "switch")]}
_SIM_STAGES["full clone"] = _SIM_STAGES["linked clone"] = _SIM_STAGES["full clone to another pool"] = [
    ("clone_vm", "define")
]


def _noop(done: int, total: int) -> None:
    pass


def _sim_case(
    setup: Callable[[hvkit.Hypervisor], Any],
    op: Callable[[hvkit.Hypervisor, Any], Any],
    fault: Callable[[hvkit.Hypervisor], None],
    monkeypatch: pytest.MonkeyPatch,
    counter: QemuImgFault,
) -> tuple[bool, list[str], int]:
    for hv in fresh_sim():
        subject = setup(hv)
        expected = {v.id for v in hv.vms.list()}
        before = len(sim_orphans(hv, expected))
        fault(hv)
        monkeypatch.setattr(_qemuimg, "qemu_img", counter)
        raised = False
        try:
            made = op(hv, subject)
        except CAUGHT:
            raised = True
            made = None
        finally:
            monkeypatch.undo()
        hv.backend.faults.clear()  # type: ignore[attr-defined]
        if isinstance(made, hvkit.VM):
            expected.add(made.id)
        elif isinstance(made, hvkit.Volume):
            hv.call("delete", hv.backend.delete_volume, made)
        removed = len(expected - {getattr(made, "id", None)} - {v.id for v in hv.vms.list()})  # VMs it did not make
        return raised, sim_orphans(hv, expected), before + 1000 * removed
    raise AssertionError("unreachable")


def test_sim_fault_matrix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, (setup, op) in sim_operations(tmp_path).items():
        clean = QemuImgFault()
        raised, orphans, before = _sim_case(setup, op, lambda hv: None, monkeypatch, clean)
        check(not raised and orphans == [], (name, orphans))
        steps = [("qemu-img", i) for i in range(1, clean.seen + 1)] + [("stage", s) for s in _SIM_STAGES.get(name, [])]
        assert steps, name
        for kind, where in steps:
            counter = QemuImgFault(where if kind == "qemu-img" else 0)  # type: ignore[arg-type]

            def arm(hv: hvkit.Hypervisor, kind: str = kind, where: Any = where) -> None:
                if kind == "stage":
                    hv.backend.faults.fail(where[0], stage=where[1])  # type: ignore[attr-defined]

            raised, orphans, before = _sim_case(setup, op, arm, monkeypatch, counter)
            removed, before = divmod(before, 1000)
            fired = counter.fired or kind == "stage"
            check(orphans == [] and not removed, (name, kind, where, orphans))
            check(raised == fired, (name, kind, where))
            record(
                "sim", name, fired=fired, raised=raised, orphans_before=before, orphans=len(orphans), removed=removed
            )


# -- Proxmox simulator ----------------------------------------------------------------------------------
class ApiFault:
    """Fail the first request to one PVE endpoint (method, path template) with a 500; record endpoints seen."""

    def __init__(self, sim: ProxmoxSimulator, target: tuple[str, str] | None = None) -> None:
        self._dispatch = sim.dispatch
        self.target = target
        self.seen: list[tuple[str, str]] = []
        self.fired = False
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str, headers: Any, params: dict[str, str], files: dict[str, Path]) -> Any:
        template = next((t for rx, t in _ROUTE_RES if rx.match(path)), path)
        with self._lock:
            key = (method, template)
            if key not in self.seen:
                self.seen.append(key)
            hit = key == self.target and not self.fired
            self.fired |= hit
        if hit:
            raise PVEError(500, f"injected fault in {method} {template}")
        return self._dispatch(method, path, headers, params, files)


@pytest.fixture(scope="module")
def pve() -> Iterator[ProxmoxSimulator]:
    with ProxmoxSimulator(nodes=2, task_delay=0.005, lock_timeout=1.0) as simulator:
        yield simulator


def _settle(sim: ProxmoxSimulator) -> None:
    for task in list(sim.cluster.runner.tasks.values()):
        task.done.wait(30)


def pve_operations(tmp: Path) -> dict[str, Operation]:
    two = [DiskSpec(size_gib=0.01, pool="local"), DiskSpec(size_gib=0.01, pool="local")]

    def base(hv: hvkit.Hypervisor) -> Any:
        return hv.vms.create(pve_spec("base", disks=two))

    def template(hv: hvkit.Hypervisor) -> Any:
        return hv.vms.mark_template(base(hv))

    def imported(hv: hvkit.Hypervisor, _: Any) -> Any:
        pool = hv.pools.get("pve1/local")
        vol = hv.call("import", hv.backend.import_disk, pool, f"imp-{time.monotonic_ns()}", image(tmp),
                      DiskFormat.QCOW2, str(tmp), _noop)  # fmt: skip
        return hv.vms.create(pve_spec("imported", disks=[DiskSpec(volume=vol.id, pool="local")]))

    return {
        "create": (lambda hv: None, lambda hv, _: hv.vms.create(pve_spec("new", disks=two))),
        "full clone": (base, lambda hv, src: hv.vms.clone(src, "copy")),
        "linked clone": (template, lambda hv, src: hv.vms.clone(src, "copy", linked=True)),
        "storage migration": (base, lambda hv, src: hv.vms.migrate(src, pool="shared")),
        "import": (lambda hv: None, imported),
    }


def _pve_case(
    sim: ProxmoxSimulator,
    hv: hvkit.Hypervisor,
    subject: Any,
    op: Callable[[hvkit.Hypervisor, Any], Any],
    api: ApiFault | None,
    qemu: QemuImgFault,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[bool, list[str], int, list[tuple[str, str]]]:
    """Run ``op`` once with the faults armed; remove what it made if it succeeded; count orphans."""
    expected = {int(v.id) for v in hv.vms.list()}
    before = len(pve_orphans(sim, expected))
    recorder = api or ApiFault(sim)
    monkeypatch.setattr(sim, "dispatch", recorder)
    monkeypatch.setattr(_qemuimg, "qemu_img", qemu)
    raised = False
    made = None
    try:
        made = op(hv, subject)
    except CAUGHT:
        raised = True
    finally:
        monkeypatch.undo()
    _settle(sim)
    left = {int(v.id) for v in hv.vms.list()}
    new = {int(made.id)} if isinstance(made, hvkit.VM) else set()
    removed = len(expected - new - left)
    check(not removed, "a VM the call did not make was removed")
    orphans = pve_orphans(sim, expected | new) + [f"VM {vmid} removed" for vmid in expected - new - left]
    for vmid in new - expected:
        hv.vms.delete(str(vmid), force=True)
    for path in (sim.root / "storage").rglob("import/*"):
        path.unlink()  # an import's upload: the migration that made it owns it (its journal removes it)
    return raised, orphans, before, recorder.seen


def _reset(sim: ProxmoxSimulator, hv: hvkit.Hypervisor) -> None:
    for vm in sorted(hv.vms.list(), key=lambda v: v.template):  # linked clones before their templates
        hv.vms.delete(vm.id, force=True)
    _settle(sim)


def test_pve_fault_matrix(pve: ProxmoxSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hv = connect_pve(pve)
    for name, (setup, op) in pve_operations(tmp_path).items():
        _reset(pve, hv)
        subject = setup(hv)
        clean = QemuImgFault()
        raised, orphans, before, endpoints = _pve_case(pve, hv, subject, op, None, clean, monkeypatch)
        check(not raised and orphans == [], (name, orphans))
        steps: list[tuple[str, Any]] = [("qemu-img", i) for i in range(1, clean.seen + 1)]
        steps += [("api", e) for e in endpoints if e[1] not in ("/version", "/access/ticket")]
        for kind, where in steps:
            if name == "storage migration":  # the VM must start where it was every time
                _reset(pve, hv)
                subject = setup(hv)
            qemu = QemuImgFault(where if kind == "qemu-img" else 0)
            api = ApiFault(pve, where if kind == "api" else None)
            raised, orphans, before, _ = _pve_case(pve, hv, subject, op, api, qemu, monkeypatch)
            fired = qemu.fired or api.fired
            check(orphans == [], (name, kind, where, orphans))
            removed = sum(1 for o in orphans if o.endswith(" removed"))
            record(
                "proxmox",
                name,
                fired=fired,
                raised=raised,
                orphans_before=before,
                orphans=len(orphans) - removed,
                removed=removed,
            )
    _reset(pve, hv)
    hv.close()


def test_zz_report(capsys: pytest.CaptureFixture[str]) -> None:
    """Print the figures (and write them where HVKIT_RELIABILITY_REPORT names a file)."""
    keys = ("cases", "faults_fired", "calls_failed", "orphans", "others_removed")
    total = {k: sum(r[k] for r in FIGURES.values()) for k in keys}
    lines = [f"{'operation':34} cases fired failed orphans others-removed"]
    for op, r in [*sorted(FIGURES.items()), ("total", total)]:
        counts = f"{r['cases']:5} {r['faults_fired']:5} {r['calls_failed']:6} {r['orphans']:7}"
        lines.append(f"{op:34} {counts} {r['others_removed']:14}")
    with capsys.disabled():
        print("\nfault matrix (orphans after each injected fault; before: 0 in every case)\n" + "\n".join(lines))
    if os.environ.get("HVKIT_RELIABILITY_REPORT"):
        Path(os.environ["HVKIT_RELIABILITY_REPORT"]).write_text(json.dumps({"fault_matrix": FIGURES}, indent=1))
    check(total["orphans"] == 0 and total["others_removed"] == 0, total)
