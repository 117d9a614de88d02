"""SRs as storage pools, VDIs as volumes; disk content through XAPI's /import_raw_vdi and /export_raw_vdi."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import IO, Any

from ...driver import DiskImage, ProgressFn, qemu_img
from ...errors import AlreadyExists, BackendError, ConnectionError, InvalidSpec, InvalidState, NotFound
from ...models import DiskFormat, StoragePool, Volume
from . import _convert as cv
from ._errors import translate
from ._session import XapiSession
from ._vms import new_vdi

__all__ = ["create_volume", "download", "export_disk", "import_disk", "list_pools", "list_volumes", "upload"]

CHUNK = 4 * 1024 * 1024


def _local_hosts(s: XapiSession) -> dict[str, str]:
    """SR ref -> uuid of the one host that mounts it (for SRs that are not shared)."""
    hosts = {ref: rec["uuid"] for ref, rec in s.call("host.get_all_records").items()}
    out: dict[str, str] = {}
    for pbd in s.call("PBD.get_all_records").values():
        out[pbd["SR"]] = hosts.get(pbd["host"], "")
    return out


def list_pools(s: XapiSession) -> list[StoragePool]:
    local = _local_hosts(s)
    return [
        cv.pool(ref, rec, local.get(ref))
        for ref, rec in s.call("SR.get_all_records").items()
        if rec["content_type"] not in ("iso",) and rec["type"] not in ("udev", "iso")
    ]


def _is_volume(rec: dict[str, Any]) -> bool:
    return not rec["is_a_snapshot"] and rec["type"] in ("user", "system", "ephemeral")


def list_volumes(s: XapiSession, pool: StoragePool) -> list[Volume]:
    sr = str(pool.extra.get("ref") or s.call("SR.get_by_uuid", pool.id))
    return [
        cv.volume(ref, rec, pool.name)
        for ref, rec in s.call("VDI.get_all_records").items()
        if rec["SR"] == sr and _is_volume(rec)
    ]


def get_volume(s: XapiSession, ref_text: str) -> Volume:
    try:
        ref = s.call("VDI.get_by_uuid", ref_text)
    except NotFound:
        raise NotFound(f"no volume {ref_text!r} on this xen pool") from None
    rec = s.call("VDI.get_record", ref)
    if not _is_volume(rec):
        raise NotFound(f"no volume {ref_text!r} on this xen pool (it is a snapshot or a memory image)")
    return cv.volume(ref, rec, s.call("SR.get_name_label", rec["SR"]))


def create_volume(s: XapiSession, pool: StoragePool, name: str, size: int, fmt: DiskFormat) -> Volume:
    if fmt not in (DiskFormat.VHD, DiskFormat.RAW):
        raise InvalidSpec(f"XAPI SRs keep VHD disks, not {fmt.value}")
    if any(v.name == name for v in list_volumes(s, pool)):
        raise AlreadyExists(f"a volume named {name!r} exists already in {pool.name!r}")
    sr = str(pool.extra.get("ref") or s.call("SR.get_by_uuid", pool.id))
    ref = new_vdi(s, sr, name, size)
    return cv.volume(ref, s.call("VDI.get_record", ref), pool.name)


def create_linked_volume(s: XapiSession, pool: StoragePool, name: str, base: Volume) -> Volume:
    """VDI.clone of ``base``: copy-on-write on VHD SRs, in the base's SR, named ``name``. XAPI lets the base be
    destroyed under its clones (the SR keeps the shared parent), so hvkit.images keeps the record that refuses it."""
    sr = str(pool.extra.get("ref") or s.call("SR.get_by_uuid", pool.id))
    base_ref = _ref(s, base)
    if s.call("VDI.get_SR", base_ref) != sr:
        raise InvalidSpec(f"a linked disk is a VDI.clone, made in its base's SR ({base.pool!r}), not {pool.name!r}")
    if any(v.name == name for v in list_volumes(s, pool)):
        raise AlreadyExists(f"a volume named {name!r} exists already in {pool.name!r}")
    ref = str(s.call("VDI.clone", base_ref, {}))
    try:
        s.call("VDI.set_name_label", ref, name)
        return cv.volume(ref, s.call("VDI.get_record", ref), pool.name)
    except BaseException:
        with contextlib.suppress(Exception):
            s.call("VDI.destroy", ref)  # the clone this call made, by its reference
        raise


def delete_volume(s: XapiSession, volume: Volume) -> None:
    ref = str(volume.extra.get("ref") or s.call("VDI.get_by_uuid", volume.id))
    if s.call("VDI.get_VBDs", ref):
        raise InvalidState(f"volume {volume.name!r} is attached to a VM; detach or delete the VM first")
    s.call("VDI.destroy", ref)


def _ref(s: XapiSession, volume: Volume) -> str:
    """The VDI's reference, read now: it must exist, and an expired session is renewed before the transfer."""
    return str(s.call("VDI.get_by_uuid", volume.id))


def upload(
    s: XapiSession, volume: Volume, source: IO[bytes], size: int, progress: ProgressFn, fmt: str = "raw"
) -> None:
    """PUT ``size`` bytes to /import_raw_vdi, streamed in chunks."""
    conn, path = s.http("PUT", "/import_raw_vdi", {"vdi": _ref(s, volume), "format": fmt})
    with translate("import_raw_vdi", s.options.ca_file):
        try:
            conn.putrequest("PUT", path)
            conn.putheader("Content-Length", str(size))
            conn.putheader("Content-Type", "application/octet-stream")
            conn.endheaders()
            done = 0
            while done < size:
                chunk = source.read(min(CHUNK, size - done))
                if not chunk:
                    raise InvalidSpec(f"the source ended after {done} of {size} bytes")
                conn.send(chunk)
                done += len(chunk)
                progress(done, size)
            reply = conn.getresponse()
            body = reply.read()
        finally:
            conn.close()
    _check(reply.status, body, "import_raw_vdi")


def _check(status: int, body: bytes, what: str) -> None:
    if status == 200:
        return
    text = body.decode(errors="replace").strip()[:200]
    if status == 403:
        raise ConnectionError(f"{what}: XAPI refused the session ({text})")
    if status == 404:
        raise NotFound(f"{what}: {text or 'no such VDI'}")
    raise BackendError(f"{what} answered HTTP {status}: {text}")


def download(s: XapiSession, volume: Volume, sink: IO[bytes], progress: ProgressFn, fmt: str = "raw") -> int:
    """GET /export_raw_vdi into ``sink``, streamed; returns the byte count."""
    conn, path = s.http("GET", "/export_raw_vdi", {"vdi": _ref(s, volume), "format": fmt})
    with translate("export_raw_vdi", s.options.ca_file):
        try:
            conn.request("GET", path)
            reply = conn.getresponse()
            if reply.status != 200:
                _check(reply.status, reply.read(), "export_raw_vdi")
            total = int(reply.getheader("Content-Length") or 0)
            done = 0
            while True:
                chunk = reply.read(CHUNK)
                if not chunk:
                    break
                sink.write(chunk)
                done += len(chunk)
                progress(done, total or done)
        finally:
            conn.close()
    if total and done != total:
        raise ConnectionError(f"export_raw_vdi ended after {done} of {total} bytes")
    return done


def export_disk(s: XapiSession, volume: Volume, workdir: str, progress: ProgressFn) -> DiskImage:
    """The VDI as a dynamic VHD under ``workdir``: only allocated blocks cross the wire."""
    Path(workdir).mkdir(parents=True, exist_ok=True)
    dest = Path(workdir) / f"xen-export-{uuid.uuid4().hex[:12]}.vhd"
    try:
        with dest.open("wb") as out:
            moved = download(s, volume, out, progress, fmt="vhd")
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return DiskImage(os.fspath(dest), DiskFormat.VHD, volume.capacity_bytes, temporary=True, bytes_moved=moved)


def import_disk(
    s: XapiSession, pool: StoragePool, name: str, image: DiskImage, workdir: str, progress: ProgressFn
) -> Volume:
    """Create a VDI and fill it through /import_raw_vdi as a dynamic VHD (holes are not sent)."""
    source, temporary = image.path, False
    if image.format is not DiskFormat.VHD:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        source = os.fspath(Path(workdir) / f"xen-import-{uuid.uuid4().hex[:12]}.vhd")
        qemu_img(
            "convert",
            "-q",
            "-f",
            image.format.value,
            "-O",
            "vpc",
            "-o",
            "subformat=dynamic,force_size=on",
            image.path,
            source,
        )
        temporary = True
    try:
        volume = create_volume(s, pool, name, image.size, DiskFormat.VHD)
        try:
            size = Path(source).stat().st_size
            with Path(source).open("rb") as f:
                upload(s, volume, f, size, progress, fmt="vhd")
        except BaseException:
            delete_volume(s, volume)
            raise
        return volume
    finally:
        if temporary:
            Path(source).unlink(missing_ok=True)
