"""Helpers the managers share: finding objects by value, id or name; pools and formats; streams."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import InvalidSpec, NotFound
from .models import DiskFormat, StoragePool

__all__ = ["default_pool", "find", "noop", "open_stream", "pick_format", "ref_text", "to_format"]


def ref_text(ref: object, model: type, what: str) -> str:
    if isinstance(ref, model):
        return str(ref.id)  # type: ignore[attr-defined]
    if isinstance(ref, str) and ref:
        return ref
    raise InvalidSpec(f"expected a {what} or its id or name, got {ref!r}")


def find(items: list[Any], ref: object, what: str) -> Any:
    """Find by model value, id, then name; NotFound lists what exists."""
    text = ref if isinstance(ref, str) else getattr(ref, "id", None)
    if not isinstance(text, str) or not text:
        raise InvalidSpec(f"expected a {what} or its id or name, got {ref!r}")
    for item in items:
        if item.id == text:
            return item
    for item in items:
        if item.name == text:
            return item
    names = ", ".join(sorted(i.name for i in items)[:20]) or "none"
    raise NotFound(f"no {what} {text!r} (there are: {names})")


def default_pool(pools: list[StoragePool]) -> StoragePool:
    for pool in pools:
        if pool.name == "default":
            return pool
    active = [p for p in pools if p.active]
    if not active:
        raise InvalidSpec("the disk names no pool and the hypervisor has no active storage pool")
    return max(active, key=lambda p: p.free_bytes)


def to_format(value: DiskFormat | str | None) -> DiskFormat | None:
    if value is None or isinstance(value, DiskFormat):
        return value
    try:
        return DiskFormat(value)
    except ValueError:
        raise InvalidSpec(f"unknown disk format {value!r} (one of: {', '.join(f.value for f in DiskFormat)})") from None


def pick_format(pool: StoragePool, wanted: DiskFormat | None) -> DiskFormat:
    if not pool.formats:
        return wanted or DiskFormat.RAW
    if wanted is None:
        return DiskFormat.QCOW2 if DiskFormat.QCOW2 in pool.formats else sorted(pool.formats, key=lambda f: f.value)[0]
    if wanted not in pool.formats:
        ok = ", ".join(sorted(f.value for f in pool.formats))
        raise InvalidSpec(f"pool {pool.name!r} does not take {wanted.value} disks (it takes: {ok})")
    return wanted


def noop(done: int, total: int) -> None:
    return None


@contextlib.contextmanager
def open_stream(target: str | os.PathLike[str] | IO[bytes], mode: str) -> Iterator[tuple[IO[bytes], int | None]]:
    if isinstance(target, str | os.PathLike):
        path = Path(target)
        if mode == "rb" and not path.is_file():
            raise InvalidSpec(f"{path} is not a file")
        with open(path, mode) as stream:  # noqa: PTH123
            yield stream, (path.stat().st_size if mode == "rb" else None)
        return
    size = None
    if mode == "rb" and target.seekable():
        here = target.tell()
        size = target.seek(0, os.SEEK_END) - here
        target.seek(here)
    yield target, size
