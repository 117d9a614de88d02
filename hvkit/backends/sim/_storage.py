"""Sim volumes: image files made with qemu-img, upload and download of raw content."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO

from ...driver import ProgressFn, qemuimg
from ...errors import InvalidSpec, InvalidState, NotFound
from ...models import (
    DiskFormat,
    StoragePool,
    Volume,
)
from ._session import CHUNK, EXT, SimSession


def list_volumes(session: SimSession, pool: StoragePool) -> list[Volume]:
    session.enter("list_volumes")
    with session.world.lock:
        return [session.volume_model(v) for v in session.world.volumes.values() if v["pool"] == pool.id]


def get_volume(session: SimSession, ref: str) -> Volume:
    session.enter("get_volume")
    with session.world.lock:
        if ref not in session.world.volumes:
            raise NotFound(f"no volume {ref!r} on sim://{session.world.name}")
        return session.volume_model(session.world.volumes[ref])


def local_path(session: SimSession, volume: Volume) -> str | None:
    """The volume's image file: sim volumes are files on this machine (read and written in place by
    migrations). ``local_files=false`` turns it off (the volume streams are used instead)."""
    if not session.options.bool_option("local_files", True):
        return None
    with session.world.lock:
        v = session.world.volumes.get(volume.id)
        path = v["path"] if v else None
    return path if path and Path(path).is_file() else None


def create_volume(session: SimSession, pool: StoragePool, name: str, size_bytes: int, fmt: DiskFormat) -> Volume:
    session.enter("create_volume")
    with session.world.lock:
        base = name.rsplit(".", 1)[0] if name.endswith("." + EXT.get(fmt.value, fmt.value)) else name
        return session.volume_model(session.new_volume(pool.id, base, size_bytes, fmt))


def create_linked_volume(session: SimSession, pool: StoragePool, name: str, base: Volume) -> Volume:
    """A qcow2 overlay over ``base`` (its backing file), as KVM makes one."""
    session.enter("create_linked_volume")
    with session.world.lock:
        backing = session.world.volumes.get(base.id)
        if backing is None:
            raise NotFound(f"no volume {base.id!r}")
        stem = name[: -len(".qcow2")] if name.endswith(".qcow2") else name
        made = session.new_volume(pool.id, stem, backing["capacity"], DiskFormat.QCOW2, backing=backing)
        return session.volume_model(made)


def delete_volume(session: SimSession, volume: Volume) -> None:
    session.enter("delete_volume")
    with session.world.lock:
        if any(v.get("backing") == volume.id for v in session.world.volumes.values()):
            raise InvalidState(f"volume {volume.name!r} backs linked clones; delete them first")
        session.remove_volume(session.world.volumes[volume.id])


def upload_volume(session: SimSession, volume: Volume, source: IO[bytes], size: int, progress: ProgressFn) -> None:
    session.enter("upload_volume")
    with session.world.lock:
        v = session.world.volumes[volume.id]
    with tempfile.TemporaryDirectory(dir=session.world.root) as tmp:
        raw = Path(tmp) / "upload.raw"
        with raw.open("wb") as out:
            out.truncate(v["capacity"])
            done = 0
            while done < size:
                chunk = source.read(min(CHUNK, size - done))
                if not chunk:
                    raise InvalidSpec(f"the upload stream ended after {done} of {size} bytes")
                if chunk.count(0) == len(chunk):
                    out.seek(len(chunk), os.SEEK_CUR)  # keep holes holes
                else:
                    out.write(chunk)
                done += len(chunk)
                progress(done, size)
        with session.world.lock:
            qemuimg.convert(raw, "raw", Path(v["path"]), v["format"], existing=True)


def download_volume(session: SimSession, volume: Volume, sink: IO[bytes], progress: ProgressFn) -> int:
    session.enter("download_volume")
    with session.world.lock:
        v = session.world.volumes[volume.id]
    with tempfile.TemporaryDirectory(dir=session.world.root) as tmp:
        raw = Path(tmp) / "download.raw"
        qemuimg.convert(Path(v["path"]), v["format"], raw, "raw")
        total = raw.stat().st_size
        done = 0
        with raw.open("rb") as src:
            while chunk := src.read(CHUNK):
                sink.write(chunk)
                done += len(chunk)
                progress(done, total)
    return done
