"""Disks in and out of VirtualBox for the migration engine, through ``VBoxManage clonemedium``.

Export: ``clonemedium`` flattens the medium (a linked clone's chain included) into a new image -- a VDI
beside the caller's work folder when VirtualBox runs here, a raw file on the remote host that is then
streamed over SSH (holes kept) -- and the temporary medium is closed again. Import: the image is made
readable by VirtualBox (VDI, VMDK and VHD as they are; other formats converted to VMDK first; over SSH
sent as raw), then ``clonemedium`` writes the volume in the format asked for (VDI, VMDK or VHD).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import IO

from hvkit import errors
from hvkit.driver import DiskImage, ProgressFn, SparseWriter, convert_image
from hvkit.models import DiskFormat, Snapshot, Volume

from . import _storage
from ._session import Session

__all__ = ["download_volume", "export_disk", "import_disk", "upload_volume"]

_READABLE = {DiskFormat.VDI: "VDI", DiskFormat.VMDK: "VMDK", DiskFormat.VHD: "VHD"}
_CHUNK = 4 * 1024 * 1024


def _clone(session: Session, source: str, target: str, fmt: str) -> str:
    out = session.run(["clonemedium", "disk", source, target, "--format", fmt])
    found = re.search(r"UUID: ([0-9a-fA-F-]{36})", out)
    if not found:
        raise errors.BackendError(f"clonemedium did not report the new medium's UUID: {out[-200:]!r}")
    return found.group(1).lower()


def export_disk(
    session: Session, volume: Volume, workdir: str, progress: ProgressFn, snapshot: Snapshot | None
) -> DiskImage:
    if snapshot is not None:
        raise errors.Unsupported("vbox", "export_disk(snapshot=...)", "VirtualBox exports a disk's current content")
    Path(workdir).mkdir(parents=True, exist_ok=True)
    size = volume.capacity_bytes
    if not session.remote:
        target = str(Path(workdir).absolute() / f"vbox-{volume.id}-{uuid.uuid4().hex[:6]}.vdi")
        clone = _clone(session, volume.id, target, "VDI")
        _storage.close_medium(session, clone, delete=False)  # the file stays, VirtualBox forgets it
        progress(size, size)
        return DiskImage(target, DiskFormat.VDI, size, temporary=True)
    remote = f"{session.machine_folder()}/hvkit-export-{uuid.uuid4().hex[:12]}.raw"
    clone = _clone(session, volume.id, remote, "RAW")
    local = Path(workdir) / f"vbox-{volume.id}.raw"
    try:
        moved = _stream_from(session, remote, local, size, progress)
    finally:
        _storage.close_medium(session, clone, delete=True)
    return DiskImage(str(local), DiskFormat.RAW, size, temporary=True, bytes_moved=moved)


def _stream_from(session: Session, remote: str, local: Path, size: int, progress: ProgressFn) -> int:
    """``cat`` the remote raw file over SSH into a sparse local file."""
    done = 0
    argv = [*session.ssh_prefix(), f"cat {shlex.quote(remote)}"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc, local.open("wb") as out:
        assert proc.stdout is not None and proc.stderr is not None
        writer = SparseWriter(out)
        while chunk := proc.stdout.read(_CHUNK):
            writer.write(chunk)
            done += len(chunk)
            progress(done, size)
        writer.finish()
        err = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0 or done != size:
        local.unlink(missing_ok=True)
        kind = errors.ConnectionError if proc.returncode == 255 else errors.BackendError
        raise kind(f"copying {remote} from {session.host} failed: {err.strip()[-300:] or 'short read'}")
    return done


def import_disk(
    session: Session, name: str, image: DiskImage, fmt: DiskFormat, workdir: str, progress: ProgressFn
) -> Volume:
    if fmt not in _READABLE:
        raise errors.InvalidSpec(f"VirtualBox volumes are VDI, VMDK or VHD, not {fmt.value}")
    if any(v.name == name for v in _storage.list_volumes(session)):
        raise errors.AlreadyExists(f"a volume named {name!r} exists already in pool {_storage.POOL!r}")
    target = f"{session.machine_folder()}/{name}.{_storage.EXTENSIONS[fmt]}"
    if session.remote:
        raw = convert_image(image, DiskFormat.RAW, workdir)
        source = f"{session.machine_folder()}/hvkit-import-{uuid.uuid4().hex[:12]}.raw"
        with Path(raw.path).open("rb") as data:
            session.shell(
                f"mkdir -p {shlex.quote(session.machine_folder())} && cat > {shlex.quote(source)}", stdin=data
            )
        cleanup = f"rm -f {shlex.quote(source)}"
    else:
        ready = image if image.format in _READABLE else convert_image(image, DiskFormat.VMDK, workdir)
        source, cleanup = str(Path(ready.path).absolute()), ""
    try:
        medium = _clone(session, source, target, _READABLE[fmt])
    finally:
        opened = _opened_source(session, source)  # clonemedium registered the source it opened by path
        if opened:
            _storage.close_medium(session, opened, delete=False)
        if cleanup:
            session.shell(cleanup)
    progress(image.size, image.size)
    return _storage.get_volume(session, medium)


def _opened_source(session: Session, path: str) -> str:
    """The medium VirtualBox registered for ``path``, if any (to close it again: the file is not ours)."""
    for vol in _storage.list_volumes(session):
        if vol.path == path:
            return vol.id
    return ""


# -- volume streams (hv.volumes.download / upload) --------------------------------------------------------------
def download_volume(session: Session, volume: Volume, sink: IO[bytes], progress: ProgressFn) -> int:
    """The volume's raw content into ``sink``: clonemedium to a raw file (streamed over SSH), then copied."""
    with tempfile.TemporaryDirectory(prefix="hvkit-vbox-") as tmp:
        if session.remote:
            image = export_disk(session, volume, tmp, lambda done, total: None, None)
            path = Path(image.path)
        else:
            path = Path(tmp) / "download.raw"
            _storage.close_medium(session, _clone(session, volume.id, str(path), "RAW"), delete=False)
        done = 0
        with path.open("rb") as data:
            while chunk := data.read(_CHUNK):
                sink.write(chunk)
                done += len(chunk)
                progress(done, volume.capacity_bytes)
    return done


def upload_volume(session: Session, volume: Volume, source: IO[bytes], size: int, progress: ProgressFn) -> None:
    """``size`` raw bytes from ``source`` (the rest of the volume reads as zeros) written with
    ``clonemedium --existing``, which keeps the volume's format and UUID."""
    with tempfile.TemporaryDirectory(prefix="hvkit-vbox-") as tmp:
        raw = Path(tmp) / "upload.raw"
        done = 0
        with raw.open("wb") as out:
            writer = SparseWriter(out)
            while done < size:
                chunk = source.read(min(_CHUNK, size - done))
                if not chunk:
                    break
                writer.write(chunk)
                done += len(chunk)
                progress(done, size)
            writer.finish()
            out.truncate(volume.capacity_bytes)
        if done != size:
            raise errors.InvalidSpec(f"the upload stream ended after {done} of {size} bytes")
        if session.remote:
            source_path = f"{session.machine_folder()}/hvkit-upload-{uuid.uuid4().hex[:12]}.raw"
            with raw.open("rb") as data:
                session.shell(f"cat > {shlex.quote(source_path)}", stdin=data)
        else:
            source_path = str(raw)
        try:
            session.run(["clonemedium", "disk", source_path, volume.id, "--existing"], vm=volume.id)
        finally:
            opened = _opened_source(session, source_path)
            if opened:
                _storage.close_medium(session, opened, delete=False)
            if session.remote:
                session.shell(f"rm -f {shlex.quote(source_path)}")
