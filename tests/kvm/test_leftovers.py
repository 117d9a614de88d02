"""A failing test leaves nothing behind: its domains (a running UEFI guest with NVRAM too), volumes, libvirt
peers (network namespace, daemons, files).

Each test here runs a small generated test file in a pytest of its own, with this suite's fixtures, whose
tests fail on purpose; then it looks for anything with the failed tests' prefixes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hvkit.hypervisor import Hypervisor
from hvkit.testing.libvirt_peer import LibvirtPeer

from .conftest import PEER_PREFIX, RUNS, _left, _qemu_available, _sweep_dead_runs, kvm_backend
from .test_migrate import _peer_missing

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = """
from tests.kvm.conftest import _run_swept, _terminate_runs_teardown, prefix, qemu_hv, qemu_session  # noqa: F401
from tests.kvm.test_migrate import peer, peer_swept  # noqa: F401
"""

FAILING = """
import hvkit
from hvkit.models import DiskSpec, Firmware, VMSpec


def test_uefi_guest_fails(qemu_hv, prefix):
    print(f"PREFIX={prefix}", flush=True)
    vm = qemu_hv.vms.create(
        VMSpec(prefix + "uefi", memory_mib=128, firmware=Firmware.UEFI, disks=[DiskSpec(size_gib=0.01, pool="default")])
    )
    qemu_hv.vms.start(vm)  # OVMF runs: the domain has its NVRAM file now
    raise AssertionError("fails on purpose, a UEFI guest running")


def test_killed(qemu_hv, prefix):
    import os, signal

    qemu_hv.vms.create(VMSpec(prefix + "killed", memory_mib=64, disks=[DiskSpec(size_gib=0.01, pool="default")]))
    print(f"PREFIX={prefix}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no finalizer runs


def test_peer_fails(peer_swept, prefix):
    print(f"PEER={peer_swept.name} {peer_swept.base} {prefix}", flush=True)
    with hvkit.connect("kvm:///system", uri=peer_swept.uri, virt_type="qemu") as on_peer:
        on_peer.vms.create(VMSpec(prefix + "onpeer", memory_mib=64, disks=[DiskSpec(size_gib=0.01, pool="default")]))
    raise AssertionError("fails on purpose, a peer running with a VM")
"""


def run_failing(tmp_path: Path, select: str, *, killed: bool = False) -> str:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_fails.py").write_text(textwrap.dedent(FAILING))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path), "-q", "-s", "-p", "no:cacheprovider", "-k", select,
         "--rootdir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    if killed:
        assert proc.returncode == -9, out[-3000:]
        return out
    assert proc.returncode == 1, out[-3000:]  # the test failed, as it should; its teardown did not error
    assert re.search(r"\b1 failed\b", out) and not re.search(r"\b\d+ errors?\b", out), out[-3000:]
    return out


def test_a_failed_uefi_test_leaves_no_domain(qemu_session: Hypervisor, tmp_path: Path) -> None:
    from hvkit.capabilities import Capability

    if Capability.UEFI not in qemu_session.capabilities:
        pytest.skip("no OVMF firmware for libvirt here (Debian: apt-get install ovmf)")
    out = run_failing(tmp_path, "uefi")
    match = re.search(r"PREFIX=(\S+)", out)
    assert match, out[-3000:]
    prefix = match.group(1)
    assert _left(kvm_backend(qemu_session).conn, prefix) == []
    nvram = Path("/var/lib/libvirt/qemu/nvram")
    assert not list(nvram.glob(f"{prefix}*")) if nvram.is_dir() else True


def test_a_failed_peer_test_leaves_no_namespace(tmp_path: Path) -> None:
    reason = _peer_missing() or _qemu_available()
    if reason:
        pytest.skip(reason)
    out = run_failing(tmp_path, "peer")
    match = re.search(r"PEER=(\S+) (\S+) (\S+)", out)
    assert match, out[-3000:]
    name, base = match.group(1), Path(match.group(2))
    assert not Path(f"/run/netns/{name}").exists()
    assert not base.exists()
    assert subprocess.run(["ip", "netns", "pids", name], capture_output=True).returncode != 0  # no such namespace


def test_a_peer_that_fails_to_start_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A start failing at its last step (the daemons run already) stops them and removes the namespace."""
    reason = _peer_missing() or _qemu_available()
    if reason:
        pytest.skip(reason)
    seen: list[int] = []

    def refuse(self: LibvirtPeer) -> None:
        seen.extend(self.pids())
        raise RuntimeError("the default pool is refused on purpose")

    monkeypatch.setattr(LibvirtPeer, "_ensure_default_pool", refuse)
    peer = LibvirtPeer(f"{PEER_PREFIX}f")
    with pytest.raises(RuntimeError, match="on purpose"):
        peer.start()
    assert seen, "the daemons never ran: the failure was not at the last step"
    assert not Path(f"/run/netns/{peer.netns}").exists()
    assert not peer.base.exists()
    alive = [pid for pid in seen if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
    assert alive == []


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def test_a_killed_run_is_swept_by_the_next(qemu_session: Hypervisor, tmp_path: Path) -> None:
    """A run killed (SIGKILL) in the middle of a test runs no finalizer: its lock file, which nobody holds any
    more, tells the next run to remove what carries its prefix."""
    out = run_failing(tmp_path, "killed", killed=True)
    match = re.search(r"PREFIX=hvt-(\w+)-", out)
    assert match, out[-3000:]
    run = match.group(1)
    conn = kvm_backend(qemu_session).conn
    assert _left(conn, f"hvt-{run}-"), "the killed run left nothing: the test proves nothing"
    assert (RUNS / f"{run}.lock").exists()
    _sweep_dead_runs()
    assert _left(conn, f"hvt-{run}-") == []
    assert not (RUNS / f"{run}.lock").exists()
