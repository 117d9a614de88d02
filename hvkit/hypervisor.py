"""The user-facing Hypervisor: one connection, its managers, and the machinery they share.

Everything shared by every backend lives in the core, once: capability and state checks, validation
against the inventory before any change (the managers: ``_managers``, ``_vms``, ``_snapshots``), waiting
on tasks, clean-up of failed creates, and the safety net here that keeps vendor exceptions and secrets
from leaking out.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ._managers import HostManager, NetworkManager, PoolManager, VolumeManager
from ._snapshots import SnapshotManager
from ._vms import VMManager
from .backend import Backend
from .capabilities import Capability
from .errors import BackendError, HvkitError, Unsupported
from .tasks import ProgressCallback, Task

__all__ = ["Hypervisor"]

T = TypeVar("T")
DEFAULT_TASK_TIMEOUT = 1800.0


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
        on_error: Callable[[], None] | None = None,
    ) -> Any:
        """Run a changing backend call and wait for its Task; return ``then(result)``.

        With ``wait=False`` return a Task at once: the call runs in a thread and the returned Task
        follows (and cancels) the backend's own Task. ``on_error`` runs when the call or its Task fails
        or is cancelled (e.g. to remove a half-made VM).
        """

        def submit() -> Any:
            with self.translating(operation):
                return fn()

        def finish(result: Any) -> Any:
            if isinstance(result, Task):
                with self.translating(operation):
                    result = result.wait(self.task_timeout if timeout is None else timeout, progress)
            return then(result) if then is not None else result

        def guarded(step: Callable[..., Any], *args: Any) -> Any:
            try:
                return step(*args)
            except BaseException:
                if on_error is not None:
                    on_error()
                raise

        if not wait:
            return Task.in_thread(operation, target, lambda: guarded(submit), finish=lambda r: guarded(finish, r))
        return guarded(finish, guarded(submit))
