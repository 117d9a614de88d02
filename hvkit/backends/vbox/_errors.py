"""VBoxManage failures -> hvkit errors: one table keyed on VirtualBox's result code, refined by the message.

VBoxManage reports an API failure on stderr as::

    VBoxManage: error: <message>
    VBoxManage: error: Details: code <VBOX_E_...|E_...> (0x<hex>), component <C>, interface <I>, callee <...>
    VBoxManage: error: Context: "<call>" at line <n> of file <file>

and exits with 1; a command line it does not accept exits with 2 (RTEXITCODE_SYNTAX) after printing its
usage. Line numbers and contexts differ between builds, so only the code and the message are read.
"""

from __future__ import annotations

import re

from hvkit import errors

__all__ = ["CODES", "MESSAGES", "NO_ROOM", "VBoxManageError", "is_lock_error", "translate"]

_DETAILS = re.compile(r"Details: code (\w+) \((0x[0-9a-fA-F]+)\)")
_ERROR_LINE = re.compile(r"^\S*VBoxManage(?:\.exe)?: error: (.*)$")


class VBoxManageError(Exception):
    """A VBoxManage run that failed: its exit status, the error message and VirtualBox's result code."""

    def __init__(self, command: str, status: int, stderr: str) -> None:
        self.command = command
        self.status = status
        self.stderr = stderr
        lines = [m.group(1) for m in map(_ERROR_LINE.match, stderr.splitlines()) if m]
        found = _DETAILS.search(stderr)
        self.code = found.group(1) if found else ""
        self.message = next((line for line in lines if not line.startswith(("Details:", "Context:"))), "")
        if not self.message:
            self.message = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {status}"
        super().__init__(f"VBoxManage {command}: {self.message}" + (f" ({self.code})" if self.code else ""))


# result code -> hvkit error (VirtualBox's VBOX_E_* and the COM E_* it uses)
CODES: dict[str, type[errors.HvkitError]] = {
    "VBOX_E_OBJECT_NOT_FOUND": errors.NotFound,
    "VBOX_E_INVALID_VM_STATE": errors.InvalidState,
    "VBOX_E_VM_ERROR": errors.BackendError,
    "VBOX_E_FILE_ERROR": errors.BackendError,
    "VBOX_E_IPRT_ERROR": errors.BackendError,
    "VBOX_E_PDM_ERROR": errors.BackendError,
    "VBOX_E_INVALID_OBJECT_STATE": errors.InvalidState,
    "VBOX_E_HOST_ERROR": errors.BackendError,
    "VBOX_E_NOT_SUPPORTED": errors.Unsupported,
    "VBOX_E_XML_ERROR": errors.BackendError,
    "VBOX_E_INVALID_SESSION_STATE": errors.Conflict,
    "VBOX_E_OBJECT_IN_USE": errors.InvalidState,
    "VBOX_E_PASSWORD_INCORRECT": errors.AuthenticationError,
    "E_INVALIDARG": errors.InvalidSpec,
    "E_ACCESSDENIED": errors.AuthenticationError,
    "E_FAIL": errors.BackendError,
    "E_OUTOFMEMORY": errors.BackendError,
}
# message patterns that say more than the code (checked first, in order)
MESSAGES: list[tuple[re.Pattern[str], type[errors.HvkitError]]] = [
    (re.compile(r"is already locked (by|for) a session"), errors.Conflict),
    (re.compile(r"already exists|VERR_ALREADY_EXISTS"), errors.AlreadyExists),
    (re.compile(r"Could not find a registered machine|Could not find a snapshot|VERR_FILE_NOT_FOUND"), errors.NotFound),
    (re.compile(r"is not currently running|is not mutable|while it is locked"), errors.InvalidState),
    (re.compile(r"host-only adapter .* outside the ranges"), errors.InvalidSpec),
]

# no room, searched in every error line (VirtualBox puts the IPRT status on a line after the message, as in
# "VMDK: cannot write allocated data block in '...' (VERR_DISK_FULL)" under VBOX_E_FILE_ERROR): a full disk,
# and the out-of-memory statuses a VM start gets when the host cannot give it its RAM
NO_ROOM = re.compile(r"VERR_DISK_FULL|VERR_NO_(?:PHYS_|LOW_|PAGE_|CONT_)?MEMORY\b|No space left on device")


def is_lock_error(exc: BaseException) -> bool:
    """A session lock held by another process (Packer #12008): worth retrying after a pause."""
    return isinstance(exc, VBoxManageError) and bool(MESSAGES[0][0].search(exc.message))


def translate(exc: VBoxManageError) -> errors.HvkitError:
    """The hvkit error for a failed VBoxManage run (the caller raises it ``from exc``)."""
    for pattern, kind in MESSAGES:
        if pattern.search(exc.message):
            return _make(kind, str(exc))
    detail = next((line for line in exc.stderr.splitlines() if NO_ROOM.search(line)), None)
    if detail is not None:
        found = _ERROR_LINE.match(detail)
        detail = (found.group(1) if found else detail).strip()
        return errors.InsufficientCapacity(str(exc) if detail == exc.message else f"{exc}: {detail}")
    if exc.status == 2:  # the command line itself was refused (usage printed)
        return errors.BackendError(
            f"{exc} (VBoxManage refused the command line: a VirtualBox version it does not know?)"
        )
    return _make(CODES.get(exc.code, errors.BackendError), str(exc))


def _make(kind: type[errors.HvkitError], text: str) -> errors.HvkitError:
    if kind is errors.Unsupported:
        return errors.Unsupported("vbox", "this operation", text)
    return kind(text)
