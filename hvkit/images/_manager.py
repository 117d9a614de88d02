"""``hv.images``: import verified disk images, keep them as base volumes, verify them, make VM disks of them."""

from __future__ import annotations

import builtins
import functools
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .._images import image_info
from .._resolve import default_pool, find, pick_format, to_format
from .._rollback import Rollback
from ..backend import DiskImage
from ..capabilities import Capability
from ..errors import AlreadyExists, InvalidSpec, NotFound, Unsupported
from ..migration import ALGORITHM, checksum
from ..models import DiskFormat, DiskSpec, VMSpec, Volume
from ..models.spec import check_name
from ..tasks import Task
from . import _fetch, _linked, _ova
from ._catalog import Catalog, Image, default_catalog_path, now
from ._errors import ImageChecksumMismatch, ImageError

if TYPE_CHECKING:
    from ..hypervisor import Hypervisor

__all__ = ["Images", "Verified"]

log = logging.getLogger("hvkit")
ProgressFn = Callable[[int, int], None]
VOLUME_PREFIX = "image-"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@attrs.frozen
class Verified:
    """The result of :meth:`Images.verify`: the recorded and the re-read checksum (equal, else it raised)."""

    image: Image
    checksum: str
    data_bytes: int
    seconds: float


def _noop(done: int, total: int) -> None:
    pass


class Images:
    """Images of one hypervisor: ``import_``, ``list``, ``get``, ``verify``, ``delete``, and VM disks from them.

    Each image is a volume (``image-<name>``) holding the image's content, recorded in the image catalogue
    (:mod:`hvkit.images._catalog`) with the checksum it was accepted with and the format-independent
    content checksum of :func:`hvkit.migration.checksum`. The catalogue file: ``catalog``, else the
    connection option ``image_catalog``, else ``$HVKIT_IMAGE_CATALOG``, else ``~/.local/share/hvkit/images.json``.
    """

    def __init__(self, hv: Hypervisor, catalog: str | os.PathLike[str] | None = None) -> None:
        self._hv = hv
        if catalog is None:
            chosen = hv.backend.options.option("image_catalog")
            catalog = str(chosen) if chosen else default_catalog_path()
        self.catalog = Catalog(catalog, hv.url)

    # -- reading ---------------------------------------------------------------------------------------
    def list(self) -> builtins.list[Image]:
        return self.catalog.list()

    def get(self, name: str) -> Image:
        return self.catalog.get(name)

    # -- import ------------------------------------------------------------------------------------------
    def import_(
        self,
        name: str,
        source: str | os.PathLike[str],
        *,
        sha256: str | None = None,
        sha512: str | None = None,
        sums: str | os.PathLike[str] | None = None,
        signature: str | os.PathLike[str] | None = None,
        keyring: str | os.PathLike[str] | None = None,
        pool: str | None = None,
        format: DiskFormat | str | None = None,
        timeout: float = 600.0,
        ca_file: str | None = None,
        verify_tls: bool = True,
        workdir: str | None = None,
        progress: ProgressFn | None = None,
    ) -> Image:
        """Fetch ``source`` (a disk image, an OVA or an OVF; a file or an http(s) URL), check it, import it.

        A checksum is required: ``sha256`` or ``sha512`` (hex), or ``sums`` (a ``SHA256SUMS`` /
        ``SHA512SUMS`` file or URL) with its detached OpenPGP ``signature`` checked by ``gpgv`` against
        ``keyring`` (a keyring file: only its keys are trusted). A mismatch, a bad signature or an unknown
        key raises (:class:`~hvkit.images.ImageChecksumMismatch`, :class:`~hvkit.images.SignatureError`)
        before anything reaches the hypervisor; downloads go to a temporary directory that is always
        removed, and the volume is removed again if any later step fails.
        """
        hv = self._hv
        check_name("image name", name)
        if not _NAME.fullmatch(name):
            raise InvalidSpec(f"an image name is letters, digits, '.', '_' and '-' (at most 63), got {name!r}")
        source = os.fspath(source)
        wanted = self._wanted_digest(sha256, sha512, sums, signature, keyring)
        _fetch.check_source(source)
        for extra in (sums, signature):
            if extra is not None:
                _fetch.check_source(os.fspath(extra))
        if not (
            hv.backend.traits.disk_import or {Capability.VOLUME_CREATE, Capability.VOLUME_UPLOAD} <= hv.capabilities
        ):
            raise Unsupported(hv.kind, "images.import", "the backend takes no disk in (no import, no volume upload)")
        if timeout <= 0:
            raise InvalidSpec(f"timeout must be positive, got {timeout}")
        target = find(hv.pools.list(), pool, "storage pool") if pool else default_pool(hv.pools.list())
        fmt = pick_format(target, to_format(format))
        if any(i.name == name for i in self.list()):
            raise AlreadyExists(f"image {name!r} is in the catalogue of {hv.url} already")
        volume_name = VOLUME_PREFIX + name
        if any(v.name.startswith(volume_name) for v in hv.volumes.list(target)):
            raise AlreadyExists(f"a volume named {volume_name!r} exists in pool {target.name!r}")

        if workdir is not None:
            Path(workdir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=workdir, prefix="hvkit-image-") as tmp:
            fetched = _fetch.fetch(source, tmp, timeout=timeout, ca_file=ca_file, verify_tls=verify_tls)
            signer = None
            if isinstance(wanted, tuple):  # a signed checksum file
                sums_src, sig_src, ring = wanted
                sums_file = _fetch.fetch(sums_src, tmp, timeout=timeout, ca_file=ca_file, verify_tls=verify_tls)
                sig_file = _fetch.fetch(sig_src, tmp, timeout=timeout, ca_file=ca_file, verify_tls=verify_tls)
                signer = _fetch.verify_signature(sums_file.path, sig_file.path, ring)
                algorithm = "sha512" if "512" in Path(_fetch.source_name(sums_src)).name else "sha256"
                text = sums_file.path.read_text(errors="replace")
                digest = _fetch.parse_sums(text, _fetch.source_name(source), algorithm)
            else:
                digest = wanted
            _fetch.check_digest(_fetch.source_name(source), fetched, digest)
            disk_path = self._disk_file(fetched.path, Path(tmp))
            image = _local_image(disk_path)
            content = checksum(image, workdir=tmp, algorithm=ALGORITHM)
            with Rollback() as undo:
                volume = self._import(target, volume_name, image, fmt, tmp, progress or _noop)
                undo.push(lambda: self._delete_volume(volume), f"delete volume {volume.id}")
                record = Image(
                    name=name,
                    hypervisor=hv.url,
                    volume=volume.id,
                    pool=volume.pool or target.name,
                    format=volume.format or fmt,
                    size_bytes=image.size,
                    source=_fetch._safe(source) if _fetch.is_url(source) else str(Path(source).resolve()),
                    digest=str(digest),
                    content_checksum=content.value,
                    signed_by=signer,
                    imported_at=now(),
                )
                self.catalog.add(record)
        return record

    @staticmethod
    def _wanted_digest(
        sha256: str | None, sha512: str | None, sums: Any, signature: Any, keyring: Any
    ) -> _fetch.Digest | tuple[str, str, Path]:
        given = [x for x in (sha256, sha512, sums) if x is not None]
        if len(given) != 1:
            raise InvalidSpec(
                "an image import needs exactly one of sha256=, sha512= or sums= (with signature=, keyring=)"
            )
        if sha256 is not None:
            return _fetch.Digest("sha256", str(sha256).strip().lower())
        if sha512 is not None:
            return _fetch.Digest("sha512", str(sha512).strip().lower())
        if signature is None or keyring is None:
            raise InvalidSpec("a checksum file (sums=) is trusted only with its signature= and a keyring= to check it")
        ring = Path(os.fspath(keyring))
        if not ring.is_file():
            raise InvalidSpec(f"keyring {ring} is not a file")
        return os.fspath(sums), os.fspath(signature), ring

    def _disk_file(self, fetched: Path, tmp: Path) -> Path:
        if _ova.is_ovf(fetched):  # its checksum would cover the descriptor, not the disk it names
            raise InvalidSpec(f"{fetched.name}: import an OVF packaged as an OVA (one file, one checksum), or its disk")
        if _ova.is_ova(fetched):
            return _ova.disk_of_ova(fetched, tmp)
        return fetched

    def _import(
        self, pool: Any, name: str, image: DiskImage, fmt: DiskFormat, tmp: str, progress: ProgressFn
    ) -> Volume:
        hv = self._hv
        with hv.translating("images.import"):
            volume: Volume = hv.backend.import_disk(pool, name, image, fmt, tmp, progress)
        return volume

    def _delete_volume(self, volume: Volume) -> None:
        result = self._hv.call("images.delete", self._hv.backend.delete_volume, volume)
        if isinstance(result, Task):
            with self._hv.translating("images.delete"):
                result.wait(self._hv.task_timeout)

    # -- verify / delete -----------------------------------------------------------------------------------
    def verify(self, name: str, *, workdir: str | None = None) -> Verified:
        """Read image ``name`` back from the hypervisor and compare its content checksum with the recorded one."""
        image = self.get(name)
        hv = self._hv
        volume = self._volume_of(image)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=workdir, prefix="hvkit-image-verify-") as tmp:
            with hv.translating("images.verify"):
                exported = hv.backend.export_disk(volume, tmp, _noop, None)
            algorithm = _algorithm_of(image.content_checksum)
            got = checksum(exported, size=image.size_bytes, workdir=tmp, algorithm=algorithm)
        if got.value != image.content_checksum or not got.tail_zero:
            raise ImageChecksumMismatch(f"image {name!r} (volume {volume.id})", image.content_checksum, got.value)
        return Verified(image, got.value, got.data_bytes, time.monotonic() - started)

    def delete(self, name: str) -> None:
        """Delete image ``name``'s volume and its catalogue record; refused (InvalidState) while linked disks use it."""
        image = self.get(name)
        try:
            volume = self._volume_of(image)
        except NotFound:
            volume = None
        self.catalog.deleting(name, image.volume, True)  # from here no new linked disk is recorded over it
        try:
            gone = _linked.refuse_if_used(self._hv, self.get(name), volume)  # its records as of the mark
            if gone:
                self.catalog.unlink(name, image.volume, gone)
            if volume is not None:
                self._delete_volume(volume)
        except BaseException:
            self.catalog.deleting(name, image.volume, False)
            raise
        self.catalog.remove(name, image.volume)

    def _volume_of(self, image: Image) -> Volume:
        try:
            return self._hv.volumes.get(image.volume)
        except NotFound:
            raise NotFound(f"image {image.name!r}: its volume {image.volume} is gone from {self._hv.url}") from None

    # -- VMs from images ------------------------------------------------------------------------------------
    def create_vm(self, spec: VMSpec, *, wait: bool = True, timeout: float | None = None, progress: Any = None) -> Any:
        """Create a VM whose ``DiskSpec(image=...)`` disks are copies of those images (``hv.vms.create``).

        A disk with ``linked=True`` is a copy-on-write volume over the image's volume (VOLUME_LINKED, else
        Unsupported before anything is made); the others are full copies. A failure removes what this call
        made, by id: the copies, the linked volumes and their catalogue records.
        """
        hv = self._hv
        linkable = Capability.VOLUME_LINKED in hv.capabilities and not hv.backend.create_copies_volumes
        if any(d.linked for d in spec.disks) and not linkable:
            raise Unsupported(
                hv.kind,
                "images.linked",
                "no copy-on-write volumes over an image's here (volume.linked); "
                "DiskSpec(image=..., linked=False) makes a full copy",
            )
        if not wait:
            return Task.in_thread("vms.create", spec.name, lambda: self.create_vm(spec, timeout=timeout))
        images = [self.get(d.image) if d.image is not None else None for d in spec.disks]
        volumes = [self._volume_of(i) if i is not None else None for i in images]
        if hv.backend.create_copies_volumes:  # the backend copies DiskSpec(volume=...) itself
            disks = [_attach(d, v) if v is not None else d for d, v in zip(spec.disks, volumes, strict=True)]
            return hv.vms.create(attrs.evolve(spec, disks=disks), timeout=timeout, progress=progress)
        pools = hv.pools.list()
        pairs = zip(spec.disks, volumes, strict=True)
        targets = [find(pools, d.pool or v.pool, "storage pool") if v else None for d, v in pairs]
        for disk, target in zip(spec.disks, targets, strict=True):
            if target is not None and not disk.linked:
                pick_format(target, disk.format)  # a pool or format it cannot be: refused before anything is made
        if any(v.name == spec.name for v in hv.vms.list()):
            raise AlreadyExists(f"a VM named {spec.name!r} exists already on {hv.kind}")
        with Rollback() as undo, tempfile.TemporaryDirectory(prefix="hvkit-image-clone-") as tmp:
            disks = []
            for index, (disk, image, volume, pool) in enumerate(zip(spec.disks, images, volumes, targets, strict=True)):
                if image is None or volume is None or pool is None:
                    disks.append(disk)
                    continue
                name = disk.name or f"{spec.name}-disk{index}"
                if disk.linked:
                    copy = _linked.create_linked(hv, pool, name, volume)
                    undo.push(functools.partial(self._delete_volume, copy), f"delete linked volume {copy.id}")
                    self.catalog.link(image.name, image.volume, copy.id)
                    undo.push(
                        functools.partial(self.catalog.unlink, image.name, image.volume, [copy.id]),
                        f"forget linked volume {copy.id} of image {image.name!r}",
                    )
                else:
                    copy = self._clone_volume(volume, pool, name, pick_format(pool, disk.format), tmp)
                    undo.push(functools.partial(self._delete_volume, copy), f"delete volume {copy.id}")
                disks.append(_attach(disk, copy))
            return hv.vms.create(attrs.evolve(spec, disks=disks), timeout=timeout, progress=progress)

    def _clone_volume(self, volume: Volume, pool: Any, name: str, fmt: DiskFormat, tmp: str) -> Volume:
        hv = self._hv
        with hv.translating("images.clone"):
            exported = hv.backend.export_disk(volume, tmp, _noop, None)
        try:
            return self._import(pool, name, exported, fmt, tmp, _noop)
        finally:
            if exported.temporary:
                Path(exported.path).unlink(missing_ok=True)


def _attach(disk: DiskSpec, volume: Volume) -> DiskSpec:
    return attrs.evolve(disk, image=None, linked=False, volume=volume.id)


def _algorithm_of(value: str) -> str:
    from ..migration._verify import algorithm_of

    return algorithm_of(value)


def _local_image(path: Path) -> DiskImage:
    """The fetched disk as a DiskImage; refuses images that reach outside themselves (backing or data files)."""
    try:
        info = image_info(path)
    except Exception as exc:
        raise ImageError(f"{path.name}: qemu-img cannot read it as a disk image: {exc}") from None
    if info.get("backing-filename") or (info.get("format-specific", {}).get("data", {}) or {}).get("data-file"):
        raise ImageError(f"{path.name}: refusing an image that names a backing or data file outside itself")
    try:
        fmt = DiskFormat(str(info["format"]))
    except ValueError:
        raise ImageError(f"{path.name}: disk format {info.get('format')!r} is not one hvkit imports") from None
    return DiskImage(os.fspath(path), fmt, int(info["virtual-size"]))
