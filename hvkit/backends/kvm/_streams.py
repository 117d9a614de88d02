"""Volume upload and download through libvirt streams, sparse-aware (zero runs travel as holes)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import IO

import libvirt

from ...driver import ProgressFn
from ...errors import BackendError

__all__ = ["download", "upload", "upload_bytes"]

CHUNK = 1024 * 1024
_ZERO = bytes(CHUNK)


@contextlib.contextmanager
def _session(stream: libvirt.virStream) -> Iterator[None]:
    """Finish ``stream`` when the block ends, or abort it (the transfer is dropped) when the block raises."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()
        raise
    stream.finish()


def upload(
    conn: libvirt.virConnect, vol: libvirt.virStorageVol, source: IO[bytes], size: int, progress: ProgressFn
) -> None:
    """Send ``size`` bytes from ``source`` into ``vol`` from offset 0; all-zero chunks are sent as holes."""
    stream = conn.newStream(0)
    vol.upload(stream, 0, size, libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)
    done = 0
    with _session(stream):
        while done < size:
            data = source.read(min(CHUNK, size - done))
            if not data:
                raise BackendError(f"the upload source ended after {done} of {size} bytes")
            if data == _ZERO[: len(data)]:
                stream.sendHole(len(data), 0)
            else:
                view = memoryview(data)
                while view:
                    sent = stream.send(bytes(view))
                    if sent < 0:
                        raise BackendError("the libvirt stream refused data")
                    view = view[sent:]
            done += len(data)
            progress(done, size)


def upload_bytes(conn: libvirt.virConnect, vol: libvirt.virStorageVol, data: bytes) -> None:
    import io

    upload(conn, vol, io.BytesIO(data), len(data), lambda done, total: None)


def download(conn: libvirt.virConnect, vol: libvirt.virStorageVol, sink: IO[bytes], progress: ProgressFn) -> int:
    """Write the volume's bytes to ``sink``; holes become seeks on a seekable sink, zeros otherwise."""
    total = vol.info()[1]
    stream = conn.newStream(0)
    vol.download(stream, 0, 0, libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)
    seekable = _seekable(sink)
    done = 0
    pending_hole = 0
    with _session(stream):
        while True:
            data = stream.recvFlags(CHUNK, libvirt.VIR_STREAM_RECV_STOP_AT_HOLE)
            if isinstance(data, int) and data != -3:  # -3: at a hole
                raise BackendError(f"the libvirt stream failed while downloading ({data})")
            if isinstance(data, bytes) and data:
                if pending_hole:
                    _skip(sink, pending_hole, seekable)
                    pending_hole = 0
                sink.write(data)
                done += len(data)
                progress(done, total)
                continue
            try:
                hole = stream.recvHole(0)
            except libvirt.libvirtError:
                hole = 0
            if hole <= 0:
                break
            pending_hole += hole
            done += hole
            progress(done, total)
        if pending_hole:
            _end_with_hole(sink, pending_hole, seekable)
    return done


def _seekable(sink: IO[bytes]) -> bool:
    try:
        return sink.seekable()
    except (AttributeError, OSError):
        return False


def _end_with_hole(sink: IO[bytes], length: int, seekable: bool) -> None:
    """Extend ``sink`` by ``length`` zero bytes at its end (a hole in a file that can have one).

    ``truncate()`` past the end makes a hole in a file but never extends some sinks (``io.BytesIO``
    only shrinks), so a sink still short after it gets its last byte written.
    """
    if not seekable:
        _skip(sink, length, False)
        return
    end = sink.tell() + length
    sink.seek(end)
    try:
        sink.truncate()
    except OSError:
        pass
    if sink.seek(0, os.SEEK_END) < end:
        sink.seek(end - 1)
        sink.write(b"\0")
    sink.seek(end)


def _skip(sink: IO[bytes], length: int, seekable: bool) -> None:
    if seekable:
        sink.seek(length, os.SEEK_CUR)
        return
    while length > 0:
        step = min(length, CHUNK)
        sink.write(_ZERO[:step])
        length -= step
