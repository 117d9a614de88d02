"""The user-facing Hypervisor: one connection, its managers, and the machinery they share.

Everything shared by every backend lives in the core, once: capability and state checks, validation
against the inventory before any change (the managers: ``_managers``, ``_vms``, ``_snapshots``), waiting
on tasks (cancelling what times out), and the safety net here that keeps vendor exceptions and secrets
from leaking out.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ._managers import HostManager, NetworkManager, PoolManager, VolumeManager
from ._snapshots import SnapshotManager
from ._vms import VMManager
from .backend import Backend
from .capabilities import Capability
from .errors import BackendError, HvkitError, Timeout, Unsupported
from .models._checks import check_number
from .models.enums import TaskState
from .tasks import ProgressCallback, Task, TaskInfo

__all__ = ["Hypervisor", "register_extension"]

T = TypeVar("T")
log = logging.getLogger("hvkit")
DEFAULT_TASK_TIMEOUT = 1800.0
CANCEL_GRACE = 10.0  # seconds a timed-out task is followed after the cancel, before it is left running
# managers of higher layers (``hv.images`` from hvkit.images), registered by their package on import (imported
# on first use)
_EXTENSIONS: dict[str, Callable[[Hypervisor], Any]] = {}


def register_extension(name: str, factory: Callable[[Hypervisor], Any]) -> None:
    """Offer ``hv.<name>`` (made once per Hypervisor by ``factory``) from a package above this layer."""
    _EXTENSIONS[name] = factory


class Hypervisor:
    """One connection to one hypervisor (a host, a cluster or a vCenter). Use as a context manager."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend  # the driver, for vendor-only features; not part of the common API
        self.task_timeout = float(backend.options.option("task_timeout", DEFAULT_TASK_TIMEOUT))
        self.hosts = HostManager(self)
        self.pools = PoolManager(self)
        self.volumes = VolumeManager(self)
        self.networks = NetworkManager(self)
        self.vms = VMManager(self)
        self.snapshots = SnapshotManager(self)

    @property
    def images(self) -> Any:
        """Verified disk images of this hypervisor (:class:`hvkit.images.Images`)."""
        return self._extension("images")

    def _extension(self, name: str) -> Any:
        made = self.__dict__.setdefault("_extensions", {})
        if name not in made:
            if name not in _EXTENSIONS:  # its package registers it on import: import it on first use
                importlib.import_module(f"hvkit.{name}")
            made[name] = _EXTENSIONS[name](self)
        return made[name]

    # -- identity ----------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.backend.kind

    @property
    def url(self) -> str:
        return str(self.backend.options.url)

    @property
    def version(self) -> str:
        with self.translating("version"):
            return self.backend.version

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset(self.backend.capabilities)

    def supports(self, capability: Capability) -> bool:
        return capability in self.backend.capabilities

    def __repr__(self) -> str:
        return f"<Hypervisor {self.kind} {self.url}>"

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Hypervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shared machinery --------------------------------------------------------------------------
    def require(self, capability: Capability, operation: str) -> None:
        if capability not in self.backend.capabilities:
            raise Unsupported(self.kind, operation)

    @contextlib.contextmanager
    def translating(self, operation: str) -> Iterator[None]:
        """Run a backend call: vendor exceptions become hvkit errors, secrets are scrubbed."""
        try:
            with self.backend.errors():
                yield
        except HvkitError as exc:
            scrubbed = self._scrub(str(exc))
            if scrubbed == str(exc):
                raise
            clean = copy.copy(exc)
            clean.args = (scrubbed,)
            raise clean from exc.__cause__
        except Exception as exc:
            raise BackendError(
                f"{operation} failed on {self.kind}: {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from exc

    def _scrub(self, text: str) -> str:
        opts = self.backend.options
        for secret in (opts.password, opts.token):
            if secret and len(secret) >= 3:
                text = text.replace(secret, "***")
        return text

    def call(self, operation: str, fn: Callable[..., T], *args: Any) -> T:
        with self.translating(operation):
            return fn(*args)

    def run(
        self,
        operation: str,
        target: str,
        fn: Callable[[], Any],
        *,
        wait: bool,
        timeout: float | None,
        progress: ProgressCallback | None = None,
        then: Callable[[Any], Any] | None = None,
        undo: Callable[[Any], None] | None = None,
    ) -> Any:
        """Run a changing backend call and wait for its Task; return ``then(result)``.

        With ``wait=False`` return a Task at once: the call runs in a thread and the returned Task
        follows (and cancels) the backend's own Task. A failed call has undone its own partial work (the
        backend's contract); the core never removes anything by name. When the wait times out, the
        backend's Task is cancelled; if it finishes anyway, ``undo(result)`` removes what it made, known
        by the identity in its result (see :meth:`_abandon`); so it does when ``then`` fails after the work.
        """

        if timeout is not None:  # checked before anything reaches the backend
            check_number(f"{operation} timeout", timeout, 0.0, 10 * 365 * 86400.0, low_text="0 seconds")

        def submit() -> Any:
            with self.translating(operation):
                return fn()

        def finish(result: Any) -> Any:
            if isinstance(result, Task):
                limit = self.task_timeout if timeout is None else timeout
                try:
                    with self.translating(operation):
                        result = result.wait(limit, progress)
                except Timeout as exc:
                    info = _info(result)
                    if info is None or not info.state.done:
                        raise self._abandon(operation, target, result, exc, undo) from exc
                    if info.state is not TaskState.SUCCESS:
                        raise  # the task's own error, not our wait
                    result = info.result  # it finished just as the wait gave up
            if then is None:
                return result
            try:
                return then(result)
            except BaseException:  # the work is done but the call fails: it leaves nothing behind
                if undo is not None:
                    try:
                        undo(result)
                    except HvkitError as exc:
                        log.error("%s of %r failed after its work was done, which could not be removed: %s",
                                  operation, target, exc)  # fmt: skip
                raise

        if not wait:
            return Task.in_thread(operation, target, submit, finish=finish)
        return finish(submit())

    def _abandon(
        self, operation: str, target: str, task: Task, late: Timeout, undo: Callable[[Any], None] | None
    ) -> Timeout:
        """The wait for ``task`` timed out: cancel it, or undo what it made, or say what still runs.

        The task is cancelled (where the vendor can) and followed for up to ``CANCEL_GRACE`` s more. If it
        ended without success, the backend undid its own partial work. If it succeeded after all,
        ``undo(result)`` removes it by identity. If it still runs, the Timeout carries it (``exc.task``) and,
        where ``undo`` is given, a watcher removes what it makes once it finishes.
        """
        what = f"{operation} of {target!r}"
        cancel_note = "it was cancelled"
        try:
            with self.translating(f"{operation} cancel"):
                task.cancel()
        except HvkitError as exc:
            cancel_note = f"it could not be cancelled ({exc})"
        try:
            with self.translating(operation):
                result = task.wait(CANCEL_GRACE)
        except Timeout:
            if not _ended(task):
                if undo is not None:
                    self._undo_when_done(what, task, undo)
                    tail = "hvkit removes what it makes when it finishes"
                else:
                    tail = "wait on exc.task to follow it"
                running = Timeout(f"{late}; {cancel_note} and still runs as task {task.id} ({tail})")
                running.task = task
                return running
            return Timeout(f"{late}; {cancel_note}; the task then failed")
        except HvkitError:
            return Timeout(f"{late}; {cancel_note} and left nothing behind")
        if undo is None:
            return Timeout(f"{late}; {cancel_note} but it finished late")
        try:
            undo(result)
        except HvkitError as exc:
            log.error("could not remove what the timed-out %s made: %s", what, exc)
            return Timeout(f"{late}; it finished late and could not be removed again: {exc}")
        return Timeout(f"{late}; it finished as it was being cancelled and was removed again")

    def _undo_when_done(self, what: str, task: Task, undo: Callable[[Any], None]) -> None:
        def watch() -> None:
            try:
                with self.translating(what):
                    result = task.wait(self.task_timeout)
                undo(result)
                log.warning("removed what the timed-out %s made once it finished", what)
            except HvkitError as exc:
                if _ended(task):
                    return  # it failed: the backend undid its own work
                log.error("the timed-out %s still runs; nothing was removed: %s", what, exc)

        threading.Thread(target=watch, daemon=True, name="hvkit-undo-late").start()


def _info(task: Task) -> TaskInfo | None:
    try:
        return task.info()
    except HvkitError:
        return None


def _ended(task: Task) -> bool:
    info = _info(task)
    return info is not None and info.state.done
