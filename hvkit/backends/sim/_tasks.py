"""Sim tasks: run an operation's effect after a delay, reporting progress, cancellable until then."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from ...errors import BackendError, HvkitError, Unsupported
from ...models.enums import TaskState
from ...tasks import Task, TaskInfo

__all__ = ["start_task"]

_ids = itertools.count(1)


class _SimTaskSource:
    def __init__(self, operation: str, duration: float, effect: Callable[[], Any]) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._info = TaskInfo(TaskState.RUNNING, 0)
        self._cancelled = False
        self._duration = duration
        self._operation = operation
        threading.Thread(target=self._run, args=(effect,), daemon=True, name=f"sim-{operation}").start()

    def _run(self, effect: Callable[[], Any]) -> None:
        start = time.monotonic()
        steps = 10
        for i in range(1, steps):
            time.sleep(self._duration / steps)
            with self._lock:
                if self._cancelled:
                    self._info = TaskInfo(TaskState.CANCELLED, self._info.progress, "cancelled")
                    self._changed.notify_all()
                    return
                self._info = TaskInfo(TaskState.RUNNING, i * 100 // steps)
                self._changed.notify_all()
        time.sleep(max(0.0, self._duration - (time.monotonic() - start)))
        with self._lock:
            if self._cancelled:
                self._info = TaskInfo(TaskState.CANCELLED, self._info.progress, "cancelled")
                self._changed.notify_all()
                return
            self._info = TaskInfo(TaskState.RUNNING, 99)
        try:
            result = effect()
            info = TaskInfo(TaskState.SUCCESS, 100, result=result)
        except HvkitError as exc:
            info = TaskInfo(TaskState.ERROR, self._info.progress, str(exc), error=exc)
        except Exception as exc:  # a bug: report it as the task's error rather than hang
            err = BackendError(f"{self._operation} failed: {type(exc).__name__}: {exc}")
            err.__cause__ = exc
            info = TaskInfo(TaskState.ERROR, self._info.progress, str(err), error=err)
        with self._lock:
            self._info = info
            self._changed.notify_all()

    def poll(self) -> TaskInfo:
        with self._lock:
            return self._info

    def wait_change(self, seconds: float) -> TaskInfo:
        with self._lock:
            before = self._info
            self._changed.wait_for(lambda: self._info is not before, timeout=seconds)
            return self._info

    def cancel(self) -> None:
        with self._lock:
            if self._info.state.done or self._info.progress >= 99:
                raise Unsupported("sim", f"cancel {self._operation}", "the task is finishing or done")
            self._cancelled = True


def start_task(operation: str, target: str, duration: float, effect: Callable[[], Any]) -> Task:
    """A task that applies ``effect`` (atomically, at the end) after ``duration`` seconds."""
    return Task(
        id=f"sim-task-{next(_ids)}",
        operation=operation,
        target=target,
        source=_SimTaskSource(operation, duration, effect),
    )
