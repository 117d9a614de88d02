"""The disk pipeline: image facts (qemu-img info / map), conversion, and the default disk export/import.

Only allocated data is read, hashed and moved: ``qemu-img map --output=json`` tells where the data is,
qemu-img convert skips holes, and downloads are written back as sparse files.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import uuid
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from ..capabilities import Capability
from ..errors import InvalidSpec, Unsupported
from ..models import DiskFormat, Snapshot, StoragePool, Volume
from ._qemuimg import qemu_img

if TYPE_CHECKING:
    from ..backend import Backend, DiskImage, ProgressFn

__all__ = [
    "Extent",
    "SparseWriter",
    "allocated_bytes",
    "convert_image",
    "default_export",
    "default_import",
    "image_info",
    "image_map",
    "partial_path",
    "qemu_img",
    "write_into",
]

CHUNK = 4 * 1024 * 1024
ZERO_BLOCK = 64 * 1024
_ZEROS = bytes(ZERO_BLOCK)
# formats whose `qemu-img map` offsets are byte offsets into the image file itself (checked by the tests)
IN_FILE_OFFSETS = frozenset({DiskFormat.RAW, DiskFormat.QCOW2, DiskFormat.VDI, DiskFormat.VHD, DiskFormat.VHDX})


def _fmt(value: DiskFormat | str) -> DiskFormat:
    if isinstance(value, DiskFormat):
        return value
    try:
        return DiskFormat("vpc" if value == "vhd" else value)
    except ValueError:
        raise InvalidSpec(f"unknown disk format {value!r} (one of: {', '.join(f.value for f in DiskFormat)})") from None


def image_info(path: str | os.PathLike[str], fmt: DiskFormat | None = None) -> dict[str, Any]:
    """``qemu-img info`` as a dict (shared read: works on an image another process has open)."""
    args = ["info", "--output=json", "-U"]
    if fmt is not None:
        args += ["-f", fmt.value]
    data: dict[str, Any] = json.loads(qemu_img(*args, os.fspath(path)))
    return data


def probe_format(path: str | os.PathLike[str]) -> DiskFormat:
    return _fmt(str(image_info(path)["format"]))


@attrs.frozen
class Extent:
    """A stretch of guest-visible bytes: data (at ``offset`` in the file, when known) or zeros."""

    start: int
    length: int
    data: bool
    zero: bool
    offset: int | None = None
    depth: int = 0

    @property
    def end(self) -> int:
        return self.start + self.length

    @property
    def has_data(self) -> bool:
        return self.data and not self.zero


def image_map(path: str | os.PathLike[str], fmt: DiskFormat) -> list[Extent]:
    """The image's allocation map (``qemu-img map --output=json``), in guest order."""
    out = qemu_img("map", "--output=json", "-U", "-f", fmt.value, os.fspath(path))
    extents = [
        Extent(
            int(e["start"]), int(e["length"]), bool(e["data"]), bool(e["zero"]), e.get("offset"), int(e.get("depth", 0))
        )
        for e in json.loads(out)
    ]
    return sorted(extents, key=lambda e: e.start)


def allocated_bytes(path: str | os.PathLike[str], fmt: DiskFormat) -> int:
    """Bytes of data (not holes, not zero clusters) the image holds: what the migration reads and moves."""
    return sum(e.length for e in image_map(path, fmt) if e.has_data)


def convert_image(
    image: DiskImage, fmt: DiskFormat, workdir: str | os.PathLike[str], *, name: str | None = None
) -> DiskImage:
    """Convert ``image`` to ``fmt`` under ``workdir`` (sparse); the result is a temporary image.

    Returns ``image`` itself when it is in ``fmt`` already.
    """
    from ..backend import DiskImage

    if image.format is fmt:
        return image
    Path(workdir).mkdir(parents=True, exist_ok=True)
    dest = Path(workdir) / (name or f"{Path(image.path).stem}-{uuid.uuid4().hex[:8]}.{fmt.value}")
    qemu_img("convert", "-U", "-f", image.format.value, "-O", fmt.value, image.path, os.fspath(dest))
    return DiskImage(os.fspath(dest), fmt, image.size, temporary=True)


PARTIAL_SUFFIX = ".hvkit-part"


def partial_path(folder: str | os.PathLike[str], name: str) -> Path:
    """The hidden file a backend's import of volume ``name`` into the directory ``folder`` writes before the
    file becomes the volume (``.NAME.hvkit-part``): one name, so a journal can record it and remove it."""
    return Path(folder) / f".{name}{PARTIAL_SUFFIX}"


def write_into(image: DiskImage, path: str | os.PathLike[str], fmt: DiskFormat, *, fresh: bool = True) -> int:
    """Write ``image``'s content into the existing image file ``path`` (in ``fmt``); return data bytes written.

    ``fresh``: the target reads as zeros everywhere (a volume just created), so holes are not written.
    """
    args = ["convert", "-U", "-n", "-f", image.format.value, "-O", fmt.value]
    if fresh:
        args.append("--target-is-zero")
    if image.data_bytes is not None:
        qemu_img(*args, image.path, os.fspath(path))
        return image.allocated() or 0
    # the source's map (a shared read) while the convert runs: it is off the critical path
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="hvkit-map") as side:
        allocated = side.submit(allocated_bytes, image.path, image.format)
        qemu_img(*args, image.path, os.fspath(path))
        return allocated.result()


class SparseWriter:
    """A binary sink for raw content that leaves all-zero 64 KiB blocks as holes in the file."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._out = stream
        self._pos = 0
        self.data_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        n = len(view)
        i = 0
        while i < n:
            # keep writes aligned to the block grid so holes line up with the file system's
            step = min(ZERO_BLOCK - (self._pos % ZERO_BLOCK), n - i)
            piece = view[i : i + step]
            if piece == _ZEROS[:step]:
                self._out.seek(step, os.SEEK_CUR)
            else:
                self._out.write(piece)
                self.data_bytes += step
            self._pos += step
            i += step
        return n

    def flush(self) -> None:
        self._out.flush()

    def finish(self) -> int:
        """Set the file's length (a trailing hole has no write) and return it."""
        self._out.truncate(self._pos)
        self._out.flush()
        return self._pos

    # enough of the IO protocol for the backends' download loops
    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos


def _as_io(writer: SparseWriter) -> IO[bytes]:
    return writer  # type: ignore[return-value]


def default_export(
    backend: Backend, volume: Volume, workdir: str, progress: ProgressFn, snapshot: Snapshot | None
) -> DiskImage:
    """Backend.export_disk's default: the local file in place, else a sparse raw download."""
    from ..backend import DiskImage

    path = backend.local_path(volume)
    if path is not None:
        fmt = volume.format or probe_format(path)
        if snapshot is None:
            return DiskImage(path, fmt, volume.capacity_bytes, temporary=False)
        return _export_internal_snapshot(backend, volume, path, fmt, workdir, snapshot)
    if snapshot is not None:
        raise Unsupported(backend.kind, "export_disk(snapshot=...)", "the backend cannot read a disk as of a snapshot")
    if Capability.VOLUME_DOWNLOAD not in backend.capabilities:
        raise Unsupported(backend.kind, "export_disk", "the backend neither downloads volumes nor exports disks")
    Path(workdir).mkdir(parents=True, exist_ok=True)
    dest = Path(workdir) / f"export-{uuid.uuid4().hex[:12]}.raw"
    try:
        with dest.open("wb") as out:
            writer = SparseWriter(out)
            moved = backend.download_volume(volume, _as_io(writer), progress)
            size = writer.finish()
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    moved = moved if isinstance(moved, int) else size
    return DiskImage(os.fspath(dest), DiskFormat.RAW, size, True, moved, data_bytes=writer.data_bytes)


def _export_internal_snapshot(
    backend: Backend, volume: Volume, path: str, fmt: DiskFormat, workdir: str, snapshot: Snapshot
) -> DiskImage:
    """A local qcow2 with an internal snapshot tagged with the snapshot's id or name (libvirt, sim, qemu)."""
    from ..backend import DiskImage

    tags = {s.get("name") for s in image_info(path, fmt).get("snapshots", [])} if fmt is DiskFormat.QCOW2 else set()
    tag = snapshot.id if snapshot.id in tags else snapshot.name if snapshot.name in tags else None
    if tag is None:
        reason = f"volume {volume.name!r} keeps no internal snapshot {snapshot.name!r}"
        raise Unsupported(backend.kind, "export_disk(snapshot=...)", reason)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    dest = Path(workdir) / f"export-{uuid.uuid4().hex[:12]}.qcow2"
    qemu_img("convert", "-U", "-f", "qcow2", "-l", f"snapshot.name={tag}", "-O", "qcow2", path, os.fspath(dest))
    return DiskImage(os.fspath(dest), DiskFormat.QCOW2, volume.capacity_bytes, temporary=True)


def default_import(
    backend: Backend,
    pool: StoragePool,
    name: str,
    image: DiskImage,
    fmt: DiskFormat,
    workdir: str,
    progress: ProgressFn,
) -> Volume:
    """Backend.import_disk's default: create the volume, then qemu-img into its local file, else upload raw."""
    from ..tasks import Task

    if Capability.VOLUME_CREATE not in backend.capabilities:
        raise Unsupported(backend.kind, "import_disk", "the backend cannot create volumes")
    created = backend.create_volume(pool, name, image.size, fmt)
    if isinstance(created, Task):
        created = created.wait()
    vol: Volume = created
    try:
        path = backend.local_path(vol)
        if path is not None:
            written = write_into(image, path, fmt, fresh=True)
            progress(written, written)  # bytes of data written: what crossed over
        else:
            if Capability.VOLUME_UPLOAD not in backend.capabilities:
                raise Unsupported(backend.kind, "import_disk", "the backend neither uploads volumes nor imports disks")
            raw = convert_image(image, DiskFormat.RAW, workdir)
            try:
                with Path(raw.path).open("rb") as src:
                    size = Path(raw.path).stat().st_size
                    result = backend.upload_volume(vol, src, size, progress)
                    if isinstance(result, Task):
                        result.wait()
            finally:
                if raw is not image:
                    Path(raw.path).unlink(missing_ok=True)
        return vol
    except BaseException:
        try:
            result = backend.delete_volume(vol)
            if isinstance(result, Task):
                result.wait()
        except Exception:  # the original error is the one to report
            pass
        raise
