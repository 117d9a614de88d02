"""Changed-block tracking on QEMU: libvirt checkpoints (persistent dirty bitmaps) and incremental backup jobs.

``track_changes`` creates a checkpoint (one dirty bitmap per qcow2 disk, kept in the image). ``changed_extents``
runs a push-mode incremental backup of one disk since a checkpoint into a scratch qcow2 file beside the
disk (QEMU's user may write there) whose backing file is the live disk: the clusters the job wrote (depth 0
in ``qemu-img map``) are the blocks written since the checkpoint; the file is removed afterwards. Needs a
running domain (QEMU keeps the bitmaps; libvirt >= 6.0, QEMU >= 4.2) and qcow2 disks.
"""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

from ...driver import image_map
from ...errors import BackendError, InvalidState, NotFound, Timeout, Unsupported
from ...models import VM, DiskFormat, Volume

if TYPE_CHECKING:
    from ._session import KvmSession

__all__ = ["changed_extents", "track_changes", "untrack_changes"]

_JOB_TIMEOUT = 3600.0


def _disk_target(session: KvmSession, dom: object, volume: Volume) -> str:
    """The domain's target device name (``vda``) of the disk whose source is ``volume``'s file."""
    xml = ET.fromstring(dom.XMLDesc(0))  # type: ignore[attr-defined]
    for disk in xml.findall("./devices/disk"):
        source = disk.find("source")
        target = disk.find("target")
        if source is None or target is None:
            continue
        if volume.path and source.get("file") == volume.path:
            return str(target.get("dev"))
    raise NotFound(f"volume {volume.name!r} is not a disk of this VM")


def _qcow2_targets(dom: object) -> list[str]:
    xml = ET.fromstring(dom.XMLDesc(0))  # type: ignore[attr-defined]
    out = []
    for disk in xml.findall("./devices/disk[@device='disk']"):
        driver, target = disk.find("driver"), disk.find("target")
        if target is not None and driver is not None and driver.get("type") == "qcow2":
            out.append(str(target.get("dev")))
    return out


def track_changes(session: KvmSession, vm: VM, checkpoint: str) -> None:
    """Create checkpoint ``checkpoint`` (a dirty bitmap on every qcow2 disk) on the running domain."""
    import libvirt

    dom = session.domain(vm)
    if not dom.isActive():
        raise InvalidState(f"VM {vm.name!r} is not running: QEMU tracks changed blocks only while it runs")
    disks = _qcow2_targets(dom)
    if not disks:
        raise Unsupported(session.kind, "changed-block tracking", "it needs qcow2 disks (dirty bitmaps live in them)")
    root = ET.Element("domaincheckpoint")
    ET.SubElement(root, "name").text = checkpoint
    ET.SubElement(root, "description").text = "changed-block tracking by hvkit"
    held = ET.SubElement(root, "disks")
    for dev in disks:
        ET.SubElement(held, "disk", name=dev, checkpoint="bitmap")
    with session.errors():
        try:
            dom.checkpointCreateXML(ET.tostring(root, encoding="unicode"), 0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_OPERATION_UNSUPPORTED):
                raise Unsupported(session.kind, "changed-block tracking", exc.get_error_message()) from exc
            raise


def untrack_changes(session: KvmSession, vm: VM, checkpoint: str) -> None:
    """Delete the checkpoint (its bitmaps are merged into the previous checkpoint's by libvirt)."""
    import libvirt

    dom = session.domain(vm)
    with session.errors():
        try:
            dom.checkpointLookupByName(checkpoint, 0).delete(0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN_CHECKPOINT:
                raise


def changed_extents(session: KvmSession, vm: VM, volume: Volume, since: str, workdir: str) -> list[tuple[int, int]]:
    """``(offset, length)`` of the guest ranges written on ``volume`` since checkpoint ``since``."""
    import libvirt

    dom = session.domain(vm)
    if not dom.isActive():
        raise InvalidState(f"VM {vm.name!r} is not running: its dirty bitmaps are read by a backup job")
    dev = _disk_target(session, dom, volume)
    # QEMU (its own user, confined to what libvirt labels) writes the scratch file: beside the disk, where it
    # may; under workdir only when the disk has no file of its own
    folder = Path(volume.path).parent if volume.path else Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f".hvkit-cbt-{dev}-{uuid.uuid4().hex[:8]}.qcow2"
    root = ET.Element("domainbackup", mode="push")
    ET.SubElement(root, "incremental").text = since
    disks = ET.SubElement(root, "disks")
    for other in _all_targets(dom):
        if other == dev:
            disk = ET.SubElement(disks, "disk", name=dev, backup="yes", type="file")
            ET.SubElement(disk, "target", file=str(out))
            ET.SubElement(disk, "driver", type="qcow2")
        else:
            ET.SubElement(disks, "disk", name=other, backup="no")
    try:
        with session.errors():
            try:
                dom.backupBegin(ET.tostring(root, encoding="unicode"), None, 0)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_CHECKPOINT:
                    raise NotFound(f"VM {vm.name!r} has no checkpoint {since!r}") from exc
                raise
            _wait_backup(dom, vm)
        return [(e.start, e.length) for e in image_map(str(out), DiskFormat.QCOW2) if e.depth == 0]
    finally:
        out.unlink(missing_ok=True)


def _all_targets(dom: object) -> list[str]:
    xml = ET.fromstring(dom.XMLDesc(0))  # type: ignore[attr-defined]
    return [str(t.get("dev")) for t in xml.findall("./devices/disk[@device='disk']/target")]


def _wait_backup(dom: object, vm: VM) -> None:
    import libvirt

    deadline = time.monotonic() + _JOB_TIMEOUT
    delay = 0.05
    while dom.jobInfo()[0] != libvirt.VIR_DOMAIN_JOB_NONE:  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            dom.abortJob()  # type: ignore[attr-defined]
            raise Timeout(f"the backup job of VM {vm.name!r} did not end in {_JOB_TIMEOUT:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    stats = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)  # type: ignore[attr-defined]
    if stats.get("type") not in (libvirt.VIR_DOMAIN_JOB_COMPLETED, None):
        raise BackendError(f"the backup job of VM {vm.name!r} failed: {stats.get('errmsg', 'no reason given')}")
