"""Linked clones of running VMs and of VMs with snapshots, and reverts after them.

A linked clone shares its source's disk images as read-only bases; the source then writes into its own
new overlay (a running source is switched live, by an external disk-only snapshot without metadata).
Internal snapshots taken before the clone live inside a shared base: reverting to one must not write
into that base, so the base is first copied (with its internal snapshots) into a volume of the source's
own, the snapshot is redefined onto it, and the revert happens there.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import libvirt

from ...errors import Unsupported
from ...models.enums import DiskFormat
from . import _domxml
from ._session import refresh_pool

__all__ = ["freeze_running", "revert_unshared"]

_FLAGS = ("DISK_ONLY", "NO_METADATA", "REUSE_EXT", "ATOMIC")


def _format(vol: Any) -> DiskFormat:
    fmt = ET.fromstring(vol.XMLDesc(0)).find("target/format")
    try:
        return DiskFormat(fmt.get("type", "raw")) if fmt is not None else DiskFormat.RAW
    except ValueError:
        return DiskFormat.RAW


def _file_disks(root: ET.Element) -> list[tuple[ET.Element, str, str]]:
    """(disk element, target dev, image path) of the file- or block-backed disks (not CD-ROMs) of a domain XML."""
    out = []
    for disk in root.iter("disk"):
        source = disk.find("source")
        target = disk.find("target")
        path = (source.get("file") or source.get("dev")) if source is not None else None
        if disk.get("device", "disk") == "disk" and path and target is not None:
            out.append((disk, target.get("dev", ""), path))
    return out


def freeze_running(conn: Any, dom: Any, name: str, push_undo: Callable[[Callable[[], None], str], None]) -> None:
    """Switch a running domain's disks onto new overlays (live), so its current images never change again."""
    root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE))
    token = uuidlib.uuid4().hex[:8]
    snap = ET.Element("domainsnapshot")
    ET.SubElement(snap, "name").text = f"hvkit-freeze-{token}"
    disks = ET.SubElement(snap, "disks")
    for disk in root.iter("disk"):
        target = disk.find("target")
        if target is not None and disk.get("device", "disk") != "disk":
            ET.SubElement(disks, "disk", name=target.get("dev", ""), snapshot="no")
    for _disk, dev, path in _file_disks(root):
        vol = conn.storageVolLookupByPath(path)
        overlay = vol.storagePoolLookupByVolume().createXML(
            _domxml.volume_xml(f"{name}-{dev}-{token}.qcow2", vol.info()[1], DiskFormat.QCOW2, (path, _format(vol))),
            0,
        )
        push_undo(functools.partial(overlay.delete, 0), f"delete the source's new overlay {overlay.name()}")
        entry = ET.SubElement(disks, "disk", name=dev, snapshot="external")
        ET.SubElement(entry, "driver", type="qcow2")
        ET.SubElement(entry, "source", file=overlay.path())
    flags = 0
    for flag in _FLAGS:
        flags |= getattr(libvirt, f"VIR_DOMAIN_SNAPSHOT_CREATE_{flag}")
    dom.snapshotCreateXML(ET.tostring(snap, encoding="unicode"), flags)


def _backed_paths(conn: Any, paths: set[str]) -> set[str]:
    """The paths among ``paths`` that some volume uses as its backing image."""
    found: set[str] = set()
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        for vol in pool.listAllVolumes(0):
            backing = ET.fromstring(vol.XMLDesc(0)).findtext("backingStore/path")
            if backing in paths:
                found.add(backing)
    return found


def revert_unshared(conn: Any, dom: Any, snapshot_name: str, local: bool) -> None:
    """Revert to an internal snapshot without writing into an image other volumes are backed by."""
    snap = dom.snapshotLookupByName(snapshot_name, 0)
    root = ET.fromstring(snap.getXMLDesc(libvirt.VIR_DOMAIN_SNAPSHOT_XML_SECURE))
    paths = {path for _disk, _dev, path in _file_disks(root)}
    shared = _backed_paths(conn, paths)
    before = {path for _disk, _dev, path in _file_disks(ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))}
    if shared:
        if not local:
            raise Unsupported(
                "kvm",
                "snapshots.revert",
                f"snapshot {snapshot_name!r} lives in an image linked clones share; reverting it copies that image, "
                "which needs the image files on this machine (connect to the local libvirtd)",
            )
        if dom.isActive():  # the revert replaces the running state anyway; QEMU must reopen the copies
            dom.destroy()
        token = uuidlib.uuid4().hex[:8]
        copies: dict[str, str] = {}
        for path in shared:
            vol = conn.storageVolLookupByPath(path)
            pool = vol.storagePoolLookupByVolume()
            base = vol.name().rsplit(".", 1)[0]
            copy = pool.createXML(_domxml.volume_xml(f"{base}-{token}.qcow2", vol.info()[1], _format(vol)), 0)
            shutil.copyfile(path, copy.path())  # the image as it is: its internal snapshots and its own backing
            refresh_pool(pool)
            copies[path] = copy.path()
        for disk, _dev, path in _file_disks(root):
            if path in copies:
                source = disk.find("source")
                assert source is not None
                source.attrib.pop("dev", None)
                source.set("file", copies[path])
                for store in disk.findall("backingStore"):
                    disk.remove(store)
        flags = libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE
        if snap.isCurrent(0):
            flags |= libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT
        snap = dom.snapshotCreateXML(ET.tostring(root, encoding="unicode"), flags)
    dom.revertToSnapshot(snap, 0)
    if shared:
        _drop_unused(conn, dom, before)


def _drop_unused(conn: Any, dom: Any, paths: set[str]) -> None:
    """Delete the overlays the VM moved off that neither its disks, its snapshots nor other volumes use."""
    used = {p for _d, _t, p in _file_disks(ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))}
    for snap in dom.listAllSnapshots(0):
        used |= {p for _d, _t, p in _file_disks(ET.fromstring(snap.getXMLDesc(0)))}
    leftovers = paths - used - _backed_paths(conn, paths)
    for path in leftovers:
        with contextlib.suppress(libvirt.libvirtError):
            conn.storageVolLookupByPath(path).delete(0)
