"""Undo partial work when a multi-step operation fails midway."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType

__all__ = ["Rollback"]

log = logging.getLogger("hvkit")


class Rollback:
    """Collect undo steps; on an exception run them newest first, then let the exception go on.

    >>> with Rollback() as undo:
    ...     vol = create_volume(); undo.push(lambda: delete_volume(vol), f"delete volume {vol}")
    ...     define_vm(vol)
    """

    def __init__(self) -> None:
        self._steps: list[tuple[Callable[[], object], str]] = []

    def push(self, step: Callable[[], object], what: str = "") -> None:
        self._steps.append((step, what))

    def __enter__(self) -> Rollback:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None:
            self._steps.clear()
            return
        while self._steps:
            step, what = self._steps.pop()
            try:
                step()
            except Exception as err:  # keep undoing; the first error is the one that matters
                log.error("rollback step %r failed: %s", what, err)
