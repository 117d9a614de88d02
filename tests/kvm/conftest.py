"""Fixtures for the kvm backend: libvirt's test:///default driver (fast) and qemu:///system (real guests).

Every object a test makes carries the run's unique name prefix; a finalizer removes whatever is left
with that prefix (domains, volumes, networks, pools), even when a test fails, and fails the teardown if
something stays. Libvirt peers (second daemons in their own namespaces) are named with the run's peer
prefix; the end of the session removes any left (namespace, processes, files), as a last net under the
peer fixtures' own finalizers. A run that died without its finalizers (SIGKILL) is found by its lock file,
which no process holds any more: the next run removes what it left.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import tempfile
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hvkit
from hvkit.hypervisor import Hypervisor

libvirt = pytest.importorskip("libvirt")

from hvkit.backends.kvm import KvmBackend  # noqa: E402

RUN = uuid.uuid4().hex[:6]
PREFIX = f"hvt-{RUN}-"  # every libvirt object a test of this run makes
PEER_PREFIX = f"hvp{RUN}"  # every libvirt peer (namespaced daemon) of this run: hvkit.testing.libvirt_peer


def kvm_backend(hv: Hypervisor) -> KvmBackend:
    """The hypervisor's backend as the kvm driver (its libvirt connection, serial reader, local paths)."""
    assert isinstance(hv.backend, KvmBackend)
    return hv.backend


def sweep(hv: Hypervisor, prefix: str) -> None:
    """Remove what carries ``prefix`` on the hypervisor's daemon; fail (loudly, in the teardown) if any stays."""
    left = _sweep(kvm_backend(hv).conn, prefix)
    assert not left, f"the sweep of {prefix!r} could not remove: {', '.join(left)}"


def _undefine_flags(*names: str) -> int:
    return sum(int(getattr(libvirt, f"VIR_DOMAIN_UNDEFINE_{n}", 0)) for n in names)


# every flag first (a UEFI guest's NVRAM, a TPM's state, snapshot and checkpoint metadata, a managed save);
# then fewer, for drivers that refuse flags they do not know (the test driver); then none
_UNDEFINE = (
    ("MANAGED_SAVE", "SNAPSHOTS_METADATA", "CHECKPOINTS_METADATA", "NVRAM", "TPM"),
    ("MANAGED_SAVE", "SNAPSHOTS_METADATA", "NVRAM"),
    ("MANAGED_SAVE", "SNAPSHOTS_METADATA"),
)


def _remove_domain(dom: Any) -> None:
    log = None
    with contextlib.suppress(libvirt.libvirtError):
        log_el = ET.fromstring(dom.XMLDesc(0)).find("devices/serial/log")
        log = log_el.get("file") if log_el is not None else None
    with contextlib.suppress(libvirt.libvirtError):
        if dom.isActive():
            dom.destroy()
    for flags in _UNDEFINE:
        try:
            dom.undefineFlags(_undefine_flags(*flags))
            break
        except libvirt.libvirtError:
            continue
    else:
        with contextlib.suppress(libvirt.libvirtError):
            dom.undefine()
    if log and Path(log).name.startswith("hvkit-"):  # the serial log hvkit gave the VM (named by its UUID)
        with contextlib.suppress(OSError):
            Path(log).unlink(missing_ok=True)


def _sweep(c: Any, prefix: str) -> list[str]:
    """Remove every domain, volume, network and pool whose name starts with ``prefix`` (``c``: a virConnect),
    whatever state it is in (running, paused, UEFI with NVRAM, with snapshots); return what is still there."""
    for dom in c.listAllDomains(0):
        if dom.name().startswith(prefix):
            _remove_domain(dom)
    for pool in c.listAllStoragePools(0):
        if not pool.isActive():
            continue
        with contextlib.suppress(libvirt.libvirtError):
            pool.refresh(0)
        vols = [v for v in pool.listAllVolumes(0) if v.name().startswith(prefix)]
        for _ in range(3):  # overlays before their bases: a base refused while an overlay exists goes next round
            for vol in sorted(vols, key=lambda v: -len(v.name())):
                with contextlib.suppress(libvirt.libvirtError):
                    vol.delete(0)
            with contextlib.suppress(libvirt.libvirtError):
                pool.refresh(0)
            vols = [v for v in pool.listAllVolumes(0) if v.name().startswith(prefix)]
            if not vols:
                break
    for net in c.listAllNetworks(0):
        if net.name().startswith(prefix):
            with contextlib.suppress(libvirt.libvirtError):
                net.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                net.undefine()
    for pool in c.listAllStoragePools(0):
        if pool.name().startswith(prefix):
            with contextlib.suppress(libvirt.libvirtError):
                for vol in pool.listAllVolumes(0) if pool.isActive() else []:
                    with contextlib.suppress(libvirt.libvirtError):
                        vol.delete(0)
            with contextlib.suppress(libvirt.libvirtError):
                if pool.isActive():
                    pool.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                pool.delete(0)  # its (now empty) directory
            with contextlib.suppress(libvirt.libvirtError):
                pool.undefine()
    return _left(c, prefix)


def _left(c: Any, prefix: str) -> list[str]:
    """What carries ``prefix`` on the daemon: domains, volumes, networks, pools."""
    left = [f"domain {d.name()}" for d in c.listAllDomains(0) if d.name().startswith(prefix)]
    for pool in c.listAllStoragePools(0):
        if pool.name().startswith(prefix):
            left.append(f"pool {pool.name()}")
        with contextlib.suppress(libvirt.libvirtError):
            if pool.isActive():
                left += [f"volume {v.path()}" for v in pool.listAllVolumes(0) if v.name().startswith(prefix)]
    left += [f"network {n.name()}" for n in c.listAllNetworks(0) if n.name().startswith(prefix)]
    return left


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    return f"{PREFIX}{request.node.name[:20].replace('[', '-').replace(']', '')}-"


@pytest.fixture
def test_hv(prefix: str) -> Iterator[Hypervisor]:
    """libvirt's in-memory test driver: fast, no guests."""
    with hvkit.connect("libvirt://test/default") as hv:
        try:
            yield hv
        finally:
            sweep(hv, prefix)


def _qemu_available() -> str | None:
    try:
        conn = libvirt.open("qemu:///system")
    except libvirt.libvirtError as exc:
        return f"no libvirtd at qemu:///system ({exc.get_error_message()}); run scripts/setup.d/20-kvm.sh"
    try:
        conn.storagePoolLookupByName("default")
    except libvirt.libvirtError:
        return "qemu:///system has no 'default' storage pool; run scripts/setup.d/20-kvm.sh"
    finally:
        conn.close()
    return None


@pytest.fixture(scope="session", autouse=True)
def _terminate_runs_teardown() -> Iterator[None]:
    """SIGTERM (``timeout``, a CI stop) ends the run like Ctrl-C, so the sweeps still remove what tests made."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt("SIGTERM")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# A run holds an exclusive lock on RUNS/<run>.lock while it lives: a lock file nobody holds is a run that
# died without its finalizers (SIGKILL, a crashed machine), whose objects the next run removes.
RUNS = Path(tempfile.gettempdir()) / "hvkit-kvm-runs"


def _sweep_peers(peer_prefix: str) -> list[str]:
    if os.geteuid() != 0 or not Path("/run/netns").is_dir():
        return []
    from hvkit.testing.libvirt_peer import sweep_peers

    return sweep_peers(peer_prefix)


def _sweep_dead_runs() -> None:
    """Remove what runs that died left (their domains etc. on qemu:///system, their peers), then their lock files."""
    for lock in RUNS.glob("*.lock"):
        run = lock.stem
        if run == RUN or not run.isalnum():
            continue
        with contextlib.suppress(OSError), lock.open("a") as held:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # that run lives
            with contextlib.suppress(libvirt.libvirtError):
                conn = libvirt.open("qemu:///system")
                try:
                    _sweep(conn, f"hvt-{run}-")
                finally:
                    conn.close()
            _sweep_peers(f"hvp{run}")
            lock.unlink(missing_ok=True)


@pytest.fixture(scope="session", autouse=True)
def _run_swept() -> Iterator[None]:
    """Whatever the outcome, no libvirt peer of this run outlives the session; what dead runs left goes first."""
    RUNS.mkdir(exist_ok=True)
    with contextlib.suppress(OSError):
        RUNS.chmod(0o1777)  # runs of every user
    fd, tmp = tempfile.mkstemp(dir=RUNS, prefix=".new-")
    fcntl.flock(fd, fcntl.LOCK_EX)
    lock = RUNS / f"{RUN}.lock"
    Path(tmp).replace(lock)  # visible only once locked: never taken for a dead run's
    try:
        _sweep_dead_runs()
        yield
        left = _sweep_peers(PEER_PREFIX)
        assert not left, f"the peer sweep could not remove: {', '.join(left)}"
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


@pytest.fixture(scope="session")
def qemu_session() -> Iterator[Hypervisor]:
    reason = _qemu_available()
    if reason:
        pytest.skip(reason)
    with hvkit.connect("kvm:///system", virt_type="qemu") as hv:
        try:
            yield hv
        finally:
            sweep(hv, PREFIX)


@pytest.fixture
def qemu_hv(qemu_session: Hypervisor, prefix: str) -> Iterator[Hypervisor]:
    try:
        yield qemu_session
    finally:
        sweep(qemu_session, prefix)


@pytest.fixture(scope="session")
def guest_image() -> Path:
    """The bootable test disk (built once, cached); needs root for the loop mount on the first build."""
    from hvkit.testing.guest_image import build_guest_image

    if os.geteuid() != 0 and not any(
        (Path(os.environ.get("HVKIT_CACHE", "~/.cache/hvkit")).expanduser() / "guest").glob("base-*")
    ):
        pytest.skip("building the guest image needs root the first time")
    return build_guest_image("hvkit-kvm-tests")
