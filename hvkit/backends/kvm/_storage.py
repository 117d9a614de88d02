"""libvirt volumes: list, create, delete, upload and download streams, local files."""

from __future__ import annotations

import contextlib
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import IO

import libvirt

from ...driver import ProgressFn
from ...errors import InvalidState, NotFound, Unsupported
from ...models import (
    DiskFormat,
    StoragePool,
    Volume,
)
from . import _domxml, _streams
from ._session import (
    FILE_POOLS,
    KvmSession,
    volume_format,
)


def list_volumes(session: KvmSession, pool: StoragePool) -> list[Volume]:
    p = session.conn.storagePoolLookupByName(pool.name)
    if not p.isActive():
        return []
    out = []
    for v in p.listAllVolumes(0):
        try:
            out.append(session.volume(v, pool.name))
        except libvirt.libvirtError as exc:  # deleted since the listing (another client): not a volume any more
            if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                raise
    return out


def get_volume(session: KvmSession, ref: str) -> Volume:
    return session.volume(session.vol(ref))


def create_volume(session: KvmSession, pool: StoragePool, name: str, size_bytes: int, fmt: DiskFormat) -> Volume:
    p = session.conn.storagePoolLookupByName(pool.name)
    vol = p.createXML(_domxml.volume_xml(name, size_bytes, fmt), 0)
    return session.volume(vol, pool.name)


def create_linked_volume(session: KvmSession, pool: StoragePool, name: str, base: Volume) -> Volume:
    """A qcow2 volume in ``pool`` whose backing file is ``base`` (read-only to QEMU, never written or deleted
    through the overlay: a VM delete removes its overlays and only bases it recorded, see ``_bases``)."""
    base_vol = session.vol(base.id)
    p = session.conn.storagePoolLookupByName(pool.name)
    pool_type = ET.fromstring(p.XMLDesc(0)).get("type", "")
    if pool_type not in FILE_POOLS:
        raise Unsupported("kvm", "volumes.create_linked", f"pool {pool.name!r} is a {pool_type} pool; qcow2 overlays "
                          "need a file pool (dir, fs, netfs)")  # fmt: skip
    backing = (base_vol.path(), volume_format(base_vol) or DiskFormat.RAW)
    name = name if name.endswith(".qcow2") else f"{name}.qcow2"
    vol = p.createXML(_domxml.volume_xml(name, base_vol.info()[1], DiskFormat.QCOW2, backing), 0)
    return session.volume(vol, pool.name)


def delete_volume(session: KvmSession, volume: Volume) -> None:
    session.vol(volume.id).delete(0)


def upload_volume(session: KvmSession, volume: Volume, source: IO[bytes], size: int, progress: ProgressFn) -> Volume:
    vol = session.vol(volume.id)
    fmt = volume_format(vol)
    if fmt in (None, DiskFormat.RAW):
        _streams.upload(session.conn, vol, source, size, progress)
        return session.volume(vol)
    with _raw_twin(session, vol, volume) as raw:
        _streams.upload(session.conn, raw, source, size, progress)
        pool = vol.storagePoolLookupByVolume()
        xml = vol.XMLDesc(0)
        if ET.fromstring(xml).find("backingStore/path") is not None:
            raise InvalidState(f"volume {volume.name!r} is a linked clone; upload into a volume without a backing file")
        vol.delete(0)
        new = pool.createXMLFrom(_domxml.volume_xml(volume.name, volume.capacity_bytes, fmt), raw, 0)
    return session.volume(new)


def download_volume(session: KvmSession, volume: Volume, sink: IO[bytes], progress: ProgressFn) -> int:
    vol = session.vol(volume.id)
    fmt = volume_format(vol)
    if fmt in (None, DiskFormat.RAW) and ET.fromstring(vol.XMLDesc(0)).find("backingStore/path") is None:
        return _streams.download(session.conn, vol, sink, progress)
    with _raw_twin(session, vol, volume, copy=True) as raw:
        return _streams.download(session.conn, raw, sink, progress)


def local_path(session: KvmSession, volume: Volume) -> str | None:
    """The volume's image file when this machine's own libvirtd keeps it in a file pool, else None.

    Local means ``qemu:///system`` or ``qemu:///session`` through the default socket (see
    ``_uri.is_local_uri``); a remote URI, or a daemon behind a ``socket=`` of its own, gives None.
    The volume must be a file (a dir/fs/netfs pool, not a block device) that this process can read
    and write. The option ``local_files`` overrides the URI rule: ``false`` never, ``true`` always
    (e.g. a remote host whose images are mounted here at the same paths).
    """
    import os

    from ._uri import is_local_uri

    explicit = session.options.option("local_files")
    local = session.options.bool_option("local_files", False) if explicit is not None else None
    if local is False or session.driver != "qemu" or (local is None and not is_local_uri(session._uri)):
        return None
    try:
        vol = session.vol(volume.id)
        vtype = vol.info()[0]
        path = vol.path()
        pool_type = ET.fromstring(vol.storagePoolLookupByVolume().XMLDesc(0)).get("type", "")
    except (libvirt.libvirtError, NotFound):
        return None
    if vtype != libvirt.VIR_STORAGE_VOL_FILE or pool_type not in FILE_POOLS:
        return None
    if not (os.path.isfile(path) and os.access(path, os.R_OK | os.W_OK)):  # noqa: PTH113
        return None
    return str(path)


@contextlib.contextmanager
def _raw_twin(
    session: KvmSession, vol: libvirt.virStorageVol, volume: Volume, copy: bool = False
) -> Iterator[libvirt.virStorageVol]:
    """A temporary raw volume beside ``vol`` (a converted copy of it with ``copy``), deleted after."""
    pool = vol.storagePoolLookupByVolume()
    name = f".hvkit-{uuidlib.uuid4().hex[:12]}.raw"
    xml = _domxml.volume_xml(name, volume.capacity_bytes, DiskFormat.RAW)
    raw = pool.createXMLFrom(xml, vol, 0) if copy else pool.createXML(xml, 0)
    try:
        yield raw
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            raw.delete(0)
