"""Fault injection for the sim backend: failing calls, slow tasks, dropped connections."""

from __future__ import annotations

import threading

from ...errors import BackendError, ConnectionError, HvkitError

__all__ = ["Faults"]


class Faults:
    """Arm faults on a sim world; every sim backend connected to it sees them.

    >>> hv.backend.faults.fail("start_vm", times=2)            # the next two starts fail
    >>> hv.backend.faults.fail("create_vm", stage="define")    # fail after the disks exist
    >>> hv.backend.faults.slow("clone_vm", seconds=2.0)        # clone tasks take 2 s
    >>> hv.backend.faults.drop_connection(times=1)             # the next call loses the connection
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fail: dict[tuple[str, str | None], list[HvkitError]] = {}
        self._slow: dict[str, float] = {}
        self._drops = 0

    def fail(
        self, operation: str, *, times: int = 1, error: HvkitError | None = None, stage: str | None = None
    ) -> None:
        err = error or BackendError(f"injected failure in {operation}" + (f" at {stage}" if stage else ""))
        with self._lock:
            self._fail.setdefault((operation, stage), []).extend([err] * times)

    def slow(self, operation: str, seconds: float) -> None:
        with self._lock:
            self._slow[operation] = seconds

    def drop_connection(self, times: int = 1) -> None:
        with self._lock:
            self._drops += times

    def clear(self) -> None:
        with self._lock:
            self._fail.clear()
            self._slow.clear()
            self._drops = 0

    def check(self, operation: str, stage: str | None = None) -> None:
        """Raise the armed fault for ``operation`` (at ``stage``), if any."""
        with self._lock:
            if stage is None and self._drops:
                self._drops -= 1
                raise ConnectionError("connection to the simulated hypervisor was lost (injected)")
            errors = self._fail.get((operation, stage))
            if errors:
                raise errors.pop(0)

    def duration(self, operation: str, default: float) -> float:
        with self._lock:
            return self._slow.get(operation, default)
