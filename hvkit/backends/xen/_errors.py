"""XAPI error codes -> hvkit errors: one table; the XenAPI Failure stays as ``__cause__``."""

from __future__ import annotations

import contextlib
import http.client
import ssl
import xmlrpc.client
from collections.abc import Iterator
from typing import Any

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

__all__ = ["TABLE", "from_description", "translate"]

# XAPI error code -> hvkit error; anything else is a BackendError
TABLE: dict[str, type[HvkitError]] = {
    "HANDLE_INVALID": NotFound,
    "UUID_INVALID": NotFound,
    "VDI_MISSING": NotFound,
    "SESSION_AUTHENTICATION_FAILED": AuthenticationError,
    "RBAC_PERMISSION_DENIED": AuthenticationError,
    "SESSION_INVALID": ConnectionError,
    "HOST_IS_SLAVE": ConnectionError,
    "HOST_OFFLINE": ConnectionError,
    "CANNOT_CONTACT_HOST": ConnectionError,
    "VM_BAD_POWER_STATE": InvalidState,
    "VM_IS_TEMPLATE": InvalidState,
    "VM_HAS_NO_SUSPEND_VDI": InvalidState,
    "VDI_IN_USE": InvalidState,
    "VDI_NEEDS_VM_FOR_MIGRATE": InvalidState,
    "VM_REQUIRES_SR": InvalidState,
    "HOST_DISABLED": InvalidState,
    "OPERATION_NOT_ALLOWED": InvalidState,
    "VM_REVERT_FAILED": InvalidState,
    "OTHER_OPERATION_IN_PROGRESS": Conflict,
    "MAP_DUPLICATE_KEY": AlreadyExists,
    "DEVICE_ALREADY_EXISTS": AlreadyExists,
    "SR_FULL": InsufficientCapacity,  # the request asks for more space than the SR has; nothing was made
    "HOST_NOT_ENOUGH_FREE_MEMORY": InsufficientCapacity,
    "HOST_NOT_ENOUGH_PCPUS": InsufficientCapacity,  # the VM has more vCPUs than the host has pCPUs
    "NETWORK_SRIOV_INSUFFICIENT_CAPACITY": InsufficientCapacity,
    "MEMORY_CONSTRAINT_VIOLATION": InvalidSpec,
    "INVALID_VALUE": InvalidSpec,
    "FIELD_TYPE_ERROR": InvalidSpec,
    "MAC_INVALID": InvalidSpec,
    "VDI_TOO_SMALL": InvalidSpec,
    "TASK_CANCELLED": Timeout,
    "MESSAGE_METHOD_UNKNOWN": Unsupported,
    "NOT_IMPLEMENTED": Unsupported,
    "VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED": Unsupported,
    "SR_OPERATION_NOT_SUPPORTED": Unsupported,
    "LICENCE_RESTRICTION": Unsupported,
}
_TEXT = {
    "SR_FULL": "the SR is full: {0} bytes requested, {1} available",
    "HOST_NOT_ENOUGH_FREE_MEMORY": "the host has not enough free memory: {0} bytes needed, {1} available",
    "VM_BAD_POWER_STATE": "the VM is {2}; the operation needs it {1}",
    "HANDLE_INVALID": "no {0} {1}",
    "UUID_INVALID": "no {0} with uuid {1}",
    "HOST_IS_SLAVE": "this host is a pool member; the pool master is {0}",
    "SESSION_AUTHENTICATION_FAILED": "XAPI refused the credentials of {0}",
}


def from_description(details: list[Any], context: str = "") -> HvkitError:
    """The hvkit error for an ``ErrorDescription`` (``["CODE", param, ...]``)."""
    code = str(details[0]) if details else "UNKNOWN"
    params = [str(p) for p in details[1:]]
    template = _TEXT.get(code)
    try:
        detail = template.format(*params) if template else " ".join(params)
    except IndexError:
        detail = " ".join(params)
    text = f"{code}: {detail}" if detail else code
    text = f"{context}: {text}" if context else text
    kind = TABLE.get(code, BackendError)
    if kind is Unsupported:
        return Unsupported("xen", context or "call", text)
    err = kind(text)
    err.xapi_code = code  # type: ignore[attr-defined]
    return err


@contextlib.contextmanager
def translate(context: str = "", ca_file: str | None = None) -> Iterator[None]:
    """Turn XenAPI Failures, XML-RPC faults and socket/TLS errors into hvkit errors."""
    import XenAPI

    try:
        yield
    except HvkitError:
        raise
    except XenAPI.Failure as exc:
        raise from_description(list(exc.details), context) from exc
    except ssl.SSLCertVerificationError as exc:
        where = f"the CA file {ca_file}" if ca_file else "the system's CA certificates (pass ca_file=...)"
        raise ConnectionError(
            f"TLS verification of the XAPI server failed against {where}: {exc.verify_message}; XCP-ng and "
            "XenServer hosts ship a self-signed certificate: pass its certificate as ca_file, or "
            "verify_tls=False explicitly"
        ) from exc
    except ssl.SSLError as exc:
        raise ConnectionError(f"TLS error talking to XAPI: {exc.reason}") from exc
    except TimeoutError as exc:
        raise Timeout(f"XAPI did not answer in time{f' ({context})' if context else ''}") from exc
    except xmlrpc.client.Fault as exc:
        raise BackendError(f"XML-RPC fault {exc.faultCode}: {exc.faultString}") from exc
    except (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError) as exc:
        raise ConnectionError(f"cannot reach XAPI: {type(exc).__name__}: {exc}") from exc
