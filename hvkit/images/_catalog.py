"""The image catalogue: one JSON file on this machine recording each imported image and its checksums.

Why a file here rather than metadata on the hypervisor: not every backend can attach metadata to a
volume (Proxmox import volumes, plain libvirt volumes), while every backend that holds images has a
volume id that stays stable. The file is keyed by the hypervisor's URL (without secrets), so one file
serves many hypervisors; share it (``HVKIT_IMAGE_CATALOG`` or ``catalog=``) to share the catalogue.
Writes take a lock and replace the file atomically.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs

from ..errors import AlreadyExists, InvalidState, NotFound
from ..models import DiskFormat

__all__ = ["Catalog", "Image", "default_catalog_path"]

VERSION = 1


@attrs.frozen
class Image:
    """An imported image: where it is kept and the checksums it was accepted with."""

    name: str
    hypervisor: str  # the hypervisor's URL, without secrets
    volume: str  # the id of the volume holding the image (a template's disk, or a base volume)
    pool: str
    format: DiskFormat
    size_bytes: int  # guest-visible bytes
    source: str  # the file or URL it came from (URL without user info or query)
    digest: str  # "sha256:<hex>" / "sha512:<hex>" of the bytes fetched (the file the publisher hashed)
    content_checksum: str  # the migration engine's format-independent checksum of the guest-visible content
    signed_by: str | None = None  # fingerprint of the key that signed the checksum file, when one did
    imported_at: str = ""  # ISO 8601, UTC
    # ids of the linked (copy-on-write) volumes made over this image's volume: a delete is refused while any exists
    linked: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["format"] = self.format.value
        data["linked"] = list(self.linked)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Image:
        fields = {f.name for f in attrs.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["format"] = DiskFormat(values["format"])
        return cls(**values)


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def default_catalog_path() -> Path:
    """``$HVKIT_IMAGE_CATALOG``, else ``$XDG_DATA_HOME/hvkit/images.json`` (``~/.local/share`` by default)."""
    chosen = os.environ.get("HVKIT_IMAGE_CATALOG")
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "hvkit" / "images.json"


class Catalog:
    """The records of one catalogue file, for one hypervisor (``key``: its URL without secrets)."""

    def __init__(self, path: str | os.PathLike[str], key: str) -> None:
        self.path = Path(path)
        self.key = key

    def list(self) -> list[Image]:
        entries = self._read().get("hypervisors", {}).get(self.key, {})
        return [Image.from_json(v) for _, v in sorted(entries.items())]

    def get(self, name: str) -> Image:
        for image in self.list():
            if image.name == name:
                return image
        raise NotFound(f"no image {name!r} in the catalogue of {self.key} ({self.path})")

    def add(self, image: Image) -> None:
        with self._locked() as data:
            entries = data.setdefault("hypervisors", {}).setdefault(self.key, {})
            if image.name in entries:
                raise AlreadyExists(f"image {image.name!r} is in the catalogue of {self.key} already")
            entries[image.name] = image.to_json()

    def link(self, name: str, volume: str, user: str) -> None:
        """Record volume ``user`` as a linked volume over image ``name`` (still the one on ``volume``)."""
        with self._locked() as data:
            entry = data.get("hypervisors", {}).get(self.key, {}).get(name)
            if entry is None or entry.get("volume") != volume:
                raise NotFound(f"image {name!r} on volume {volume} is gone from the catalogue of {self.key}")
            if entry.get("deleting"):
                raise InvalidState(f"image {name!r} is being deleted; no linked disks over it")
            if user not in entry.setdefault("linked", []):
                entry["linked"].append(user)

    def deleting(self, name: str, volume: str, on: bool) -> None:
        """Mark image ``name`` (on ``volume``) as being deleted, or no more: while marked, :meth:`link` refuses."""
        with self._locked() as data:
            entry = data.get("hypervisors", {}).get(self.key, {}).get(name)
            if entry is not None and entry.get("volume") == volume:
                if on:
                    entry["deleting"] = True
                else:
                    entry.pop("deleting", None)

    def unlink(self, name: str, volume: str, users: Iterable[str]) -> None:
        """Forget the linked volumes ``users`` of image ``name`` (when it is still the one on ``volume``)."""
        gone = set(users)
        with self._locked() as data:
            entry = data.get("hypervisors", {}).get(self.key, {}).get(name)
            if entry is not None and entry.get("volume") == volume:
                entry["linked"] = [u for u in entry.get("linked", []) if u not in gone]

    def remove(self, name: str, volume: str) -> None:
        """Forget image ``name`` if it is still the one on ``volume`` (by identity, never by name alone)."""
        with self._locked() as data:
            entries = data.get("hypervisors", {}).get(self.key, {})
            if entries.get(name, {}).get("volume") == volume:
                del entries[name]

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {"version": VERSION, "hypervisors": {}}
        data: dict[str, Any] = json.loads(text) if text.strip() else {"version": VERSION, "hypervisors": {}}
        return data

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read()
            yield data
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".images-", suffix=".json")
            try:
                with os.fdopen(fd, "w") as out:
                    json.dump(data, out, indent=1, sort_keys=True)
                    out.write("\n")
                Path(tmp).replace(self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
