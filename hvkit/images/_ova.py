"""The disk of an OVA: a tar holding an .ovf descriptor and the disk files it names."""

from __future__ import annotations

import shutil
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath

from ._errors import ImageError

__all__ = ["disk_of_ova", "is_ova", "is_ovf"]

_OVF = "{http://schemas.dmtf.org/ovf/envelope/1}"


def is_ova(path: Path) -> bool:
    return path.suffix.lower() == ".ova" or (path.suffix.lower() != ".ovf" and _is_tar_with_ovf(path))


def is_ovf(path: Path) -> bool:
    return path.suffix.lower() == ".ovf"


def _is_tar_with_ovf(path: Path) -> bool:
    try:
        with tarfile.open(path, "r:") as tar:
            return any(m.name.lower().endswith(".ovf") for m in tar.getmembers())
    except (tarfile.TarError, OSError):
        return False


def _first_disk_file(descriptor: bytes, what: str) -> str:
    """The file name of the descriptor's first disk (DiskSection order), read from its References."""
    try:
        root = ET.fromstring(descriptor)
    except ET.ParseError as exc:
        raise ImageError(f"{what}: the OVF descriptor is not valid XML: {exc}") from None
    files = {f.get(f"{_OVF}id"): f.get(f"{_OVF}href") for f in root.iter(f"{_OVF}File")}
    for disk in root.iter(f"{_OVF}Disk"):
        href = files.get(disk.get(f"{_OVF}fileRef"))
        if href:
            return href
    raise ImageError(f"{what}: the OVF descriptor names no disk file")


def _safe_member(name: str, what: str) -> str:
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        raise ImageError(f"{what}: refusing the disk file name {name!r} (it leaves the package)")
    return name


def disk_of_ova(path: Path, workdir: Path) -> Path:
    """Extract the first disk of the OVA at ``path`` into ``workdir`` (only that member is written)."""
    what = path.name
    try:
        with tarfile.open(path, "r:") as tar:
            members = {m.name: m for m in tar.getmembers()}
            ovf = [m for n, m in members.items() if n.lower().endswith(".ovf")]
            if len(ovf) != 1:
                raise ImageError(f"{what}: an OVA holds one .ovf descriptor, this one {len(ovf)}")
            reader = tar.extractfile(ovf[0])
            if reader is None:
                raise ImageError(f"{what}: the descriptor is not a regular file")
            href = _safe_member(_first_disk_file(reader.read(), what), what)
            member = members.get(href) or members.get(f"./{href}")
            if member is None or not member.isfile():
                raise ImageError(f"{what}: the disk file {href!r} the descriptor names is missing")
            source = tar.extractfile(member)
            if source is None:
                raise ImageError(f"{what}: the disk file {href!r} is not a regular file")
            dest = workdir / f"ova-disk-{PurePosixPath(href).name}"
            with dest.open("wb") as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
            return dest
    except tarfile.TarError as exc:
        raise ImageError(f"{what}: not a readable OVA (tar): {exc}") from None
