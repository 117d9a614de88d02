"""Proxmox (proxmoxer / requests) exceptions -> hvkit errors."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import requests
from proxmoxer import AuthenticationError as PxAuthError
from proxmoxer import ResourceException

from ...errors import (
    AlreadyExists,
    AuthenticationError,
    BackendError,
    Conflict,
    ConnectionError,
    HvkitError,
    InsufficientCapacity,
    InvalidSpec,
    InvalidState,
    NotFound,
    Timeout,
    Unsupported,
)

__all__ = ["LOCK_MARKERS", "NO_ROOM", "from_message", "is_lock_error", "translate"]

LOCK_MARKERS = ("can't lock file", "VM is locked", "got lock request timeout", "detected modified configuration")

# (text in PVE's message, hvkit error), first match wins
MESSAGE_TABLE: tuple[tuple[str, type[HvkitError]], ...] = (
    ("can't lock file", Conflict),
    ("VM is locked", Conflict),
    ("detected modified configuration", Conflict),
    ("quit/powerdown failed - got timeout", Timeout),
    ("does not exist", NotFound),
    ("no such task", NotFound),
    ("hostname lookup", NotFound),
    ("already exists", AlreadyExists),
    ("already used", AlreadyExists),
    ("config file already exists", AlreadyExists),
    ("not running", InvalidState),
    ("already running", InvalidState),
    ("is running - destroy failed", InvalidState),
    ("can't start a vm if it's a template", InvalidState),
    ("protection mode enabled", InvalidState),
    ("No QEMU guest agent configured", InvalidState),
    ("QEMU guest agent is not running", InvalidState),
    ("not implemented", Unsupported),
)

# no room on a storage or a node, whatever layer said it (checked after the lock markers, before the table's rest):
# ENOSPC / EDQUOT / ENOMEM as Perl, qemu-img, rbd or QEMU print them ("No space left on device", "Disk quota
# exceeded", "cannot set up guest memory 'pc.ram': Cannot allocate memory"), lvcreate's 'Volume group "pve" has
# insufficient free space', ZFS's "out of space", a thin pool's "not enough free space", and "no space left on
# storage" as a storage plugin words it.
NO_ROOM = re.compile(
    r"no space left|disk quota exceeded|insufficient free space|out of space|not enough (?:free )?space"
    r"|cannot allocate memory|not enough (?:free )?memory",
    re.IGNORECASE,
)


def is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, Conflict) and any(m in str(exc) for m in LOCK_MARKERS)


def from_message(message: str, *, context: str = "") -> HvkitError:
    """Map a PVE error text (an HTTP reason or a task's exit status) to an hvkit error."""
    text = message.strip()
    full = f"{context}: {text}" if context else text
    if NO_ROOM.search(text) and not any(m in text for m in LOCK_MARKERS):
        return InsufficientCapacity(full)
    for marker, kind in MESSAGE_TABLE:
        if marker in text:
            if kind is Unsupported:
                return Unsupported("proxmox", context or "call", text)
            return kind(full)
    return BackendError(full)


def _resource(exc: ResourceException) -> HvkitError:
    status = int(exc.status_code)
    text = str(exc.content or exc.status_message or "").strip()
    if status == 401:
        return AuthenticationError(f"Proxmox refused the credentials: {text}")
    if status == 403:
        return AuthenticationError(f"permission denied by Proxmox: {text}")
    if status == 400:
        errors: Any = exc.errors
        if isinstance(errors, dict) and errors:
            detail = "; ".join(f"{k}: {' '.join(str(v).split())}" for k, v in sorted(errors.items()))
            err = InvalidSpec(f"Proxmox rejected the parameters: {detail}")
            err.errors = {k: str(v).strip() for k, v in errors.items()}  # type: ignore[attr-defined]
            return err
        return InvalidSpec(f"Proxmox rejected the request: {text}")
    if status in (595, 596, 597, 599):
        return ConnectionError(f"Proxmox could not reach a node: {text}")
    if status == 501:
        return Unsupported("proxmox", "call", text)
    return from_message(text)


@contextlib.contextmanager
def translate() -> Iterator[None]:
    """Turn proxmoxer and requests exceptions into hvkit errors (the original kept as ``__cause__``)."""
    try:
        yield
    except HvkitError:
        raise
    except ResourceException as exc:
        raise _resource(exc) from exc
    except PxAuthError as exc:
        raise AuthenticationError(f"Proxmox refused the credentials ({exc})") from exc
    except requests.exceptions.SSLError as exc:
        raise ConnectionError(
            "TLS verification of the Proxmox server failed "
            f"(pass ca_file, or verify_tls=False explicitly): {type(exc.args[0]).__name__ if exc.args else exc}"
        ) from exc
    except requests.exceptions.Timeout as exc:
        raise Timeout(f"Proxmox did not answer in time: {type(exc).__name__}") from exc
    except requests.exceptions.ConnectionError as exc:
        raise ConnectionError(f"cannot reach the Proxmox API: {type(exc).__name__}") from exc
    except requests.exceptions.RequestException as exc:
        raise ConnectionError(f"HTTP error talking to Proxmox: {type(exc).__name__}") from exc
