"""The one error hierarchy of hvkit.

Every vendor exception is translated into one of these, with the original kept as ``__cause__``::

    HvkitError
    ├── ConnectionError          cannot reach the hypervisor, or the connection dropped
    │   └── AuthenticationError  credentials refused, or not allowed to do this
    ├── NotFound                 no such VM, host, pool, network, volume, snapshot or task
    ├── AlreadyExists            the name or id is taken
    ├── InvalidSpec (ValueError) the request is malformed; nothing was sent to the hypervisor
    │   └── InsufficientCapacity the storage, memory or CPU the request needs is not free; nothing was made
    ├── InvalidState             the object is not in a state that allows the operation
    ├── Conflict                 a lock or a concurrent change got in the way
    ├── Timeout                  the operation did not finish in time
    ├── Unsupported (NotImplementedError)
    │                            this backend cannot do this operation
    └── BackendError             the hypervisor reported an error with no closer match

Messages never contain passwords, tokens or session cookies.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "AuthenticationError",
    "BackendError",
    "Conflict",
    "ConnectionError",
    "HvkitError",
    "InsufficientCapacity",
    "InvalidSpec",
    "InvalidState",
    "NotFound",
    "Timeout",
    "Unsupported",
]


class HvkitError(Exception):
    """Root of every error hvkit raises."""


class ConnectionError(HvkitError):
    """The hypervisor cannot be reached, or the connection was lost."""


class AuthenticationError(ConnectionError):
    """Credentials were refused, or the account may not do this."""


class NotFound(HvkitError, LookupError):
    """The named object does not exist."""


class AlreadyExists(HvkitError):
    """An object with that name or id exists already."""


class InvalidSpec(HvkitError, ValueError):
    """A request is malformed; raised before anything reaches the hypervisor."""


class InsufficientCapacity(InvalidSpec):
    """The storage, or the memory or CPU, the request needs is not free on the hypervisor; nothing was made.

    The same request may succeed after space or memory is freed, or on another pool or host. It is an
    ``InvalidSpec``, so code that catches that keeps working.
    """


class InvalidState(HvkitError):
    """The object's state does not allow the operation (e.g. start a running VM)."""


class Conflict(HvkitError):
    """A lock or a concurrent change prevented the operation."""


class Timeout(HvkitError, TimeoutError):
    """The operation did not finish within its timeout.

    ``task``: the hypervisor's Task when the work could not be cancelled and is still running (wait on it,
    or remove what it made); None when nothing is left running.
    """

    task: object = None


class Unsupported(HvkitError, NotImplementedError):
    """The backend does not offer this operation."""

    def __init__(self, backend: str, operation: str, reason: str = "") -> None:
        self.backend = backend
        self.operation = operation
        text = f"{operation} is not supported by the {backend} backend"
        super().__init__(f"{text}: {reason}" if reason else text)


class BackendError(HvkitError):
    """The hypervisor reported an error that has no closer hvkit match."""
