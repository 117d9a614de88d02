"""The one table that maps libvirt error codes to hvkit errors, and the context manager using it."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import libvirt

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

__all__ = ["ERROR_TABLE", "error_for", "translate"]

# libvirt error name (VIR_ERR_<name>) -> hvkit error class. Names missing from an older libvirt are skipped.
_BY_NAME: dict[str, type[HvkitError]] = {
    # not found
    "NO_DOMAIN": NotFound,
    "NO_NETWORK": NotFound,
    "NO_STORAGE_POOL": NotFound,
    "NO_STORAGE_VOL": NotFound,
    "NO_DOMAIN_SNAPSHOT": NotFound,
    "NO_DOMAIN_CHECKPOINT": NotFound,
    "NO_DOMAIN_BACKUP": NotFound,
    "NO_DOMAIN_METADATA": NotFound,
    "NO_NODE_DEVICE": NotFound,
    "NO_INTERFACE": NotFound,
    "NO_SECRET": NotFound,
    "NO_NWFILTER": NotFound,
    "NO_NWFILTER_BINDING": NotFound,
    "NO_NETWORK_PORT": NotFound,
    "NO_SERVER": NotFound,
    "NO_CLIENT": NotFound,
    "NO_SOURCE": NotFound,
    "NO_DEVICE": NotFound,
    "DEVICE_MISSING": NotFound,
    "INVALID_DOMAIN": NotFound,  # the domain object went away
    "INVALID_STORAGE_POOL": NotFound,
    "INVALID_STORAGE_VOL": NotFound,
    "INVALID_NETWORK": NotFound,
    "INVALID_DOMAIN_SNAPSHOT": NotFound,
    # exists
    "DOM_EXIST": AlreadyExists,
    "NETWORK_EXIST": AlreadyExists,
    "STORAGE_VOL_EXIST": AlreadyExists,
    "NETWORK_PORT_EXIST": AlreadyExists,
    "STORAGE_POOL_BUILT": AlreadyExists,
    # malformed request
    "INVALID_ARG": InvalidSpec,
    "XML_ERROR": InvalidSpec,
    "XML_DETAIL": InvalidSpec,
    "XML_INVALID_SCHEMA": InvalidSpec,
    "CONFIG_UNSUPPORTED": InvalidSpec,
    "INVALID_MAC": InvalidSpec,
    "OS_TYPE": InvalidSpec,
    "NO_OS": InvalidSpec,
    "NO_NAME": InvalidSpec,
    "NO_TARGET": InvalidSpec,
    "CPU_INCOMPATIBLE": InvalidSpec,
    # state
    "OPERATION_INVALID": InvalidState,
    "SNAPSHOT_REVERT_RISKY": InvalidState,
    "MIGRATE_UNSAFE": InvalidState,
    "BLOCK_COPY_ACTIVE": InvalidState,
    "CHECKPOINT_INCONSISTENT": InvalidState,
    # concurrency
    "RESOURCE_BUSY": Conflict,
    "OPERATION_ABORTED": Conflict,
    "MULTIPLE_DOMAINS": Conflict,
    # time
    "OPERATION_TIMEOUT": Timeout,
    "AGENT_UNRESPONSIVE": Timeout,
    "AGENT_UNSYNCED": Timeout,
    # unsupported
    "NO_SUPPORT": Unsupported,
    "OPERATION_UNSUPPORTED": Unsupported,
    "ARGUMENT_UNSUPPORTED": Unsupported,
    # access and connection
    "AUTH_FAILED": AuthenticationError,
    "AUTH_CANCELLED": AuthenticationError,
    "AUTH_UNAVAILABLE": AuthenticationError,
    "OPERATION_DENIED": AuthenticationError,
    "ACCESS_DENIED": AuthenticationError,
    "NO_CONNECT": ConnectionError,
    "INVALID_CONN": ConnectionError,
    "RPC": ConnectionError,
    "SSH": ConnectionError,
    "LIBSSH": ConnectionError,
    "GNUTLS_ERROR": ConnectionError,
    "UNKNOWN_HOST": ConnectionError,
}
_DUPLICATE = re.compile(r"^operation failed: (domain|pool|network) '.*' already exists")
# no room: libvirt's own pool checks ("Not enough space left in storage pool", a disk pool's "no large enough
# free extent"), lvcreate's "insufficient free space", and ENOSPC / EDQUOT / ENOMEM as libvirt or QEMU report
# them (a raw volume's allocation, qemu-img create, "cannot set up guest memory 'pc.ram': Cannot allocate memory").
# They come as OPERATION_FAILED, INTERNAL_ERROR or SYSTEM_ERROR, which have no entry of their own.
_NO_ROOM = re.compile(
    r"not enough space left in storage pool|no large enough free extent|insufficient free space"
    r"|no space left on device|disk quota exceeded|cannot allocate memory",
    re.IGNORECASE,
)
ERROR_TABLE: dict[int, type[HvkitError]] = {
    getattr(libvirt, f"VIR_ERR_{name}"): cls for name, cls in _BY_NAME.items() if hasattr(libvirt, f"VIR_ERR_{name}")
}


def error_for(exc: libvirt.libvirtError) -> HvkitError:
    """The hvkit error for one libvirtError (its message, never credentials: libvirt does not echo them)."""
    code = exc.get_error_code()
    cls = ERROR_TABLE.get(code or 0, BackendError)
    message = exc.get_error_message() or str(exc)
    if code == libvirt.VIR_ERR_OPERATION_FAILED and _DUPLICATE.search(message):
        cls = AlreadyExists  # defineXML of a name another domain has ("domain 'x' already exists with uuid ...")
    elif cls is BackendError and _NO_ROOM.search(message):
        cls = InsufficientCapacity
    if cls is Unsupported:
        return Unsupported("kvm", "this operation", message)
    return cls(f"libvirt: {message}")


@contextlib.contextmanager
def translate() -> Iterator[None]:
    """Turn any libvirtError raised inside into the matching hvkit error (the original as __cause__)."""
    try:
        yield
    except libvirt.libvirtError as exc:
        raise error_for(exc) from exc
