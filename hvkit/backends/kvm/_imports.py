"""Disk imports into a local file pool: the convert runs while libvirt creates the volume.

libvirt creates a qcow2 volume by running ``qemu-img create`` (about 17 ms of process start), and the
kit's default import waits for it before the data is written. Into a directory pool on this machine,
hvkit instead converts the image into a hidden partial file beside the volume-to-be
(``.NAME.hvkit-part``, a name the migration journal records as the import's) while libvirt creates the
volume, then gives the partial file the volume's owner and mode and renames it over the volume's file:
libvirt keeps its volume (a directory pool's volume is its path) and reads the new file's size and
allocation on the next lookup. Any other pool, or a volume path that is not the pool's folder and the
name, takes the kit's default import. A failure removes the partial file and the volume this call
created, by key.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt

from ...driver import (
    Backend,
    DiskImage,
    ProgressFn,
    allocated_bytes,
    default_import,
    partial_path,
    qemu_img,
    write_into,
)
from ...models import DiskFormat, StoragePool, Volume
from . import _storage
from ._session import FILE_POOLS, KvmSession
from ._uri import is_local_uri

__all__ = ["import_disk", "local_folder"]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def import_disk(
    session: KvmSession,
    backend: Backend,
    pool: StoragePool,
    name: str,
    image: DiskImage,
    fmt: DiskFormat,
    workdir: str,
    progress: ProgressFn,
) -> Volume:
    folder = local_folder(session, pool)
    if folder is None or "/" in name:
        return default_import(backend, pool, name, image, fmt, workdir, progress)
    final = Path(folder) / name
    part = partial_path(folder, name)
    try:
        os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # claimed: no one else's file
    except FileExistsError:  # another import of this name is under way (or left it): the default way
        return default_import(backend, pool, name, image, fmt, workdir, progress)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="hvkit-volume") as side:
        creating = side.submit(_storage.create_volume, session, pool, name, image.size, fmt)
        try:
            written = _convert_new(image, part, fmt)
        except BaseException:
            part.unlink(missing_ok=True)
            with contextlib.suppress(Exception):
                _drop(session, creating.result())
            raise
        try:
            vol = creating.result()
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    try:
        if vol.path == str(final) and final.is_file():
            st = final.stat()
            os.chown(part, st.st_uid, st.st_gid)
            part.chmod(st.st_mode & 0o7777)
            _swap_in(part, final)
        else:  # libvirt put the volume elsewhere: write into its own file instead
            part.unlink(missing_ok=True)
            written = write_into(image, vol.path or "", fmt, fresh=True)
        progress(written, written)
        return _storage.get_volume(session, vol.id)
    except BaseException:
        part.unlink(missing_ok=True)
        with contextlib.suppress(Exception):
            _drop(session, vol)
        raise


def _swap_in(part: Path, final: Path) -> None:
    """Put ``part``'s file at ``final`` and remove the file that was there.

    An exchange (``renameat2(RENAME_EXCHANGE)``) then an unlink, not a rename over ``final``: ext4 takes a
    rename over an existing file for a "replace by rename" and writes the new file's data out at once
    (``auto_da_alloc``), which made every later fsync on the file system (the journal's, libvirt's) wait
    for the whole disk to reach storage, about 0.4 s for 256 MiB of data here. Where the exchange is not
    supported, the plain rename.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        exchanged = libc.renameat2(_AT_FDCWD, os.fsencode(part), _AT_FDCWD, os.fsencode(final), _RENAME_EXCHANGE) == 0
    except (AttributeError, OSError):
        exchanged = False
    if exchanged:
        part.unlink()  # the empty image libvirt created
    else:
        part.replace(final)


def _convert_new(image: DiskImage, path: Path, fmt: DiskFormat) -> int:
    """Convert ``image`` into ``path`` (an empty file of this call; qemu-img creates the image); return the data
    bytes written."""
    args = ["convert", "-U", "-f", image.format.value, "-O", fmt.value]
    if fmt is DiskFormat.QCOW2:
        args += ["-o", "compat=1.1"]
    qemu_img(*args, image.path, os.fspath(path))
    allocated = image.allocated()
    if allocated is None:
        allocated = allocated_bytes(image.path, image.format)
    return allocated


def _drop(session: KvmSession, vol: Volume) -> None:
    session.vol(vol.id).delete(0)


def local_folder(session: KvmSession, pool: StoragePool) -> str | None:
    """The pool's directory when its volumes are files this process may write, else None."""
    explicit = session.options.option("local_files")
    local = session.options.bool_option("local_files", False) if explicit is not None else None
    if local is False or session.driver != "qemu" or (local is None and not is_local_uri(session._uri)):
        return None
    try:
        root = ET.fromstring(session.conn.storagePoolLookupByName(pool.name).XMLDesc(0))
    except libvirt.libvirtError:
        return None
    folder = root.findtext("target/path") or ""
    if root.get("type", "") not in FILE_POOLS or not folder or not os.access(folder, os.W_OK | os.X_OK):
        return None
    return folder
