"""One WinRM connection to a Hyper-V host: one pywinrm Protocol, one shell kept open, one round trip per call.

Each operation runs ``powershell -NoProfile -NonInteractive -Command -`` in the connection's shell and
sends, over stdin (never ``-EncodedCommand`` and its 8,191-character limit), a one-line bootstrap, the
operation's fixed template and its parameters as one JSON line. The template prints one compact JSON
document; stderr carries CLIXML records, of which progress is dropped and errors are translated.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import re
import threading
import time
from typing import Any

from ...driver import ConnectOptions
from ...errors import AuthenticationError, BackendError, ConnectionError, InvalidSpec, NotFound, Timeout
from ._errors import HyperVError, parse_stderr, to_hvkit
from ._templates import template

__all__ = ["BOOTSTRAP", "Session"]

log = logging.getLogger("hvkit.hyperv")

BOOTSTRAP = (
    "$ProgressPreference='SilentlyContinue';$ErrorActionPreference='Stop';"
    '$hvkIn=[Console]::In.ReadToEnd();$hvkAt=$hvkIn.LastIndexOf("`n#hvkit-params`n");'
    "$hvkJson=(& ([ScriptBlock]::Create($hvkIn.Substring(0,$hvkAt))) "
    "(ConvertFrom-Json $hvkIn.Substring($hvkAt+15))) -join '';"
    "[Console]::Out.Write([Regex]::Replace($hvkJson,'[^\\x00-\\x7e]',{param($m) '\\u{0:x4}' -f [int][char]$m.Value}))"
)
PARAMS_MARK = "\n#hvkit-params\n"
COMMAND = ("powershell", ["-NoProfile", "-NonInteractive", "-Command", "-"])
STDIN_CHUNK = 64 * 1024  # bytes per Send: an envelope stays far below WinRM's MaxEnvelopeSize (150 KiB default)
_AUTHS = ("ntlm", "kerberos", "credssp")
_SECRET_HEADER = re.compile(r"((?:Negotiate|NTLM|Kerberos|Basic|CredSSP)\s+)[A-Za-z0-9+/=]{8,}", re.I)


class _Redact(logging.Filter):
    """Hides passwords and Authorization tokens in what pywinrm, requests and urllib3 log."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = _SECRET_HEADER.sub(r"\1***", text)
        for secret in self.secrets:
            if secret:
                clean = clean.replace(secret, "***")
        if clean != text:
            record.msg, record.args = clean, ()
        return True


_REDACT = _Redact()
for _name in ("winrm", "requests_ntlm", "requests_kerberos", "requests_credssp", "urllib3", "spnego"):
    logging.getLogger(_name).addFilter(_REDACT)


class Session:
    """The connection's settings, its pywinrm Protocol and its one open shell."""

    def __init__(self, options: ConnectOptions) -> None:
        url = options.url
        self.options = options
        if url.transport not in (None, "http", "https"):
            raise InvalidSpec(f"hyperv+{url.transport}:// is not a transport; use hyperv:// (HTTPS) or hyperv+http://")
        self.https = url.transport != "http"
        if not url.host:
            raise InvalidSpec("a Hyper-V URL names the host: hyperv://user@host")
        self.host = url.host
        self.port = url.port or (5986 if self.https else 5985)
        self.username = options.username or url.username
        self.password = options.password or url.password
        if not self.username or not self.password:
            raise InvalidSpec("Hyper-V needs a user and a password (hyperv://user@host, password=...)")
        self.auth = str(options.option("auth", "ntlm")).lower()
        if self.auth not in _AUTHS:
            raise InvalidSpec(f"auth={self.auth!r} is not offered; choose one of {', '.join(_AUTHS)}")
        encrypt = options.bool_option("message_encryption", True)
        if not self.https and not encrypt:
            raise InvalidSpec(
                "hyperv+http:// without message encryption would send credentials and VM data in the clear, and "
                "Windows refuses it by default (AllowUnencrypted=false): use hyperv:// (HTTPS, port 5986) or keep "
                "message_encryption on"
            )
        if self.auth == "kerberos":
            self._check_kerberos()
        if self.auth == "credssp":
            _need("requests_credssp", "CredSSP", "pip install 'pywinrm[credssp]'")
        self.timeout = max(1, int(options.timeout))
        self.pool_dirs = _pool_option(str(options.option("pools", "") or ""))  # pool name -> storage path
        # hosts Move-VM may send this host's VMs to (each set up for migration with this one)
        self.migration_hosts = [
            n.strip() for n in str(options.option("migration_hosts", "") or "").split(",") if n.strip()
        ]
        _REDACT.secrets.add(self.password)
        self.vhd_path = ""  # the host's VirtualHardDiskPath, once read
        self.round_trips = 0  # scripts run (each: Command, Send, Receive, Signal)
        self._lock = threading.Lock()
        self._protocol: Any = None
        self._shell: str | None = None

    def _check_kerberos(self) -> None:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            pass
        else:
            raise InvalidSpec(
                f"Kerberos needs the host's DNS name (its service principal is HTTP/<name>), not the address "
                f"{self.host}: connect by name, or use auth=ntlm"
            )
        if not self.https and not self.options.bool_option("message_encryption", True):
            raise InvalidSpec("Kerberos over HTTP needs message encryption; use hyperv:// (HTTPS) or keep it on")
        _need("requests_kerberos", "Kerberos", "pip install 'pywinrm[kerberos]' (and a ticket: kinit user@REALM)")

    def pool_dir(self, name: str) -> str:
        """The storage path of pool ``name``; NotFound when there is none."""
        for key, path in self.pool_dirs.items():
            if key.lower() == name.lower():
                return path
        raise NotFound(f"no storage pool {name!r} on this Hyper-V host (pools: {', '.join(self.pool_dirs)})")

    def pool_name(self, path: str) -> str | None:
        """The pool a file lies in (the longest matching storage path)."""
        lower = path.lower()
        best: tuple[int, str] | None = None
        for name, root in self.pool_dirs.items():
            prefix = root.lower().rstrip("\\") + "\\"
            if lower.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), name)
        return best[1] if best else None

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.https else 'http'}://{host}:{self.port}/wsman"

    # -- connection -----------------------------------------------------------------------------------
    def connect(self) -> None:
        from winrm.protocol import Protocol

        verify = self.options.verify_tls
        self._protocol = Protocol(
            self.endpoint,
            transport=self.auth,  # type: ignore[arg-type]
            username=self.username,
            password=self.password,
            server_cert_validation="validate" if verify else "ignore",
            ca_trust_path=self.options.ca_file if verify and self.options.ca_file else None,  # type: ignore[arg-type]
            read_timeout_sec=self.timeout + 10,
            operation_timeout_sec=self.timeout,
            message_encryption="auto" if self.https else "always",
            proxy=None,
        )
        with self._translate_transport():
            self._shell = self._protocol.open_shell()

    def close(self) -> None:
        if self._protocol is not None and self._shell is not None:
            try:
                self._protocol.close_shell(self._shell)
            except Exception as exc:  # closing must not raise
                log.debug("closing the WinRM shell failed: %s", type(exc).__name__)
        self._protocol = self._shell = None

    # -- one operation --------------------------------------------------------------------------------
    def run(self, template_id: str, params: dict[str, Any], *, limit: float | None = None) -> Any:
        """Run template ``template_id`` with ``params``; return its JSON document, or raise the hvkit error.

        ``limit``: seconds the script may run (Timeout after, the command stopped); None waits as long as
        the host works (an export of a large disk takes its time), each HTTP call within its own timeout.
        """
        tpl = template(template_id)
        stdin = (BOOTSTRAP + "\n" + tpl.text + PARAMS_MARK + json.dumps(params, ensure_ascii=True) + "\n").encode(
            "ascii"
        )
        with self._lock:
            if self._protocol is None:
                raise ConnectionError("the Hyper-V connection is closed")
            try:
                stdout, stderr, code = self._execute(stdin, limit)
            finally:
                self.round_trips += 1
        records, warnings, _ = parse_stderr(stderr)
        for warning in warnings:
            log.warning("%s: %s", tpl.id, warning)
        if records:
            record = records[0]
            raise to_hvkit(record, f"{tpl.id} v{tpl.version}") from HyperVError(record, f"{tpl.id} v{tpl.version}")
        if code != 0:
            raise BackendError(f"Hyper-V script {tpl.id} v{tpl.version} exited with {code} and no error record")
        try:
            return json.loads(stdout.decode("utf-8"))
        except ValueError as exc:
            raise BackendError(f"Hyper-V script {tpl.id} v{tpl.version} printed no JSON document") from exc

    def _execute(self, stdin: bytes, limit: float | None) -> tuple[bytes, bytes, int]:
        deadline = None if limit is None else time.monotonic() + limit
        wait = self._protocol.operation_timeout_sec
        if limit is not None:  # each Receive waits at most the limit on the host
            self._protocol.operation_timeout_sec = max(1, min(int(limit), self.timeout))
        try:
            return self._execute_command(stdin, deadline, limit)
        finally:
            self._protocol.operation_timeout_sec = wait

    def _execute_command(self, stdin: bytes, deadline: float | None, limit: float | None) -> tuple[bytes, bytes, int]:
        from winrm.exceptions import WinRMOperationTimeoutError, WSManFaultError

        for attempt in (1, 2):
            try:
                with self._translate_transport():
                    command = self._protocol.run_command(self._shell, COMMAND[0], COMMAND[1])
                break
            except ConnectionError as exc:  # the shell expired on the host (idle timeout): open a new one once
                cause = exc.__cause__
                if attempt == 2 or not (isinstance(cause, WSManFaultError) and cause.wsman_fault_code == 2150858843):
                    raise
                with self._translate_transport():
                    self._shell = self._protocol.open_shell()
        with self._translate_transport():
            for offset in range(0, len(stdin), STDIN_CHUNK):
                end = offset + STDIN_CHUNK >= len(stdin)
                self._protocol.send_command_input(self._shell, command, stdin[offset : offset + STDIN_CHUNK], end=end)
            out: list[bytes] = []
            err: list[bytes] = []
            done, code = False, -1
            while not done:
                try:
                    chunk_out, chunk_err, code, done = self._protocol.get_command_output_raw(self._shell, command)
                except WinRMOperationTimeoutError:  # the host had no output within OperationTimeout yet
                    if deadline is not None and time.monotonic() > deadline:
                        with contextlib.suppress(Exception):  # stop the script: Signal terminate
                            self._protocol.cleanup_command(self._shell, command)
                        raise Timeout(f"the Hyper-V host did not finish within {limit:.0f} s") from None
                    continue
                out.append(chunk_out)
                err.append(chunk_err)
            self._protocol.cleanup_command(self._shell, command)
        return b"".join(out), b"".join(err), code

    def _translate_transport(self) -> _TransportErrors:
        return _TransportErrors(self)


class _TransportErrors:
    """Turns pywinrm/requests failures into hvkit errors that say which setting to change."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None or not isinstance(exc, Exception):
            return
        import requests
        from winrm.exceptions import InvalidCredentialsError, WinRMError, WinRMTransportError, WSManFaultError

        s = self.s
        where = f"{s.endpoint} (user {s.username}, auth={s.auth})"
        if isinstance(exc, InvalidCredentialsError):
            hint = ""
            if not s.https:
                hint = (
                    "; over hyperv+http:// the host must allow the chosen auth with message encryption "
                    "(winrm get winrm/config/service/auth)"
                )
            raise AuthenticationError(f"the Hyper-V host rejected the credentials at {where}{hint}") from exc
        if isinstance(exc, requests.exceptions.SSLError):
            raise ConnectionError(
                f"TLS certificate verification failed for {s.endpoint}: pass ca_file=<the host's CA or certificate "
                "PEM>, or verify_tls=False to skip the check (not recommended)"
            ) from exc
        if isinstance(exc, requests.exceptions.Timeout):
            raise Timeout(f"the Hyper-V host at {s.endpoint} did not answer within {s.timeout + 10} s") from exc
        if isinstance(exc, requests.exceptions.ConnectionError):
            port_hint = "5986 (HTTPS listener)" if s.https else "5985 (HTTP listener)"
            raise ConnectionError(
                f"cannot reach WinRM at {s.endpoint}: is WinRM listening on {port_hint}? "
                "(winrm quickconfig -transport:https on the host)"
            ) from exc
        if isinstance(exc, WSManFaultError):
            raise ConnectionError(f"WS-Management fault from {s.endpoint}: {exc.reason}") from exc
        if isinstance(exc, WinRMTransportError):
            raise ConnectionError(f"WinRM transport error from {s.endpoint}: HTTP {exc.code}") from exc
        if isinstance(exc, WinRMError):
            raise ConnectionError(f"WinRM set-up failed for {where}: {exc}") from exc


def _pool_option(text: str) -> dict[str, str]:
    """``fast=D:/VMs,E:/Slow`` as ``{"fast": "D:\\VMs", "Slow": "E:\\Slow"}`` (a path alone: its last part)."""
    out: dict[str, str] = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        name, eq, path = item.partition("=")
        if not eq:
            name, path = "", item
        path = path.strip().replace("/", "\\").rstrip("\\")
        if len(path) < 3 or path[1] != ":" or not path[0].isalpha():
            raise InvalidSpec(f"pools: {path!r} is not an absolute Windows path (like D:/VMs)")
        name = name.strip() or path.rsplit("\\", 1)[-1]
        out[name] = path
    return out


def _need(module: str, what: str, install: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise BackendError(f"{what} authentication needs the {module} package: {install}")
