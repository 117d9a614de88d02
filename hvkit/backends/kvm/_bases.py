"""Bases of linked clones: owned by a VM, removed when their last user goes.

A linked clone links to its source's disk images, which become read-only bases; the source moves onto
new overlays. The source records those bases in its own metadata (``<hvkit:base>``). When a VM is
deleted, each base it records is deleted too if nothing uses it any more (no domain's disk or backing
chain, no other volume's backing); a base still in use is handed to the VMs that use it, so that it goes
with the last of them. Images hvkit did not make bases of (e.g. a golden image a user attached) are never
touched: only recorded bases are.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

import libvirt

from ._domxml import NS
from ._session import refresh_pool

__all__ = ["forget_bases", "record_bases", "recorded_bases", "release_bases"]

_VM = f"{{{NS}}}vm"
_BASE = f"{{{NS}}}base"


def _meta(root: ET.Element) -> ET.Element:
    metadata = root.find("metadata")
    if metadata is None:
        metadata = ET.SubElement(root, "metadata")
    meta = metadata.find(_VM)
    if meta is None:
        meta = ET.SubElement(metadata, _VM)
    return meta


def recorded_bases(root: ET.Element) -> list[str]:
    """The base images a domain XML records as its own."""
    meta = root.find(f"metadata/{_VM}")
    return [e.text for e in meta.findall(_BASE) if e.text] if meta is not None else []


def record_bases(root: ET.Element, paths: Iterable[str]) -> None:
    """Record ``paths`` as bases owned by the domain of ``root`` (once each)."""
    meta = _meta(root)
    have = set(recorded_bases(root))
    for path in paths:
        if path not in have:
            ET.SubElement(meta, _BASE).text = path
            have.add(path)


def forget_bases(root: ET.Element) -> None:
    """Drop every base record (a clone's XML starts as a copy of its source's)."""
    meta = root.find(f"metadata/{_VM}")
    for entry in meta.findall(_BASE) if meta is not None else []:
        meta.remove(entry)  # type: ignore[union-attr]


def _backing(conn: Any, path: str) -> str | None:
    try:
        vol = conn.storageVolLookupByPath(path)
        found = ET.fromstring(vol.XMLDesc(0)).findtext("backingStore/path")
    except libvirt.libvirtError:
        return None
    return found or None


def _disk_paths(root: ET.Element) -> list[str]:
    out = []
    for disk in root.iter("disk"):
        source = disk.find("source")
        path = (source.get("file") or source.get("dev")) if source is not None else None
        if path:
            out.append(path)
    return out


def _users(conn: Any) -> dict[str, set[str]]:
    """Image path -> names of the domains whose disks (current or in a snapshot) use it, directly or as a base."""
    users: dict[str, set[str]] = {}
    for dom in conn.listAllDomains(0):
        root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        paths = _disk_paths(root)
        with contextlib.suppress(libvirt.libvirtError):
            for snap in dom.listAllSnapshots(0):
                paths += _disk_paths(ET.fromstring(snap.getXMLDesc(0)))
        for path in paths:
            seen: set[str] = set()
            current: str | None = path
            while current and current not in seen:
                seen.add(current)
                users.setdefault(current, set()).add(dom.name())
                current = _backing(conn, current)
    return users


def _backed(conn: Any) -> set[str]:
    """Images some volume of an active pool is backed by."""
    found: set[str] = set()
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        with contextlib.suppress(libvirt.libvirtError):
            refresh_pool(pool)
        for vol in pool.listAllVolumes(0):
            with contextlib.suppress(libvirt.libvirtError):
                backing = ET.fromstring(vol.XMLDesc(0)).findtext("backingStore/path")
                if backing:
                    found.add(backing)
    return found


def release_bases(conn: Any, bases: list[str]) -> list[str]:
    """After the VM that owned ``bases`` is gone: delete those nothing uses, hand the rest to their users.

    A deleted base may free the base below it (a clone of a clone); that one goes too when it was one of
    ``bases``. Returns the paths deleted.
    """
    deleted: list[str] = []
    pending = list(dict.fromkeys(bases))
    while pending:
        users, backed = _users(conn), _backed(conn)
        free = [p for p in pending if p not in users and p not in backed]
        for path in free:
            with contextlib.suppress(libvirt.libvirtError):
                conn.storageVolLookupByPath(path).delete(0)
                deleted.append(path)
        pending = [p for p in pending if p not in free]
        if not free:
            break
    for path in pending:  # still used: the VMs that use it own it now
        for name in sorted(_users(conn).get(path, ())):
            with contextlib.suppress(libvirt.libvirtError):
                dom = conn.lookupByName(name)
                root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
                if path not in recorded_bases(root):
                    record_bases(root, [path])
                    conn.defineXML(ET.tostring(root, encoding="unicode"))
    return deleted
