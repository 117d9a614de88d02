"""Fixtures for the kvm backend: libvirt's test:///default driver (fast) and qemu:///system (real guests).

Every object a test makes carries the run's unique name prefix; a finalizer removes whatever is left
with that prefix (domains, volumes, networks, pools), even when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hvkit
from hvkit.hypervisor import Hypervisor

libvirt = pytest.importorskip("libvirt")

from hvkit.backends.kvm import KvmBackend  # noqa: E402

PREFIX = f"hvt-{uuid.uuid4().hex[:6]}-"


def kvm_backend(hv: Hypervisor) -> KvmBackend:
    """The hypervisor's backend as the kvm driver (its libvirt connection, serial reader, local paths)."""
    assert isinstance(hv.backend, KvmBackend)
    return hv.backend


def sweep(hv: Hypervisor, prefix: str) -> None:
    _sweep(kvm_backend(hv).conn, prefix)


def _sweep(c: Any, prefix: str) -> None:
    """Remove every domain, volume, network and pool whose name starts with ``prefix`` (``c``: a virConnect)."""
    for dom in c.listAllDomains(0):
        if dom.name().startswith(prefix):
            with contextlib.suppress(libvirt.libvirtError):
                if dom.isActive():
                    dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefineFlags(
                    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                )
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefine()
    for pool in c.listAllStoragePools(0):
        if not pool.isActive():
            continue
        with contextlib.suppress(libvirt.libvirtError):
            pool.refresh(0)
        # overlays first, then their bases
        vols = [v for v in pool.listAllVolumes(0) if v.name().startswith(prefix)]
        for vol in sorted(vols, key=lambda v: -len(v.name())):
            with contextlib.suppress(libvirt.libvirtError):
                vol.delete(0)
    for net in c.listAllNetworks(0):
        if net.name().startswith(prefix):
            with contextlib.suppress(libvirt.libvirtError):
                net.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                net.undefine()
    for pool in c.listAllStoragePools(0):
        if pool.name().startswith(prefix):
            with contextlib.suppress(libvirt.libvirtError):
                pool.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                pool.undefine()


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
