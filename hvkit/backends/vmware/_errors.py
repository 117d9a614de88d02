"""vSphere faults -> hvkit errors, through one table keyed on the fault's WSDL type name.

A fault is matched on its own type first, then on each base type in turn, so a subtype that is not
in the table (``InvalidPowerState`` is an ``InvalidState``) still finds its closest entry. The
fault's own message is kept in the hvkit error's text.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
from collections.abc import Iterator
from typing import Any

from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

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

vim: Any = _vim  # pyVmomi's generated types are untyped for mypy
vmodl: Any = _vmodl

__all__ = ["FAULTS", "fault_message", "translate", "translate_fault", "translating"]

# WSDL fault name -> hvkit error class. Order does not matter: the fault's type hierarchy decides.
FAULTS: dict[str, type[HvkitError]] = {
    # authentication and permission
    "InvalidLogin": AuthenticationError,
    "NotAuthenticated": AuthenticationError,
    "NoPermission": AuthenticationError,
    "SecurityError": AuthenticationError,
    "NoClientCertificate": AuthenticationError,
    # missing objects
    "NotFound": NotFound,
    "ManagedObjectNotFound": NotFound,
    "FileNotFound": NotFound,
    "InvalidDatastorePath": InvalidSpec,
    # name clashes
    "DuplicateName": AlreadyExists,
    "AlreadyExists": AlreadyExists,
    "FileAlreadyExists": AlreadyExists,
    # state
    "InvalidPowerState": InvalidState,
    "InvalidState": InvalidState,
    "InvalidHostState": InvalidState,
    "InvalidDatastoreState": InvalidState,
    "ToolsUnavailable": InvalidState,
    "ToolsInstallationInProgress": InvalidState,
    "HostNotConnected": InvalidState,
    "SnapshotFault": InvalidState,
    "NoActiveHostInCluster": InvalidState,
    "MigrationFault": InvalidState,
    "VmConfigFault": InvalidSpec,
    # no room: every InsufficientResourcesFault (memory, CPU, storage space, host capacity, HA failover
    # capacity, vFlash, network ...) finds this entry through its type hierarchy
    "InsufficientResourcesFault": InsufficientCapacity,
    "OutOfBounds": InvalidSpec,
    # concurrency
    "TaskInProgress": Conflict,
    "ConcurrentAccess": Conflict,
    "FileLocked": Conflict,
    "ResourceInUse": Conflict,
    # bad requests
    "InvalidArgument": InvalidSpec,
    "InvalidRequest": InvalidSpec,
    "InvalidType": InvalidSpec,
    "InvalidName": InvalidSpec,
    "InvalidProperty": InvalidSpec,
    "InvalidDeviceSpec": InvalidSpec,
    # not offered
    "NotSupported": Unsupported,
    "NotImplemented": Unsupported,
    "MethodNotFound": Unsupported,
    "RestrictedVersion": Unsupported,
    "NotSupportedHost": Unsupported,
    # time
    "Timedout": Timeout,
    "RequestCanceled": Conflict,
    # storage
    "NoDiskSpace": InsufficientCapacity,  # a FileFault: the datastore has no room for the file
    "FileFault": BackendError,
    "HostCommunication": ConnectionError,
    "HostConnectFault": ConnectionError,
}


def _wsdl_names(fault: BaseException) -> Iterator[str]:
    for cls in type(fault).__mro__:
        name = getattr(cls, "_wsdlName", None)
        if isinstance(name, str):
            yield name


def fault_message(fault: BaseException) -> str:
    """The most useful text of a vSphere fault: its message, else its faultMessage, else its type."""
    for attr in ("msg", "localizedMessage"):
        text = getattr(fault, attr, None)
        if isinstance(text, str) and text.strip():
            return text.strip()
    messages = getattr(fault, "faultMessage", None) or []
    for item in messages:
        text = getattr(item, "message", None)
        if isinstance(text, str) and text.strip():
            return text.strip()
    return ""


def translate_fault(fault: BaseException, message: str = "") -> HvkitError:
    """An hvkit error for one vSphere fault (``message`` overrides the fault's own text)."""
    names = list(_wsdl_names(fault))
    name = names[0] if names else type(fault).__name__
    text = message or fault_message(fault) or name
    if text.startswith("*types."):  # vcsim puts the Go type name in msg
        text = name
    existing, requested = getattr(fault, "existingState", None), getattr(fault, "requestedState", None)
    if existing and requested:
        text = f"{text}: the VM is {existing}; the operation needs it {requested}"
    if name not in text:
        text = f"{text} ({name})"
    for candidate in names:
        kind = FAULTS.get(candidate)
        if kind is not None:
            if kind is Unsupported:
                return Unsupported("vmware", text)
            return kind(text)
    return BackendError(text)


def translate(exc: BaseException) -> HvkitError | None:
    """An hvkit error for any exception pyvmomi or the network can raise; None for others."""
    if isinstance(exc, HvkitError):
        return exc
    if isinstance(exc, vmodl.MethodFault):
        return translate_fault(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConnectionError(
            f"TLS certificate verification failed: {exc.verify_message} (pass ca_file, or verify_tls=False to skip)"
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        return Timeout(f"the vSphere server did not answer in time: {exc}")
    if isinstance(exc, ssl.SSLError | OSError | http.client.HTTPException):
        return ConnectionError(f"vSphere connection failed: {type(exc).__name__}: {exc}")
    return None


@contextlib.contextmanager
def translating() -> Iterator[None]:
    """Translate pyvmomi and network exceptions raised inside the block."""
    try:
        yield
    except HvkitError:
        raise
    except Exception as exc:
        err = translate(exc)
        if err is None:
            raise
        raise err from exc


# vim.fault.* and vmodl.fault.* are both looked up through _wsdlName; keep the imports used.
