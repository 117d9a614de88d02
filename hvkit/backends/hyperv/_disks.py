"""Disks in and out: VHDX files copied over SMB, converted on this machine with qemu-img."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import IO

from ...driver import DiskImage, ProgressFn, SparseWriter, convert_image, probe_format, qemu_img
from ...errors import AlreadyExists, InvalidSpec, InvalidState, NotFound
from ...models import DiskFormat, Snapshot, StoragePool, Volume
from ._session import Session
from ._smb import SmbFiles
from ._storage import list_in
from ._vms import file_name

__all__ = ["download_volume", "export_disk", "import_disk", "upload_volume"]

CHUNK = 4 * 1024 * 1024


def _readable_copy(s: Session, smb: SmbFiles, volume: Volume, dest: Path, progress: ProgressFn) -> int:
    """Copy the volume's file here; a differencing disk is first merged into a new VHDX on the host (Convert-VHD)."""
    if not volume.backing:
        return smb.download(volume.id, dest, progress, volume.allocation_bytes or volume.capacity_bytes)
    folder = volume.id.rpartition("\\")[0]
    merged = f"{folder}\\.hvkit-export-{uuid.uuid4().hex[:12]}.vhdx"
    s.run("volume.export", {"Path": volume.id, "Destination": merged})
    try:
        return smb.download(merged, dest, progress, volume.capacity_bytes)
    finally:
        smb.remove(merged)


def _checkpoint_copy(
    s: Session, smb: SmbFiles, volume: Volume, snapshot: Snapshot, dest: Path, progress: ProgressFn
) -> int:
    """Copy the volume as the checkpoint holds it: its file of the checkpoint (read-only while the VM runs on a
    child of it), merged into a new VHDX on the host first when that file is itself differencing."""
    folder = volume.id.rpartition("\\")[0]
    merged = f"{folder}\\.hvkit-export-{uuid.uuid4().hex[:12]}.vhdx"
    rec = s.run(
        "snapshot.export", {"Id": snapshot.vm, "SnapshotId": snapshot.id, "Path": volume.id, "Destination": merged}
    )
    if not rec.get("Merged"):
        return smb.download(rec["Source"], dest, progress, int(rec.get("FileSize") or 0) or volume.capacity_bytes)
    try:
        return smb.download(merged, dest, progress, volume.capacity_bytes)
    finally:
        smb.remove(merged)


def export_disk(
    s: Session, smb: SmbFiles, volume: Volume, workdir: str, progress: ProgressFn, snapshot: Snapshot | None = None
) -> DiskImage:
    """The volume's content now, or as ``snapshot`` (a checkpoint of the VM using it) holds it, as a local VHDX."""
    Path(workdir).mkdir(parents=True, exist_ok=True)
    dest = Path(workdir) / f"{file_name(Path(volume.name).stem)}-{uuid.uuid4().hex[:8]}.vhdx"
    if snapshot is None:
        moved = _readable_copy(s, smb, volume, dest, progress)
    else:
        moved = _checkpoint_copy(s, smb, volume, snapshot, dest, progress)
    return DiskImage(str(dest), probe_format(dest), volume.capacity_bytes, temporary=True, bytes_moved=moved)


def import_disk(
    s: Session,
    smb: SmbFiles,
    pool: StoragePool,
    name: str,
    image: DiskImage,
    fmt: DiskFormat,
    workdir: str,
    progress: ProgressFn,
) -> Volume:
    if fmt not in (DiskFormat.VHDX, DiskFormat.VHD):
        raise InvalidSpec(f"Hyper-V volumes are VHDX or VHD, not {fmt.value}")
    ext = ".vhd" if fmt is DiskFormat.VHD else ".vhdx"
    path = f"{s.pool_dir(pool.name)}\\{file_name(name)}{'' if name.lower().endswith(ext) else ext}"
    Path(workdir).mkdir(parents=True, exist_ok=True)
    if image.size % (1024 * 1024):
        raise InvalidSpec("a VHDX holds whole MiB: the image's size is not a multiple of 1 MiB")
    local = convert_image(image, fmt, workdir) if image.format is not fmt else image
    if fmt is DiskFormat.VHDX and local is image:  # make sure it is a dynamic VHDX with no parent
        local = DiskImage(str(Path(workdir) / f"import-{uuid.uuid4().hex[:8]}.vhdx"), fmt, image.size, temporary=True)
        qemu_img(
            "convert", "-U", "-f", image.format.value, "-O", "vhdx", "-o", "subformat=dynamic", image.path, local.path
        )
    try:
        smb.upload(Path(local.path), path, progress)  # refuses to overwrite: AlreadyExists
        uploaded = True
        found = [v for v in list_in(s, [s.pool_dir(pool.name)]) if v.id.lower() == path.lower()]
        if not found:
            raise NotFound(f"the host does not see {path} after the upload")
        return found[0]
    except AlreadyExists:
        uploaded = False
        raise
    except BaseException:
        if uploaded:
            smb.remove(path)  # ours: this call created it
        raise
    finally:
        if local is not image and Path(local.path).exists():
            Path(local.path).unlink()


def download_volume(s: Session, smb: SmbFiles, volume: Volume, sink: IO[bytes], progress: ProgressFn) -> int:
    with tempfile.TemporaryDirectory(prefix="hvkit-hyperv-") as tmp:
        copy = Path(tmp) / "disk.vhdx"
        _readable_copy(s, smb, volume, copy, lambda done, total: None)
        raw = Path(tmp) / "disk.raw"
        qemu_img("convert", "-O", "raw", str(copy), str(raw))
        total = raw.stat().st_size
        done = 0
        with raw.open("rb") as src:
            while chunk := src.read(CHUNK):
                sink.write(chunk)
                done += len(chunk)
                progress(done, total)
        return done


def upload_volume(
    s: Session, smb: SmbFiles, volume: Volume, source: IO[bytes], size: int, progress: ProgressFn
) -> None:
    if volume.extra.get("attached_to"):
        raise InvalidState(f"volume {volume.name!r} is attached to a VM; detach it (or delete the VM) first")
    if volume.extra.get("read_by"):  # the parent of a checkpoint's or linked clone's differencing disk
        raise InvalidState(
            f"volume {volume.name!r} is read by differencing disks (checkpoints or linked clones) of VM(s) "
            f"{', '.join(volume.extra['read_by'])}; writing it would corrupt them"
        )
    with tempfile.TemporaryDirectory(prefix="hvkit-hyperv-") as tmp:
        raw = Path(tmp) / "disk.raw"
        with raw.open("wb") as out:
            writer = SparseWriter(out)
            left = size
            while left > 0:
                chunk = source.read(min(CHUNK, left))
                if not chunk:
                    break
                writer.write(chunk)
                left -= len(chunk)
            out.truncate(volume.capacity_bytes)
        fmt = "vpc" if volume.format is DiskFormat.VHD else "vhdx"
        image = Path(tmp) / f"disk.{fmt}"
        qemu_img("convert", "-f", "raw", "-O", fmt, "-o", "subformat=dynamic", str(raw), str(image))
        smb.replace(image, volume.id, progress)
