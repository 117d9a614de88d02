"""vSphere tasks followed through the PropertyCollector (``WaitForUpdatesEx`` on ``info``).

pyVim's ``WaitForTask`` reads the task's entity, which some servers set to a snapshot on revert and
remove (vcsim does); here the task's own ``info`` is the only thing read, so any task works the same.
Each waiting task gets its own PropertyCollector (``CreatePropertyCollector``) so that tasks followed
at the same time from several threads never see each other's updates.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

from ...driver import Task, TaskInfo, wait_for
from ...errors import HvkitError
from ...models.enums import TaskState
from ._errors import translate_fault, translating
from ._property_collector import Collector

vim: Any = _vim  # pyVmomi's generated types are untyped for mypy
vmodl: Any = _vmodl

__all__ = ["VimTaskSource", "task_of", "wait_task"]

_STATES = {
    "queued": TaskState.QUEUED,
    "running": TaskState.RUNNING,
    "success": TaskState.SUCCESS,
    "error": TaskState.ERROR,
}


# The task's info is read field by field: ``info.entity`` is left out, as some servers (vcsim) put a
# snapshot or a manager there, which pyvmomi refuses to decode as a ManagedEntity.
INFO_PATHS = [
    "info.state",
    "info.progress",
    "info.error",
    "info.result",
    "info.description",
    "info.cancelled",
    "info.descriptionId",
]


def _map_info(info: dict[str, Any], convert: Callable[[Any], Any]) -> TaskInfo:
    state = _STATES.get(str(info.get("info.state")), TaskState.RUNNING)
    progress = int(info.get("info.progress") or 0)
    description = info.get("info.description")
    message = str(getattr(description, "message", "") or "")
    if state is TaskState.SUCCESS:
        return TaskInfo(state, 100, message, result=convert(info.get("info.result")))
    if state is TaskState.ERROR:
        err: HvkitError
        fault = info.get("info.error")
        inner = getattr(fault, "fault", None) if fault is not None else None
        if inner is None and isinstance(fault, vmodl.MethodFault):  # some servers send the bare fault
            inner = fault
        text = str(getattr(fault, "localizedMessage", "") or "") if fault is not None else ""
        if inner is not None:
            err = translate_fault(inner, text)
        else:
            err = HvkitError(text or f"vSphere task {info.get('info.descriptionId')} failed")
        if isinstance(inner, vmodl.fault.RequestCanceled) or info.get("info.cancelled"):
            state = TaskState.CANCELLED
        return TaskInfo(state, progress, str(err), error=err)
    return TaskInfo(state, progress, message)


class VimTaskSource:
    """Follows one vim.Task: ``poll`` reads ``info`` once; ``wait_change`` blocks for its next change."""

    def __init__(
        self, collector: Collector, content: Any, task: Any, convert: Callable[[Any], Any], max_wait: float
    ) -> None:
        self._collector = collector
        self._content = content
        self._task = task
        self._convert = convert
        self._max_wait = max_wait
        self._lock = threading.Lock()
        self._pc: Any = None
        self._version = ""
        self._info: TaskInfo | None = None
        self._fields: dict[str, Any] = {}

    def poll(self) -> TaskInfo:
        with translating():
            self._fields = self._collector.read(self._task, INFO_PATHS)
        if "info.state" not in self._fields:
            return TaskInfo(TaskState.RUNNING)
        self._info = _map_info(self._fields, self._convert)
        return self._info

    def wait_change(self, seconds: float) -> TaskInfo:
        with self._lock, translating():
            if self._info is not None and self._info.state.done:
                return self._info
            if self._pc is None:
                self._pc = self._content.propertyCollector.CreatePropertyCollector()
                spec = vmodl.query.PropertyCollector.FilterSpec(
                    objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=self._task, skip=False)],
                    propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.Task, pathSet=INFO_PATHS, all=False)],
                )
                self._pc.CreateFilter(spec, partialUpdates=False)
            wait = max(1, min(round(seconds), int(self._max_wait)))
            options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=wait)
            update = self._pc.WaitForUpdatesEx(self._version, options)
            if update is not None:
                self._version = update.version
                for filter_update in update.filterSet or []:
                    for obj in filter_update.objectSet or []:
                        for change in obj.changeSet or []:
                            if change.op == "remove":
                                self._fields.pop(change.name, None)
                            else:
                                self._fields[change.name] = change.val
                if "info.state" in self._fields:
                    self._info = _map_info(self._fields, self._convert)
            info = self._info
        if info is None:
            info = self.poll()
        if info.state.done:
            self._release()
        return info

    def _release(self) -> None:
        pc, self._pc = self._pc, None
        if pc is not None:
            try:
                pc.DestroyPropertyCollector()
            except Exception:  # the session may be gone; the server drops it with the session
                pass

    def cancel(self) -> None:
        with translating():
            self._task.CancelTask()


def task_of(
    collector: Collector,
    content: Any,
    task: Any,
    operation: str,
    target: str,
    convert: Callable[[Any], Any],
    max_wait: float,
) -> Task:
    """An hvkit Task following ``task``; its result is ``convert(info.result)``."""
    source = VimTaskSource(collector, content, task, convert, max_wait)
    return Task(id=str(task._moId), operation=operation, target=target, source=source)


def wait_task(task: Task, timeout: float | None) -> Any:
    """Wait for a task inside a backend step that needs its result before going on."""
    return task.wait(timeout)


_ = wait_for
