"""The WS-Management shell protocol (WinRS): Create, Command, Send, Receive, Signal, Delete and faults.

Responses use the namespace prefixes, headers and fault shapes a Windows host sends (checked against
recorded transcripts in ``tests/hyperv/test_winrm_transcripts.py``).
"""

from __future__ import annotations

import base64
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from xml.sax.saxutils import escape

import attrs

__all__ = ["NS", "Process", "Runner", "ShellService", "WSManFault"]

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "e": "http://schemas.xmlsoap.org/ws/2004/08/eventing",
    "n": "http://schemas.xmlsoap.org/ws/2004/09/enumeration",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}
SHELL = NS["rsp"]
_QUOT = {'"': "&quot;"}
CMD_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
ACTIONS = {
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create": "create",
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete": "delete",
    f"{SHELL}/Command": "command",
    f"{SHELL}/Send": "send",
    f"{SHELL}/Receive": "receive",
    f"{SHELL}/Signal": "signal",
}
_RESPONSE_NS = {  # the prefixes a Windows host declares on each kind of response
    "create": ("s", "a", "x", "w", "rsp", "p"),
    "command": ("s", "a", "x", "w", "rsp", "p"),
    "send": ("s", "a", "x", "w", "rsp", "p"),
    "receive": ("s", "a", "w", "rsp", "p"),
    "signal": ("s", "a", "x", "w", "rsp", "p"),
    "delete": ("s", "a", "w", "p"),
    "fault": ("s", "a", "x", "e", "n", "w", "p"),
}


@attrs.define
class Process:
    """What a command produced: the Runner's answer."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0


# (shell owner, command line words, stdin bytes) -> Process
Runner = Callable[[str, list[str], bytes], Process]


class WSManFault(Exception):
    """A SOAP fault, rendered as a Windows host renders it (HTTP 500)."""

    def __init__(
        self, code: str, subcode: str, reason: str, wsman_code: int, message: str, detail: str = "", provider: str = ""
    ) -> None:
        super().__init__(reason)
        self.code, self.subcode, self.reason = code, subcode, reason
        self.wsman_code, self.message, self.detail, self.provider = wsman_code, message, detail, provider


def timed_out() -> WSManFault:
    text = "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  "
    return WSManFault("s:Receiver", "w:TimedOut", text, 2150858793, text)


def invalid_selectors(message: str) -> WSManFault:
    return WSManFault(
        "s:Sender",
        "w:InvalidSelectors",
        "The WS-Management service cannot process the request because the request contained invalid selectors "
        "for the resource. ",
        2150858843,
        message,
        "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors",
    )


def _bad_request(reason: str) -> WSManFault:
    return WSManFault("s:Sender", "w:SchemaValidationError", reason, 2150858817, reason)


@attrs.define
class _Command:
    words: list[str]
    stdin: bytearray = attrs.field(factory=bytearray)
    stdin_closed: bool = False
    result: Process | None = None
    delivered: bool = False
    changed: threading.Condition = attrs.field(factory=threading.Condition)


@attrs.define
class _Shell:
    owner: str
    commands: dict[str, _Command] = attrs.field(factory=dict)


class ShellService:
    """The shells of one endpoint. ``runner`` executes a command once its stdin is closed."""

    def __init__(self, runner: Runner, machine: str = "127.0.0.1") -> None:
        self.runner = runner
        self.machine = machine
        self.shells: dict[str, _Shell] = {}
        self.actions: list[str] = []  # every action handled, in order (for round-trip counts)
        self._lock = threading.Lock()

    # -- entry point ----------------------------------------------------------------------------------
    def handle(self, body: bytes, user: str, address: str) -> tuple[int, bytes]:
        """Answer one SOAP envelope: (HTTP status, response envelope)."""
        try:
            root = ET.fromstring(body)
        except ET.ParseError as exc:
            return 400, f"malformed XML: {exc}".encode()
        relates = _text(root, "s:Header/a:MessageID") or ""
        action_uri = _text(root, "s:Header/a:Action") or ""
        action = ACTIONS.get(action_uri)
        try:
            if action is None:
                raise WSManFault(
                    "s:Sender",
                    "a:ActionNotSupported",
                    "The action is not supported by the service. ",
                    2150858754,
                    f"The WS-Management service cannot process the request. The action {action_uri} is not supported.",
                )
            self._check_header(root)
            with self._lock:
                self.actions.append(action)
            body_xml = getattr(self, f"_{action}")(root, user, address)
        except WSManFault as fault:
            return 500, self._fault(fault, relates)
        return 200, self._envelope(action, f"{_ACTION_URI[action]}", relates, body_xml)

    # -- actions --------------------------------------------------------------------------------------
    def _create(self, root: ET.Element, user: str, address: str) -> str:
        if _text(root, "s:Header/w:ResourceURI") != CMD_URI:
            raise _bad_request("only the cmd shell resource is offered by this endpoint")
        shell_id = str(uuid.uuid4()).upper()
        with self._lock:
            self.shells[shell_id] = _Shell(owner=user)
        echoed = ""  # the host echoes the shell's environment and working directory
        asked = root.find("s:Body/rsp:Shell", NS)
        if asked is not None:
            variables = "".join(
                f'<rsp:Variable Name="{escape(v.get("Name", ""), _QUOT)}">{escape(v.text or "")}</rsp:Variable>'
                for v in asked.findall("rsp:Environment/rsp:Variable", NS)
            )
            if variables:
                echoed += f"<rsp:Environment>{variables}</rsp:Environment>"
            directory = asked.findtext("rsp:WorkingDirectory", namespaces=NS)
            if directory is not None:
                echoed += f"<rsp:WorkingDirectory>{escape(directory)}</rsp:WorkingDirectory>"
        return (
            f"<x:ResourceCreated><a:Address>{escape(address)}</a:Address><a:ReferenceParameters>"
            f'<w:ResourceURI>{CMD_URI}</w:ResourceURI><w:SelectorSet><w:Selector Name="ShellId">{shell_id}'
            f"</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>"
            f'<rsp:Shell xmlns:rsp="{SHELL}"><rsp:ShellId>{shell_id}</rsp:ShellId>'
            f"<rsp:ResourceUri>{CMD_URI}</rsp:ResourceUri><rsp:Owner>{escape(user)}</rsp:Owner>"
            f"<rsp:ClientIP>127.0.0.1</rsp:ClientIP><rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut>"
            f"<rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams>"
            f"<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity>"
            f"{echoed}</rsp:Shell>"
        )

    def _delete(self, root: ET.Element, user: str, address: str) -> str:
        shell_id = self._shell_id(root)
        with self._lock:
            del self.shells[shell_id]
        return ""

    def _command(self, root: ET.Element, user: str, address: str) -> str:
        shell = self.shells[self._shell_id(root)]
        line = root.find("s:Body/rsp:CommandLine", NS)
        if line is None:
            raise _bad_request("the Command request has no CommandLine")
        words = [_text(line, "rsp:Command") or ""]
        for arg in line.findall("rsp:Arguments", NS):
            words.extend((arg.text or "").split(" ") if arg.text else [])
        command_id = str(uuid.uuid4()).upper()
        command = _Command(words=[w for w in words if w])
        shell.commands[command_id] = command
        if "-" not in command.words[1:]:  # reads no stdin: runs at once
            with command.changed:
                command.stdin_closed = True
                self._run(shell, command)
        return f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"

    def _send(self, root: ET.Element, user: str, address: str) -> str:
        shell = self.shells[self._shell_id(root)]
        for stream in root.findall("s:Body/rsp:Send/rsp:Stream", NS):
            command = self._command_of(shell, stream.get("CommandId", ""))
            if stream.get("Name") != "stdin":
                raise _bad_request("only the stdin stream takes input")
            with command.changed:
                if command.stdin_closed:
                    raise WSManFault(
                        "s:Sender",
                        "w:InvalidParameter",
                        "The parameter is incorrect. ",
                        87,
                        "The input stream of this command was already closed.",
                    )
                command.stdin += base64.b64decode(stream.text or "")
                if (stream.get("End") or "").lower() == "true":
                    command.stdin_closed = True
                    self._run(shell, command)
        return "<rsp:SendResponse/>"

    def _receive(self, root: ET.Element, user: str, address: str) -> str:
        shell = self.shells[self._shell_id(root)]
        desired = root.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
        command_id = desired.get("CommandId", "") if desired is not None else ""
        if not command_id:  # a Receive for the shell rather than a command: cmd's plugin refuses it
            raise WSManFault(
                "s:Sender",
                "w:InvalidParameter",
                "The parameter is incorrect. ",
                87,
                "The parameter is incorrect. ",
                "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/InvalidValue",
                provider="Shell cmd plugin",
            )
        command = self._command_of(shell, command_id)
        deadline = time.monotonic() + _seconds(_text(root, "s:Header/w:OperationTimeout") or "PT60S")
        with command.changed:
            while command.result is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise timed_out()
                command.changed.wait(left)
            result = command.result
        command.delivered = True
        parts = []
        for name, data in (("stdout", result.stdout), ("stderr", result.stderr)):
            for offset in range(0, len(data), 96 * 1024):  # chunked as a host does for long output
                chunk = base64.b64encode(data[offset : offset + 96 * 1024]).decode()
                parts.append(f'<rsp:Stream Name="{name}" CommandId="{command_id}">{chunk}</rsp:Stream>')
            parts.append(f'<rsp:Stream Name="{name}" CommandId="{command_id}" End="true"></rsp:Stream>')
        state = f"{SHELL}/CommandState/Done"
        parts.append(
            f'<rsp:CommandState CommandId="{command_id}" State="{state}">'
            f"<rsp:ExitCode>{result.exit_code}</rsp:ExitCode></rsp:CommandState>"
        )
        return "<rsp:ReceiveResponse>" + "".join(parts) + "</rsp:ReceiveResponse>"

    def _signal(self, root: ET.Element, user: str, address: str) -> str:
        shell = self.shells[self._shell_id(root)]
        signal = root.find("s:Body/rsp:Signal", NS)
        command_id = signal.get("CommandId", "") if signal is not None else ""
        self._command_of(shell, command_id)
        code = _text(root, "s:Body/rsp:Signal/rsp:Code") or ""
        if not code.startswith(f"{SHELL}/signal/"):
            raise _bad_request(f"unknown signal {code!r}")
        del shell.commands[command_id]
        return "<rsp:SignalResponse/>"

    # -- helpers --------------------------------------------------------------------------------------
    def _run(self, shell: _Shell, command: _Command) -> None:
        """Start the process in the background; Receive waits for it (or answers TimedOut)."""

        def work() -> None:
            try:
                result = self.runner(shell.owner, command.words, bytes(command.stdin))
            except Exception as exc:  # a bug in the host model: show it as a failed process, not a hang
                result = Process(stderr=f"host model error: {exc!r}".encode(), exit_code=1)
            with command.changed:
                command.result = result
                command.changed.notify_all()

        threading.Thread(target=work, daemon=True, name="winrs-command").start()

    def _check_header(self, root: ET.Element) -> None:
        for path in ("s:Header/a:Action", "s:Header/a:MessageID", "s:Header/a:To", "s:Header/w:ResourceURI"):
            if root.find(path, NS) is None:
                raise _bad_request(f"the request header lacks {path.rsplit('/', 1)[1]}")

    def _shell_id(self, root: ET.Element) -> str:
        selector = root.find("s:Header/w:SelectorSet/w:Selector[@Name='ShellId']", NS)
        shell_id = (selector.text or "").upper() if selector is not None else ""
        if shell_id not in self.shells:
            raise invalid_selectors(
                "The WS-Management service cannot process the request because the request contained invalid "
                "selectors for the resource. "
            )
        return shell_id

    @staticmethod
    def _command_of(shell: _Shell, command_id: str) -> _Command:
        command = shell.commands.get(command_id.upper())
        if command is None:
            raise invalid_selectors(
                "The Windows Remote Shell received a request to perform an operation on a command identifier that "
                "does not exist. Either the command has completed execution or the client specified an invalid "
                "command identifier. "
            )
        return command

    def _envelope(self, kind: str, action_uri: str, relates: str, body: str) -> bytes:
        decls = " ".join(f'xmlns:{p}="{NS[p]}"' for p in _RESPONSE_NS[kind])
        body_xml = f"<s:Body>{body}</s:Body>"
        return (
            f'<s:Envelope xml:lang="en-US" {decls}><s:Header><a:Action>{action_uri}</a:Action>'
            f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID><a:To>{ANONYMOUS}</a:To>"
            f"<a:RelatesTo>{escape(relates)}</a:RelatesTo></s:Header>{body_xml}</s:Envelope>"
        ).encode()

    def _fault(self, fault: WSManFault, relates: str) -> bytes:
        detail = f"<w:FaultDetail>{fault.detail}</w:FaultDetail>" if fault.detail else ""
        message = escape(fault.message)
        if fault.provider:  # a plugin's fault is wrapped in a ProviderFault naming it
            dll = r"%systemroot%\system32\winrscmd.dll"
            message = f'<f:ProviderFault provider="{fault.provider}" path="{dll}">{message}</f:ProviderFault>'
        body = (
            f"<s:Fault><s:Code><s:Value>{fault.code}</s:Value><s:Subcode><s:Value>{fault.subcode}</s:Value>"
            f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{escape(fault.reason)}</s:Text></s:Reason>'
            f'<s:Detail>{detail}<f:WSManFault xmlns:f="{NS["f"]}" Code="{fault.wsman_code}" '
            f'Machine="{self.machine}"><f:Message>{message}</f:Message></f:WSManFault>'
            f"</s:Detail></s:Fault>"
        )
        return self._envelope("fault", "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates, body)


_ACTION_URI = {
    "create": "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse",
    "delete": "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse",
    "command": f"{SHELL}/CommandResponse",
    "send": f"{SHELL}/SendResponse",
    "receive": f"{SHELL}/ReceiveResponse",
    "signal": f"{SHELL}/SignalResponse",
}


def _text(root: ET.Element, path: str) -> str | None:
    node = root.find(path, NS)
    return None if node is None else (node.text or "")


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?", duration.strip())
    if not match:
        return 60.0
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds
