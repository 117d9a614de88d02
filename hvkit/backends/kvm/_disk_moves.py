"""The disks a kvm migration copies: which ones (not on storage the target shares), their target volumes
(created, or removed again on failure), the copy by storage streams, and the sources removed after success."""

from __future__ import annotations

import contextlib
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import libvirt

from ...errors import AlreadyExists, InvalidSpec, NotFound
from ...models import DiskFormat
from . import _domxml, _streams
from ._session import SHARED_POOLS

if TYPE_CHECKING:
    from .backend import KvmBackend

__all__ = [
    "DiskMove",
    "create_targets",
    "delete_sources",
    "delete_targets",
    "disk_path",
    "plan_disks",
    "set_disk_path",
    "stream_copy",
    "volume_format",
]


@attrs.define
class DiskMove:
    element: ET.Element  # the <disk> in the XML for the target
    target: str  # vda ...
    source_vol: libvirt.virStorageVol
    readonly: bool
    new_vol: libvirt.virStorageVol | None = None


def volume_format(vol: libvirt.virStorageVol) -> DiskFormat:
    fmt_el = ET.fromstring(vol.XMLDesc(0)).find("target/format")
    try:
        return DiskFormat(fmt_el.get("type", "raw")) if fmt_el is not None else DiskFormat.RAW
    except ValueError:
        return DiskFormat.RAW


def disk_path(disk: ET.Element) -> str | None:
    source = disk.find("source")
    return None if source is None else source.get("file") or source.get("dev")


def set_disk_path(disk: ET.Element, vol: libvirt.virStorageVol) -> None:
    source = disk.find("source")
    if source is None:
        return
    source.attrib.pop("file", None)
    source.attrib.pop("dev", None)
    block = vol.info()[0] == libvirt.VIR_STORAGE_VOL_BLOCK
    disk.set("type", "block" if block else "file")
    source.set("dev" if block else "file", vol.path())
    driver = disk.find("driver")
    if driver is not None:
        driver.set("type", volume_format(vol).value)
    for store in disk.findall("backingStore"):
        disk.remove(store)


def plan_disks(
    backend: KvmBackend, root: ET.Element, target_conn: libvirt.virConnect, pool: str | None, same_host: bool
) -> list[DiskMove]:
    """The disks that must be copied (not on storage the target shares), with their target pools checked."""
    moves = []
    for disk in root.findall("devices/disk"):
        path = disk_path(disk)
        if not path:
            continue
        vol = backend.volume_at(path)
        if vol is None:
            if same_host:
                raise InvalidSpec(f"disk {path!r} is in no libvirt storage pool: hvkit cannot move it")
            try:
                target_conn.storageVolLookupByPath(path)
            except libvirt.libvirtError:
                raise InvalidSpec(f"disk {path!r} is in no libvirt storage pool and not on the target") from None
            continue  # shared: the target sees the same volume
        src_pool = vol.storagePoolLookupByVolume()
        ptype = ET.fromstring(src_pool.XMLDesc(0)).get("type", "")
        if same_host and pool in (None, src_pool.name()):
            continue
        if not same_host and pool is None and ptype in SHARED_POOLS:
            with contextlib.suppress(libvirt.libvirtError):
                target_conn.storagePoolLookupByName(src_pool.name())
                continue
        target_el = disk.find("target")
        moves.append(
            DiskMove(
                element=disk,
                target=target_el.get("dev", "") if target_el is not None else "",
                source_vol=vol,
                readonly=disk.find("readonly") is not None or disk.get("device") == "cdrom",
            )
        )
    return moves


def create_targets(moves: list[DiskMove], target_conn: libvirt.virConnect, pool: str | None) -> None:
    """Create the target volumes (same name, size and format; no backing file), or raise without leftovers."""
    try:
        for move in moves:
            src_pool_name = move.source_vol.storagePoolLookupByVolume().name()
            try:
                tpool = target_conn.storagePoolLookupByName(pool or src_pool_name)
            except libvirt.libvirtError as exc:
                raise NotFound(f"the target has no storage pool {pool or src_pool_name!r}") from exc
            name = move.source_vol.name()
            with contextlib.suppress(libvirt.libvirtError):
                tpool.storageVolLookupByName(name)
                raise AlreadyExists(f"volume {name!r} exists already in the target pool {tpool.name()!r}")
            xml = _domxml.volume_xml(name, move.source_vol.info()[1], volume_format(move.source_vol))
            move.new_vol = tpool.createXML(xml, 0)
    except BaseException:
        delete_targets(moves)
        raise


def delete_targets(moves: list[DiskMove]) -> None:
    for move in moves:
        if move.new_vol is not None:
            with contextlib.suppress(libvirt.libvirtError):
                move.new_vol.delete(0)
            move.new_vol = None


def delete_sources(moves: list[DiskMove]) -> None:
    for move in moves:
        with contextlib.suppress(libvirt.libvirtError):
            move.source_vol.delete(0)


def stream_copy(src_conn: libvirt.virConnect, dst_conn: libvirt.virConnect, move: DiskMove) -> None:
    """Copy one volume's content between hosts by storage streams, through a sparse temporary file here."""
    assert move.new_vol is not None
    fd, tmp = tempfile.mkstemp(prefix=".hvkit-migrate-", suffix=".raw")
    try:
        with os.fdopen(fd, "w+b") as f:
            size = _streams.download(src_conn, move.source_vol, f, lambda _d, _t: None)
            f.seek(0)
            _streams.upload(dst_conn, move.new_vol, f, size, lambda _d, _t: None)
    finally:
        Path(tmp).unlink()
