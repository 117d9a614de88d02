"""A backend that records every call it gets, delegating to another backend (sim by default).

Used to prove what reaches a backend: e.g. that an invalid request makes no backend call at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._options import ConnectOptions
from ..backend import Backend
from ..backends.sim import SimBackend

__all__ = ["RecordingBackend"]

# Attributes that are not calls to the hypervisor ("errors" is the translation context manager).
_NOT_RECORDED = frozenset({"inner", "calls", "options", "capabilities", "kind", "mutating_calls", "version", "errors"})


class RecordingBackend(Backend):
    """Register with ``hvkit.register("rec", "hvkit.testing.recording:RecordingBackend")``; connect to ``rec://NAME``."""

    kind = "rec"

    def __init__(self, options: ConnectOptions) -> None:
        super().__init__(options)
        self.inner = SimBackend(options)
        self.capabilities = self.inner.capabilities
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    @property
    def version(self) -> str:
        return self.inner.version

    def mutating_calls(self) -> list[str]:
        """Names of the calls that change something (everything but list_*/get_*)."""
        return [name for name, _ in self.calls if not name.startswith(("list_", "get_"))]

    def __getattribute__(self, name: str) -> Any:
        attr = object.__getattribute__(self, name)
        if name.startswith("_") or name in _NOT_RECORDED:
            return attr
        if callable(attr) and hasattr(Backend, name):
            inner_attr: Callable[..., Any] = getattr(object.__getattribute__(self, "inner"), name)

            def record(*args: Any) -> Any:
                object.__getattribute__(self, "calls").append((name, args))
                return inner_attr(*args)

            return record
        return attr
