"""The kit's one thread-backed task source: retries through a hook, follows vendor tasks, cancels, undoes."""

from __future__ import annotations

import threading
import time

import pytest

from hvkit.driver import DoneSource, Task, TaskControl, TaskInfo, ThreadSource, wait_for
from hvkit.errors import Conflict, HvkitError, Unsupported
from hvkit.models import TaskState


def _task(source: ThreadSource) -> Task:
    return Task(id="t", operation=source.what, target="x", source=source)


def test_retry_hook_decides_each_attempt() -> None:
    attempts: list[int] = []

    def work(control: TaskControl) -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) < 3:
            raise Conflict("locked")
        return "made"

    hook_calls: list[tuple[str, int]] = []

    def retry(exc: Exception, attempt: int) -> float | None:
        hook_calls.append((str(exc), attempt))
        return 0.01 if isinstance(exc, Conflict) else None

    assert _task(ThreadSource("op", work, retry=retry)).wait(5) == "made"
    assert attempts == [1, 2, 3] and hook_calls == [("locked", 1), ("locked", 2)]
    # a hook that gives up (None) lets the error through; one that raises replaces it
    with pytest.raises(Conflict, match="locked"):
        _task(ThreadSource("op", lambda c: (_ for _ in ()).throw(Conflict("locked")), retry=lambda e, n: None)).wait(5)

    def give_up(exc: Exception, attempt: int) -> float | None:
        raise HvkitError(f"still failing after {attempt}")

    with pytest.raises(HvkitError, match="still failing after 1"):
        _task(ThreadSource("op", lambda c: (_ for _ in ()).throw(Conflict("x")), retry=give_up)).wait(5)


def test_follows_vendor_tasks_and_undoes_them_when_the_operation_fails() -> None:
    undone: list[object] = []
    first, second = DoneSource("a"), DoneSource("b")

    def work(control: TaskControl) -> None:
        assert control.follow(first) == "a"
        control.follow(second)
        raise HvkitError("a later step failed")

    task = _task(ThreadSource("op", work, undo=undone.append))
    with pytest.raises(HvkitError, match="later step"):
        task.wait(5)
    assert undone == [first, second]


def test_cancel_stops_the_work_and_retrying_and_last_step_refuses_it() -> None:
    started = threading.Event()

    def slow(control: TaskControl) -> str:
        started.set()
        for i in range(100):
            control.sleep(0.05)
            control.progress(i)
        return "done"

    task = _task(ThreadSource("slow", slow, kind="test"))
    started.wait(5)
    task.cancel()
    info = wait_for(task.info, timeout=5, what="cancel")
    assert info.state is TaskState.CANCELLED

    go = threading.Event()

    def finishing(control: TaskControl) -> str:
        control.last_step()
        go.wait(5)
        return "done"

    task = _task(ThreadSource("finishing", finishing, kind="test"))
    time.sleep(0.1)
    with pytest.raises(Unsupported, match="test"):
        task.cancel()
    go.set()
    assert task.wait(5) == "done"


def test_progress_is_reported_and_join_waits() -> None:
    def work(control: TaskControl) -> int:
        for p in (10, 50, 90):
            control.progress(p)
            time.sleep(0.02)
        return 7

    source = ThreadSource("op", work)
    seen: list[TaskInfo] = []
    assert _task(source).wait(5, on_progress=seen.append) == 7
    assert source.join(1)
    assert seen[-1].progress == 100 and any(0 < i.progress < 100 for i in seen)
