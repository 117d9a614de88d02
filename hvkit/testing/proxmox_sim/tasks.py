"""UPID tasks that run in threads, log lines as they go, and end with ``OK`` or an error text."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

__all__ = ["SimTask", "TaskContext", "TaskRunner", "TaskStopped"]


class TaskContext:
    """Handed to a task's work function: log lines and sleep in units of the configured delay."""

    def __init__(self, task: SimTask, delay: float) -> None:
        self.task = task
        self.delay = delay

    def log(self, line: str) -> None:
        self.task.log.append(line)

    def sleep(self, fraction: float = 1.0) -> None:
        """Wait ``fraction`` task steps; a stopped task ends here (PVE's worker dies of the signal)."""
        if self.delay > 0 and fraction > 0:
            self.task.stop.wait(self.delay * fraction)
        self.check()

    def check(self) -> None:
        if self.task.stop.is_set():
            raise TaskStopped("interrupted by signal")

    def progress(self, what: str, done: int, total: int) -> None:
        pct = 100.0 * done / total if total else 100.0
        self.log(f"{what}: transferred {done / 2**30:.1f} GiB of {total / 2**30:.1f} GiB ({pct:.2f}%)")


class TaskStopped(Exception):
    """The task was stopped (``DELETE /nodes/{node}/tasks/{upid}``)."""


class SimTask:
    def __init__(self, node: str, kind: str, ident: str, user: str, counter: int) -> None:
        self.node = node
        self.type = kind
        self.id = ident
        self.user = user
        self.starttime = int(time.time())
        self.pid = os.getpid() + counter
        self.pstart = counter
        self.upid = f"UPID:{node}:{self.pid:08X}:{self.pstart:08X}:{self.starttime:08X}:{kind}:{ident}:{user}:"
        self.log: list[str] = []
        self.exitstatus: str | None = None
        self.done = threading.Event()
        self.stop = threading.Event()
        self.warnings = 0  # lines logged as WARN: the task ends "WARNINGS: n" instead of "OK"
        self.endtime: int | None = None

    def status(self) -> dict[str, object]:
        data: dict[str, object] = {
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.type,
            "id": self.id,
            "user": self.user,
            "status": "stopped" if self.done.is_set() else "running",
        }
        if self.done.is_set():
            data["exitstatus"] = self.exitstatus
        return data


class TaskRunner:
    """Starts tasks in threads; keeps every task by UPID."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.tasks: dict[str, SimTask] = {}
        self._lock = threading.Lock()
        self._counter = 0

    def start(self, node: str, kind: str, ident: str, user: str, work: Callable[[TaskContext], None]) -> SimTask:
        with self._lock:
            self._counter += 1
            task = SimTask(node, kind, ident, user, self._counter)
            self.tasks[task.upid] = task
        ctx = TaskContext(task, self.delay)

        def run() -> None:
            try:
                work(ctx)
                task.exitstatus = f"WARNINGS: {task.warnings}" if task.warnings else "OK"
                task.log.append(f"TASK {task.exitstatus}")
            except Exception as exc:
                text = str(exc).strip() or type(exc).__name__
                task.exitstatus = text.splitlines()[0]
                task.log.append(f"TASK ERROR: {text}")
            task.endtime = int(time.time())
            task.done.set()

        threading.Thread(target=run, daemon=True, name=f"pve-sim-{kind}").start()
        return task

    def get(self, upid: str) -> SimTask | None:
        with self._lock:
            return self.tasks.get(upid)
