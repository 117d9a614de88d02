"""Helpers the managers share: finding objects by value, id or name; pools and formats; streams."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from .errors import InvalidSpec, NotFound
from .models import DiskFormat, StoragePool
from .models.enums import to_enum

__all__ = ["default_pool", "find", "lookup", "noop", "open_stream", "pick_format", "ref_text", "to_format"]

T = TypeVar("T")


def ref_text(ref: object, model: type, what: str) -> str:
    if isinstance(ref, model):
        return str(ref.id)  # type: ignore[attr-defined]
    if isinstance(ref, str) and ref:
        return ref
    raise InvalidSpec(f"expected a {what} or its id or name, got {ref!r}")


def lookup(items: Iterable[T], ref: str) -> T | None:
    """The item whose id is ``ref``, else the first whose name is ``ref``, else None.

    The one rule for "an id or a name" (managers, migration and fleet all use it): an id wins over a
    name, so a VM named like another's id is never picked by mistake.
    """
    items = list(items)
    for item in items:
        if item.id == ref:  # type: ignore[attr-defined]
            return item
    for item in items:
        if item.name == ref:  # type: ignore[attr-defined]
            return item
    return None


def find(items: list[Any], ref: object, what: str) -> Any:
    """Find by model value, id, then name (:func:`lookup`); NotFound lists what exists."""
    text = ref if isinstance(ref, str) else getattr(ref, "id", None)
    if not isinstance(text, str) or not text:
        raise InvalidSpec(f"expected a {what} or its id or name, got {ref!r}")
    found = lookup(items, text)
    if found is not None:
        return found
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
    return None if value is None else to_enum(DiskFormat, value, "disk format")


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
