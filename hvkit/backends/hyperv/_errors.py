"""PowerShell error records (CLIXML on stderr) and the one table that turns them into hvkit errors."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import attrs

from ...errors import AlreadyExists, BackendError, HvkitError, InsufficientCapacity, InvalidSpec, InvalidState, NotFound

__all__ = ["ErrorRecord", "HyperVError", "parse_stderr", "to_hvkit"]

_PS_NS = "{http://schemas.microsoft.com/powershell/2004/04}"
_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_CATEGORY = re.compile(r"\+ CategoryInfo\s*:\s*(\w+):\s*\((.*?)\)\s*\[(.*?)\],\s*(\S+)")
_ERROR_ID = re.compile(r"\+ FullyQualifiedErrorId\s*:\s*(\S+)")


@attrs.frozen
class ErrorRecord:
    """One error as powershell.exe printed it: message, CategoryInfo and FullyQualifiedErrorId."""

    message: str
    category: str = ""
    target: str = ""
    activity: str = ""
    exception: str = ""
    error_id: str = ""
    text: str = ""  # everything the record printed

    @property
    def error_id_head(self) -> str:
        return self.error_id.split(",", 1)[0]


class HyperVError(Exception):
    """The PowerShell error behind an hvkit error (kept as its ``__cause__``)."""

    def __init__(self, record: ErrorRecord, template: str) -> None:
        super().__init__(f"{template}: {record.message} [{record.category}: {record.error_id}]")
        self.record = record
        self.template = template


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def parse_stderr(data: bytes) -> tuple[list[ErrorRecord], list[str], str]:
    """(error records, warnings, other text) from powershell.exe's stderr; progress records are dropped."""
    text = data.decode("utf-8", errors="replace")
    if not text.lstrip().startswith("#< CLIXML"):
        return ([ErrorRecord(message=text.strip(), text=text)] if text.strip() else []), [], text
    xml = text.split("\n", 1)[1] if "\n" in text else ""
    errors: list[str] = []
    warnings: list[str] = []
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return [ErrorRecord(message=text.strip(), text=text)], [], text
    for node in root:
        if node.tag == f"{_PS_NS}S":
            stream = (node.get("S") or "").lower()
            line = _unescape(node.text or "")
            if stream == "error":
                errors.append(line)
            elif stream == "warning":
                warnings.append(line.strip())
    if not errors:
        return [], warnings, ""
    return [_record("".join(errors))], warnings, ""


def _record(text: str) -> ErrorRecord:
    lines = text.replace("\r\n", "\n").split("\n")
    message_lines = []
    for line in lines:
        if line.startswith("At line:") or line.lstrip().startswith("+ "):
            break
        message_lines.append(line)
    message = "\n".join(message_lines).strip()
    activity = ""
    head = re.match(r"^([A-Za-z]+-[A-Za-z0-9]+) : ", message)
    if head:
        activity, message = head.group(1), message[head.end() :]
    category = _CATEGORY.search(text)
    error_id = _ERROR_ID.search(text)
    return ErrorRecord(
        message=message,
        category=category.group(1) if category else "",
        target=category.group(2) if category else "",
        activity=category.group(3) if category and category.group(3) else activity,
        exception=category.group(4) if category else "",
        error_id=error_id.group(1) if error_id else "",
        text=text,
    )


_BY_ID: dict[str, type[HvkitError]] = {
    "hvkit.VMNotFound": NotFound,
    "hvkit.PoolNotFound": NotFound,
    "hvkit.VolumeNotFound": NotFound,
    "hvkit.SnapshotNotFound": NotFound,
    "hvkit.AlreadyExists": AlreadyExists,
    "hvkit.InUse": InvalidState,
    "InvalidState": InvalidState,
}
_BY_CATEGORY: dict[str, type[HvkitError]] = {
    "ObjectNotFound": NotFound,
    "ResourceExists": AlreadyExists,
    "ResourceBusy": InvalidState,
    "InvalidOperation": InvalidState,
    "InvalidArgument": InvalidSpec,
    "InvalidData": InvalidSpec,
}
# binding and parse failures: the template does not fit this host's Hyper-V module (an hvkit bug or an old host)
_TEMPLATE_MISFITS = {
    "NamedParameterNotFound",
    "AmbiguousParameterSet",
    "MissingMandatoryParameter",
    "ParameterAlreadyBound",
    "ParseException",
    "CommandNotFoundException",
}
_NOT_FOUND_TEXT = re.compile(r"unable to find a virtual (machine|switch)|unable to find a snapshot", re.I)
# no room: Start-VM's "Not enough memory in the system to start the virtual machine" (error id OutOfMemory), and
# the HRESULTs a localised host prints too: E_OUTOFMEMORY, ERROR_NOT_ENOUGH_MEMORY, ERROR_NO_SYSTEM_RESOURCES,
# ERROR_DISK_FULL ("There is not enough space on the disk", New-VHD files it under InvalidArgument),
# ERROR_HANDLE_DISK_FULL
_NO_ROOM_IDS = {"OutOfMemory"}
_NO_ROOM_TEXT = re.compile(
    r"0x8007000E|0x80070008|0x800705AA|0x80070070|0x80070027|not enough space on the disk"
    r"|not enough memory in the system",
    re.I,
)


def to_hvkit(record: ErrorRecord, template: str) -> HvkitError:
    """The hvkit error for ``record`` (raised ``from`` a HyperVError that carries the record)."""
    head = record.error_id_head
    if head in _TEMPLATE_MISFITS:
        hint = (
            "the Hyper-V PowerShell module is not installed or not loaded on the host (Install-WindowsFeature "
            "Hyper-V-PowerShell)"
            if head == "CommandNotFoundException"
            else "this host's Hyper-V module does not take the call hvkit's template makes"
        )
        return BackendError(f"Hyper-V script {template} failed: {record.message} ({hint})")
    if (
        "double hop" in record.message.lower()
        or "No credentials are available in the security package" in record.message
    ):
        return BackendError(
            f"{record.message} - the host cannot pass your NTLM credentials on to a second machine (the double hop); "
            "on the source host run Set-VMHost -VirtualMachineMigrationAuthenticationType Kerberos and give it "
            "Kerberos constrained delegation (cifs and 'Microsoft Virtual System Migration Service') to the "
            "destination in Active Directory, or set CredSSP on both hosts and connect with auth=credssp"
        )
    cls = _BY_ID.get(head)
    if cls is None and (head in _NO_ROOM_IDS or _NO_ROOM_TEXT.search(f"{record.message}\n{record.text}")):
        cls = InsufficientCapacity
    if cls is None and _NOT_FOUND_TEXT.search(record.message):
        cls = NotFound
    if cls is None:
        cls = _BY_CATEGORY.get(record.category, BackendError)
    return cls(record.message or record.text.strip() or f"Hyper-V script {template} failed")
