"""Sim tasks: run an operation's effect after a delay, reporting progress, cancellable until then."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from ...driver import Task, TaskControl, ThreadSource

__all__ = ["start_task"]

_ids = itertools.count(1)
_STEPS = 10


def start_task(operation: str, target: str, duration: float, effect: Callable[[], Any]) -> Task:
    """A task that applies ``effect`` (atomically, at the end) after ``duration`` seconds; a cancel before
    then changes nothing."""

    def work(control: TaskControl) -> Any:
        start = time.monotonic()
        for i in range(1, _STEPS):
            control.sleep(duration / _STEPS)
            control.progress(i * 100 // _STEPS)
        control.sleep(max(0.0, duration - (time.monotonic() - start)))
        control.last_step()
        control.progress(99)
        return effect()

    source = ThreadSource(operation, work, kind="sim")
    return Task(id=f"sim-task-{next(_ids)}", operation=operation, target=target, source=source)
