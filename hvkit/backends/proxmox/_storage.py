"""Proxmox volumes: list and delete, disk export and import, image upload."""

from __future__ import annotations

import re
from typing import IO, Any

import requests  # noqa: F401 - imported before proxmoxer, whose https module calls sys.exit without it

from ...driver import DiskImage, ProgressFn, Task
from ...errors import InvalidSpec
from ...models import (
    DiskFormat,
    Snapshot,
    StoragePool,
    Volume,
)
from . import _disks
from ._errors import translate
from ._session import (
    NamedStream,
    ProxmoxSession,
)


def list_volumes(session: ProxmoxSession, pool: StoragePool) -> list[Volume]:
    node = pool.host or str(pool.extra.get("node"))
    with translate():
        items = session.api.nodes(node).storage(pool.name).content.get()
    out = []
    for item in items:
        fmt = str(item.get("format", ""))
        volid = str(item["volid"])
        out.append(
            Volume(
                id=volid,
                name=volid.split(":", 1)[1],
                pool=pool.name,
                capacity_bytes=int(item.get("size", 0)),
                allocation_bytes=int(item["used"]) if item.get("used") is not None else None,
                format=DiskFormat(fmt) if fmt in ("raw", "qcow2", "vmdk") else None,
                backing=item.get("parent"),
                extra={"content": item.get("content"), "vmid": item.get("vmid"), "node": node},
            )
        )
    return out


def delete_volume(session: ProxmoxSession, volume: Volume) -> Task:
    return _disks.delete_volume(session, volume)


def export_disk(
    session: ProxmoxSession, volume: Volume, workdir: str, progress: ProgressFn, snapshot: Snapshot | None = None
) -> DiskImage:
    """The volume's image file copied from its node over SSH (options ``ssh_*``; see ``_disks``)."""
    return _disks.export_disk(session, volume, workdir, progress, snapshot)


def import_disk(
    session: ProxmoxSession,
    pool: StoragePool,
    name: str,
    image: DiskImage,
    fmt: DiskFormat,
    workdir: str,
    progress: ProgressFn,
) -> Volume:
    """Upload with ``content=import`` + sha256; the VM is then created with ``import-from`` it."""
    return _disks.import_disk(session, pool, name, image, fmt, workdir, progress)


def upload_image(
    session: ProxmoxSession,
    node: str,
    storage: str,
    filename: str,
    source: IO[bytes],
    *,
    content: str = "import",
    checksum: tuple[str, str] | None = None,
    progress: ProgressFn | None = None,
) -> Task:
    """Proxmox-only: upload a disk image (content ``import``) or an ISO; the Task yields its volume id.

    ``checksum`` is (algorithm, hex digest); Proxmox verifies it. The volume id then serves as
    ``DiskSpec(volume=...)`` in a VMSpec, which the backend creates with ``import-from``.
    """
    if not re.fullmatch(r"[\w.\-]+\.(qcow2|raw|vmdk|img|iso|ova)", filename):
        raise InvalidSpec(
            f"upload filename {filename!r} must be a plain name ending in .qcow2, .raw, .vmdk, .img, .iso or .ova"
        )
    data: dict[str, Any] = {"content": content}
    if checksum is not None:
        data.update({"checksum": checksum[1], "checksum-algorithm": checksum[0]})
    wrapped = NamedStream(source, filename, progress)
    data["filename"] = wrapped
    with translate():
        upid = session.api.nodes(node).storage(storage).upload.post(**data)
    return session.follow_task(node, upid, "volumes.upload", filename, f"{storage}:{content}/{filename}")
