"""The README example runs verbatim on KVM with real QEMU (only the URL changed): a running VM's snapshot keeps
its memory, a linked clone of it (running, with a snapshot) is made from an external overlay, and the revert
after it leaves the clone's base untouched."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from hvkit.hypervisor import Hypervisor
from tests.kvm.conftest import _qemu_available, _sweep
from tests.readme_example import check_output, run_readme_example

libvirt = pytest.importorskip("libvirt")
pytestmark = pytest.mark.slow
NAMES = ("web-1", "web-2")


@pytest.fixture
def qemu_system(qemu_session: Hypervisor) -> Iterator[Hypervisor]:
    """qemu:///system with no VM named like the README's; whatever the example leaves is removed after."""
    conn = qemu_session.backend.conn  # type: ignore[attr-defined]
    taken = [n for n in NAMES if n in {d.name() for d in conn.listAllDomains(0)}]
    if taken:
        pytest.skip(f"qemu:///system has VMs named {taken} already")
    try:
        yield qemu_session
    finally:
        for name in NAMES:
            with contextlib.suppress(libvirt.libvirtError):
                _sweep(conn, name)


def test_readme_example_runs_verbatim(qemu_system: Hypervisor) -> None:
    assert _qemu_available() is None
    check_output(run_readme_example("kvm:///system?virt_type=qemu"), "kvm")
    web1 = qemu_system.vms.get("web-1")
    [snap] = qemu_system.snapshots.list(web1)
    assert snap.name == "before-upgrade" and snap.memory and snap.current
    # the revert moved web-1 onto a private copy of the image web-2 was linked to
    disk = qemu_system.volumes.get(web1.disks[0].volume or "")
    assert disk.backing is None
