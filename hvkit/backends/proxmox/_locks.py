"""Retry Proxmox lock errors with backoff, and serialize work per VM or template in this process."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ...errors import AlreadyExists, Conflict
from ._errors import is_lock_error

__all__ = ["KeyedLocks", "retry_locked"]

log = logging.getLogger("hvkit.proxmox")
T = TypeVar("T")


class KeyedLocks:
    """One lock per key (a VMID), created on demand."""

    def __init__(self) -> None:
        self._mu = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def get(self, key: str) -> threading.Lock:
        with self._mu:
            return self._locks.setdefault(key, threading.Lock())


def retry_locked(
    fn: Callable[[], T],
    what: str,
    *,
    attempts: int = 8,
    base: float = 0.2,
    cap: float = 3.0,
    retry_exists: bool = False,
) -> T:
    """Call ``fn``; on a lock error (or, with ``retry_exists``, a VMID taken meanwhile) back off and retry.

    After ``attempts`` the last error is raised as :class:`Conflict`.
    """
    delay = base
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except (Conflict, AlreadyExists) as exc:
            retryable = is_lock_error(exc) or (retry_exists and isinstance(exc, AlreadyExists))
            if not retryable:
                raise
            if attempt == attempts:
                raise Conflict(f"{what}: still failing after {attempts} attempts: {exc}") from exc
            pause = random.uniform(delay / 2, delay)
            log.info("%s: %s; retrying in %.2f s (attempt %d/%d)", what, exc, pause, attempt, attempts)
            time.sleep(pause)
            delay = min(delay * 2, cap)
    raise AssertionError("unreachable")
