"""Tasks: long operations with progress, and the one waiting helper every backend uses."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from .errors import BackendError, HvkitError, Timeout, Unsupported
from .models.enums import TaskState

__all__ = ["RetryHook", "Task", "TaskControl", "TaskInfo", "TaskSource", "ThreadSource", "wait_for"]

log = logging.getLogger("hvkit")

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
        cls,
        operation: str,
        target: str,
        fn: Callable[[], Any],
        finish: Callable[[Any], Any] | None = None,
        *,
        retry: RetryHook | None = None,
    ) -> Task:
        """Run ``fn`` in a thread (a :class:`ThreadSource`) and follow it as a task.

        When ``fn`` returns a Task (the vendor's own), this task forwards its progress and ``cancel()``
        to it; ``finish(result)`` (default: wait for a Task result) gives the final result. ``retry``:
        see :class:`ThreadSource`.
        """
        source = ThreadSource(operation, lambda control: fn(), finish=finish, retry=retry, observes_cancel=False)
        return cls(id=f"thread-{id(source):x}", operation=operation, target=target, source=source)

    @classmethod
    def of(cls, source: ThreadSource, target: str) -> Task:
        """A Task following ``source`` (its operation names the task)."""
        return cls(id=f"thread-{id(source):x}", operation=source.what, target=target, source=source)


def _wait_result(result: Any) -> Any:
    return result.wait() if isinstance(result, Task) else result


# (exception, attempt number from 1) -> seconds to wait before the next attempt, or None to give up;
# it may also raise an error of its own (e.g. a Conflict after the last attempt)
RetryHook = Callable[[Exception, int], float | None]


class TaskControl:
    """What the work of a :class:`ThreadSource` uses to report progress, see a cancel and follow vendor tasks."""

    def __init__(self, source: ThreadSource) -> None:
        self._source = source

    @property
    def cancelled(self) -> bool:
        return self._source._cancelled.is_set()

    def check(self) -> None:
        """Raise the cancellation (an HvkitError) once the task was asked to cancel."""
        if self.cancelled:
            raise HvkitError(f"{self._source.what} was cancelled")

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less when a cancel comes (then raise it)."""
        self._source._cancelled.wait(seconds)
        self.check()

    def progress(self, percent: int, message: str = "") -> None:
        self._source._set(TaskInfo(TaskState.RUNNING, max(0, min(99, percent)), message))

    def last_step(self) -> None:
        """From here on the work cannot be stopped: ``cancel()`` answers Unsupported (raises a cancel that
        came first)."""
        with self._source._lock:
            self.check()
            self._source._final = True

    def follow(self, source: TaskSource | Task) -> Any:
        """Wait for a vendor task (its progress is this task's, a cancel goes to it); its result or its error.

        When the whole operation fails, the ThreadSource's ``undo`` runs for every task followed.
        """
        inner = source._source if isinstance(source, Task) else source
        src = self._source
        with src._lock:
            src._inner = inner
            src._followed.append(inner)
        if self.cancelled:
            with contextlib.suppress(HvkitError):
                inner.cancel()
        info = wait_for(
            inner.poll,
            timeout=None,
            what=src.what,
            wait_change=getattr(inner, "wait_change", None),
            on_progress=lambda now: self.progress(now.progress, now.message),  # poll() reads no vendor task again
        )
        if info.state is TaskState.SUCCESS:
            return info.result
        raise info.error or HvkitError(f"{src.what} ended {info.state.value}: {info.message}")


class ThreadSource:
    """The one thread-backed task source: runs ``work(control)`` in a thread and reports it as a task.

    * ``work`` reports progress and follows vendor tasks through its :class:`TaskControl`; a Task it
      returns is followed until ``finish(result)`` (default: that Task's result) is done.
    * ``retry(exc, attempt)``: after a failed attempt, the seconds to wait before the next one, or None
      to give up (e.g. retry a vendor's lock errors with back-off); a cancel stops the retrying.
    * ``undo(source)`` runs, when the whole operation fails or is cancelled, for every vendor task the
      work followed (to remove what that task made, known by its vendor id).
    * ``cancel()``: with ``observes_cancel`` the work sees ``control.cancelled`` / ``control.check()``;
      a followed vendor task is cancelled too. Without it, the cancel goes to the followed task only
      (Unsupported when there is none). After ``control.last_step()`` a cancel answers Unsupported.
    """

    def __init__(
        self,
        what: str,
        work: Callable[[TaskControl], Any],
        *,
        retry: RetryHook | None = None,
        finish: Callable[[Any], Any] | None = None,
        undo: Callable[[Any], None] | None = None,
        observes_cancel: bool = True,
        kind: str = "core",
        start: bool = True,
    ) -> None:
        self.what = what
        self._work = work
        self._retry = retry
        self._finish = finish or _wait_result
        self._undo = undo
        self._observes_cancel = observes_cancel
        self._kind = kind
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._info = TaskInfo(TaskState.RUNNING)
        self._inner: TaskSource | None = None  # the vendor task being followed (a cancel goes to it)
        self._watched: TaskSource | None = None  # a Task the work returned: poll() reads its progress
        self._followed: list[TaskSource] = []
        self._cancelled = threading.Event()
        self._final = False
        self._done = threading.Event()
        if start:
            self.start()

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name=f"hvkit-{self.what}").start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the work has ended (succeeded, failed or cancelled); False if ``timeout`` passed first."""
        return self._done.wait(timeout)

    def _set(self, info: TaskInfo) -> None:
        with self._lock:
            self._info = info
            self._changed.notify_all()

    def _attempts(self, control: TaskControl) -> Any:
        attempt = 1
        while True:
            if self._observes_cancel:
                control.check()
            try:
                return self._work(control)
            except Exception as exc:
                delay = None if self._retry is None or self._cancelled.is_set() else self._retry(exc, attempt)
                if delay is None:
                    raise
            if self._cancelled.wait(delay):
                control.check()
            attempt += 1

    def _run(self) -> None:
        control = TaskControl(self)
        try:
            try:
                result = self._attempts(control)
                if isinstance(result, Task):
                    with self._lock:
                        self._inner = self._watched = result._source
                result = self._finish(result)
            except Exception:
                for source in self._followed if self._undo is not None else []:
                    try:
                        self._undo(source)  # type: ignore[misc]
                    except Exception as undo_error:  # keep the operation's own error
                        log.error("%s: could not undo %r: %s", self.what, source, undo_error)
                raise
            info = TaskInfo(TaskState.SUCCESS, 100, result=result)
        except HvkitError as exc:
            inner = self._inner
            cancelled = self._cancelled.is_set() or (
                inner is not None and not self._observes_cancel and inner.poll().state is TaskState.CANCELLED
            )
            info = TaskInfo(TaskState.CANCELLED if cancelled else TaskState.ERROR, self._info.progress, str(exc),
                            error=exc)  # fmt: skip
        except Exception as exc:  # a bug or untranslated error: keep it visible
            err = BackendError(f"{self.what} failed: {type(exc).__name__}: {exc}")
            err.__cause__ = exc
            info = TaskInfo(TaskState.ERROR, self._info.progress, str(err), error=err)
        self._set(info)
        self._done.set()

    def poll(self) -> TaskInfo:
        with self._lock:
            info, inner = self._info, self._watched
        if not info.state.done and inner is not None:
            now = inner.poll()
            return TaskInfo(TaskState.RUNNING, min(now.progress, 99), now.message)
        return info

    def wait_change(self, seconds: float) -> TaskInfo:
        with self._lock:
            before = self._info
            limit = min(seconds, 0.2) if self._watched is not None else seconds
            self._changed.wait_for(lambda: self._info is not before, timeout=limit)
        return self.poll()

    def cancel(self) -> None:
        with self._lock:
            if self._done.is_set() or self._final:
                raise Unsupported(self._kind, f"cancel {self.what}", "the task is finishing or done")
            if self._observes_cancel:  # decided under the lock that last_step() takes: never both
                self._cancelled.set()
                self._changed.notify_all()
            inner = self._inner
        if self._observes_cancel:
            if inner is not None:
                with contextlib.suppress(HvkitError):  # it may have just ended; the work then sees the flag
                    inner.cancel()
            return
        deadline = time.monotonic() + 5.0
        while self._inner is None and not self._done.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)  # the vendor call is being submitted
        if self._inner is None:
            raise Unsupported(self._kind, f"cancel {self.what}", "the operation runs synchronously or has finished")
        self._inner.cancel()


@attrs.frozen
class DoneSource:
    """A task that finished already (for vendors whose call returns when the work is done)."""

    result: Any = None

    def poll(self) -> TaskInfo:
        return TaskInfo(TaskState.SUCCESS, 100, result=self.result)

    def cancel(self) -> None:
        raise Unsupported("core", "cancel", "the task has finished")
