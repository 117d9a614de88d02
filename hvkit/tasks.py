"""Tasks: long operations with progress, and the one waiting helper every backend uses."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from .errors import HvkitError, Timeout, Unsupported
from .models.enums import TaskState

__all__ = ["Task", "TaskInfo", "TaskSource", "wait_for"]

ProgressCallback = Callable[["TaskInfo"], None]


@attrs.frozen
class TaskInfo:
    """A task's state read at one moment."""

    state: TaskState
    progress: int = 0  # 0..100
    message: str = ""
    error: HvkitError | None = attrs.field(default=None, eq=False)
    result: Any = attrs.field(default=None, eq=False)


class TaskSource(Protocol):
    """What a backend gives the core to follow one of its tasks."""

    def poll(self) -> TaskInfo: ...

    def cancel(self) -> None: ...


def wait_for(
    read: Callable[[], TaskInfo],
    *,
    timeout: float | None,
    what: str,
    interval: float = 0.05,
    max_interval: float = 2.0,
    on_progress: ProgressCallback | None = None,
    wait_change: Callable[[float], TaskInfo] | None = None,
) -> TaskInfo:
    """Read ``read()`` until the task is done; back off exponentially between reads.

    ``wait_change(seconds)``, where a vendor offers it (a blocking wait for the next change), replaces
    sleeping. Raises :class:`Timeout` naming ``what`` when ``timeout`` passes.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    info = read()
    last: tuple[TaskState, int] | None = None
    while True:
        if on_progress is not None and (info.state, info.progress) != last:
            last = (info.state, info.progress)
            on_progress(info)
        if info.state.done:
            return info
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise Timeout(f"{what} did not finish within {timeout:g} s (at {info.progress}%)")
        step = interval if remaining is None else min(interval, remaining)
        if wait_change is not None:
            info = wait_change(max(step, max_interval if remaining is None else min(max_interval, remaining)))
            continue
        time.sleep(step)
        interval = min(interval * 1.5, max_interval)
        info = read()


@attrs.frozen(eq=False)
class Task:
    """A long operation on a hypervisor. ``wait()`` returns its result or raises its error."""

    id: str
    operation: str  # e.g. "vm.start"
    target: str  # the id or name of what it works on
    _source: TaskSource = attrs.field(repr=False, alias="source")

    def info(self) -> TaskInfo:
        """Read the task's state now."""
        return self._source.poll()

    @property
    def state(self) -> TaskState:
        return self.info().state

    @property
    def progress(self) -> int:
        return self.info().progress

    @property
    def done(self) -> bool:
        return self.info().state.done

    def wait(self, timeout: float | None = None, on_progress: ProgressCallback | None = None) -> Any:
        """Block until done; return the result, or raise the task's hvkit error."""
        info = wait_for(
            self._source.poll,
            timeout=timeout,
            what=f"task {self.operation} on {self.target}",
            on_progress=on_progress,
            wait_change=getattr(self._source, "wait_change", None),
        )
        if info.state is TaskState.SUCCESS:
            return info.result
        if info.error is not None:
            raise info.error
        raise HvkitError(f"task {self.operation} on {self.target} ended {info.state.value}: {info.message}")

    def cancel(self) -> None:
        """Ask the hypervisor to cancel; raises Unsupported where the vendor cannot."""
        self._source.cancel()

    @classmethod
    def in_thread(
        cls, operation: str, target: str, fn: Callable[[], Any], finish: Callable[[Any], Any] | None = None
    ) -> Task:
        """Run ``fn`` in a thread and follow it as a task.

        When ``fn`` returns a Task (the vendor's own), this task forwards its progress and ``cancel()``
        to it; ``finish(result)`` (default: wait for a Task result) gives the final result.
        """
        source = _ThreadSource(operation, fn, finish)
        return cls(id=f"thread-{id(source):x}", operation=operation, target=target, source=source)


def _wait_result(result: Any) -> Any:
    return result.wait() if isinstance(result, Task) else result


class _ThreadSource:
    def __init__(self, operation: str, fn: Callable[[], Any], finish: Callable[[Any], Any] | None) -> None:
        self._operation = operation
        self._lock = threading.Lock()
        self._info = TaskInfo(TaskState.RUNNING)
        self._inner: Task | None = None
        self._done = threading.Event()
        self._finish = finish or _wait_result
        threading.Thread(target=self._run, args=(fn,), daemon=True, name=f"hvkit-{operation}").start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            result = fn()
            if isinstance(result, Task):
                with self._lock:
                    self._inner = result
            info = TaskInfo(TaskState.SUCCESS, 100, result=self._finish(result))
        except HvkitError as exc:
            state = (
                TaskState.CANCELLED
                if self._inner is not None and self._inner.state is TaskState.CANCELLED
                else TaskState.ERROR
            )
            info = TaskInfo(state, message=str(exc), error=exc)
        except Exception as exc:  # a bug or untranslated error: keep it visible
            err = HvkitError(f"{self._operation} failed: {type(exc).__name__}: {exc}")
            err.__cause__ = exc
            info = TaskInfo(TaskState.ERROR, message=str(err), error=err)
        with self._lock:
            self._info = info
        self._done.set()

    def poll(self) -> TaskInfo:
        with self._lock:
            info, inner = self._info, self._inner
        if not info.state.done and inner is not None:
            now = inner.info()
            return TaskInfo(TaskState.RUNNING, min(now.progress, 99), now.message)
        return info

    def wait_change(self, seconds: float) -> TaskInfo:
        self._done.wait(min(seconds, 0.2) if self._inner is not None else seconds)
        return self.poll()

    def cancel(self) -> None:
        deadline = time.monotonic() + 5.0
        while self._inner is None and not self._done.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)  # the vendor call is being submitted
        if self._inner is not None:
            self._inner.cancel()
            return
        raise Unsupported("core", f"cancel {self._operation}", "the operation runs synchronously or has finished")


@attrs.frozen
class DoneSource:
    """A task that finished already (for vendors whose call returns when the work is done)."""

    result: Any = None

    def poll(self) -> TaskInfo:
        return TaskInfo(TaskState.SUCCESS, 100, result=self.result)

    def cancel(self) -> None:
        raise Unsupported("core", "cancel", "the task has finished")
