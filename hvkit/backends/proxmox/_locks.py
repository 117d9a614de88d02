"""Retry Proxmox lock errors with backoff, and serialize work per VM or template in this process."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ...driver import RetryHook
from ...errors import AlreadyExists, Conflict
from ._errors import is_lock_error

__all__ = ["KeyedLocks", "lock_retry", "retry_locked"]

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


def lock_retry(
    what: str, *, attempts: int = 8, base: float = 0.2, cap: float = 3.0, retry_exists: bool = False
) -> RetryHook:
    """The retry hook (``ThreadSource(retry=...)``) for Proxmox: after a lock error (or, with ``retry_exists``, a
    VMID taken meanwhile) wait with jittered exponential back-off and try again; other errors end it.

    After ``attempts`` the last error is raised as :class:`Conflict`.
    """

    def hook(exc: Exception, attempt: int) -> float | None:
        if not isinstance(exc, Conflict | AlreadyExists):
            return None
        if not (is_lock_error(exc) or (retry_exists and isinstance(exc, AlreadyExists))):
            return None
        if attempt >= attempts:
            raise Conflict(f"{what}: still failing after {attempts} attempts: {exc}") from exc
        delay = min(base * 2 ** (attempt - 1), cap)
        pause = random.uniform(delay / 2, delay)
        log.info("%s: %s; retrying in %.2f s (attempt %d/%d)", what, exc, pause, attempt, attempts)
        return pause

    return hook


def retry_locked(
    fn: Callable[[], T],
    what: str,
    *,
    attempts: int = 8,
    base: float = 0.2,
    cap: float = 3.0,
    retry_exists: bool = False,
) -> T:
    """Call ``fn`` here and now, retrying as :func:`lock_retry` says."""
    hook = lock_retry(what, attempts=attempts, base=base, cap=cap, retry_exists=retry_exists)
    attempt = 1
    while True:
        try:
            return fn()
        except Exception as exc:
            pause = hook(exc, attempt)
            if pause is None:
                raise
        time.sleep(pause)
        attempt += 1
