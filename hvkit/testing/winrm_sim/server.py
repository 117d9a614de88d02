"""The HTTP(S) side of the WinRM endpoint: Negotiate/NTLM authentication and WinRM message encryption.

Authentication is pyspnego's NTLM acceptor (the server side of the protocol pywinrm's client speaks),
with channel binding to the TLS certificate over HTTPS. Bodies sent as ``multipart/encrypted``
(``application/HTTP-SPNEGO-session-encrypted``) are unsealed with the connection's security context
and the answer is sealed the same way. Plain HTTP bodies that are not encrypted are refused, as a
host with ``AllowUnencrypted=false`` (the Windows default) refuses them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
import re
import secrets
import ssl
import struct
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ._wsman import Runner, ShellService

__all__ = ["WinRMEndpoint"]

_BOUNDARY = b"--Encrypted Boundary"
_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
_CRED_LOCK = threading.Lock()
_CRED_ENTRIES: dict[tuple[str, str], str] = {}
_CRED_DIR = tempfile.mkdtemp(prefix="winrm-sim-")  # the NTLM acceptor reads its users from NTLM_USER_FILE
MAX_BODY = 64 * 1024 * 1024


def _register_user(domain: str, user: str, password: str) -> None:
    with _CRED_LOCK:
        _CRED_ENTRIES[(domain.upper(), user.upper())] = f"{domain}:{user}:{password}"
        path = Path(_CRED_DIR) / "ntlm-users"
        path.write_text("\n".join(_CRED_ENTRIES.values()) + "\n")
        path.chmod(0o600)
        os.environ["NTLM_USER_FILE"] = str(path)


def _make_cert(directory: Path) -> tuple[Path, Path, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "winrm.pem", directory / "winrm.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)
    return cert_file, key_file, cert.public_bytes(serialization.Encoding.DER)


class WinRMEndpoint:
    """A WinRM endpoint on 127.0.0.1 (``/wsman``) that runs commands through ``runner``.

    ``tls``: HTTPS (the certificate is in ``ca_file``) or plain HTTP (then only encrypted messages).
    ``users``: ``{"DOMAIN\\\\user" or "user": password}``; a random password for ``hvkit`` by default.
    """

    def __init__(
        self, runner: Runner, *, tls: bool = True, users: dict[str, str] | None = None, cbt: str = "relaxed"
    ) -> None:
        self.tls = tls
        self.cbt = cbt  # channel binding over HTTPS: "relaxed" (checked when sent) or "strict" (required)
        self.users = users or {"hvkit": secrets.token_urlsafe(12)}  # NTLM users are process-wide: use unique names
        self.shells = ShellService(runner)
        self.http_requests = 0
        self.soap_requests = 0
        self._count_lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="winrm-sim-")
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.ca_file = ""
        self.port = 0
        self._cbt_hash = b""

    def start(self) -> WinRMEndpoint:
        for name, password in self.users.items():
            domain, _, user = name.rpartition("\\")
            _register_user(domain, user, password)
        handler = type("Handler", (_Handler,), {"endpoint": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        if self.tls:
            cert_file, key_file, der = _make_cert(Path(self._tmp.name))
            self.ca_file = str(cert_file)
            self._cbt_hash = hashlib.sha256(der).digest()
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert_file, key_file)
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._tmp.cleanup()

    def __enter__(self) -> WinRMEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/wsman"

    def reset_counts(self) -> None:
        with self._count_lock:
            self.http_requests = self.soap_requests = 0
            self.shells.actions.clear()

    def _count(self, soap: bool) -> None:
        with self._count_lock:
            self.http_requests += 1
            self.soap_requests += soap


def _carries_bindings(token: bytes) -> bool:
    """Whether an NTLM AUTHENTICATE message holds channel bindings (other messages: False)."""
    from spnego._ntlm_raw.messages import Authenticate, AvId, NTClientChallengeV2

    if len(token) < 12 or token[8:12] != b"\x03\x00\x00\x00":
        return False
    try:
        response = Authenticate.unpack(token).nt_challenge_response or b""
        if len(response) <= 24:
            return False
        return AvId.channel_bindings in NTClientChallengeV2.unpack(response[16:]).av_pairs
    except Exception:
        return True  # unreadable: let the acceptor judge it with bindings


class _Handler(BaseHTTPRequestHandler):
    endpoint: WinRMEndpoint
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    _context: Any = None  # the connection's security context (NTLM authenticates a connection)
    _user: str | None = None

    def log_message(self, format: str, *args: Any) -> None:  # keep tests quiet
        pass

    def do_POST(self) -> None:
        if self.path.split("?")[0] != "/wsman":
            self._reply(404, b"", "text/plain")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self._reply(413, b"", "text/plain")
            return
        body = self.rfile.read(length) if length else b""
        auth = self.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() in ("negotiate", "ntlm") and token:
            if not self._step(scheme, token.strip()):
                return
        elif self._user is None:
            self.endpoint._count(False)
            self._challenge(None)
            return
        content_type = self.headers.get("Content-Type", "")
        encrypted = content_type.startswith("multipart/encrypted")
        if not body:
            self.endpoint._count(False)
            self._reply(200, b"", "application/soap+xml;charset=UTF-8")
            return
        if encrypted:
            try:
                body = self._unseal(body, content_type)
            except Exception:  # a body that does not unseal is refused like a bad signature
                self.close_connection = True
                self._reply(400, b"", "text/plain")
                return
        elif not self.endpoint.tls:
            # AllowUnencrypted=false: an unencrypted message over HTTP is refused
            self.endpoint._count(False)
            self._user = None
            self._challenge(None)
            return
        self.endpoint._count(True)
        status, answer = self.endpoint.shells.handle(body, self._user or "", self.endpoint.endpoint)
        if encrypted:
            self._reply(
                status, self._seal(answer), f'multipart/encrypted;protocol="{_PROTOCOL}";boundary="Encrypted Boundary"'
            )
        else:
            self._reply(status, answer, "application/soap+xml;charset=UTF-8")

    # -- authentication -------------------------------------------------------------------------------
    def _step(self, scheme: str, token: str) -> bool:
        import spnego

        self.endpoint._count(False)
        raw = base64.b64decode(token)
        if self._context is None or self._context.complete:
            self._context = spnego.server(protocol="ntlm")
            self._user = None
        bindings = None
        if self.endpoint.tls and (self.endpoint.cbt == "strict" or _carries_bindings(raw)):
            # CbtHardeningLevel: Relaxed (Windows' default) checks bindings a client sends; Strict demands them
            bindings = spnego.channel_bindings.GssChannelBindings(
                application_data=b"tls-server-end-point:" + self.endpoint._cbt_hash
            )
        try:
            out = self._context.step(raw, channel_bindings=bindings)
        except Exception:  # wrong password, bad bindings: access denied
            self._context = None
            self._challenge(None)
            return False
        if not self._context.complete:
            self._challenge(f"{scheme} {base64.b64encode(out or b'').decode()}")
            return False
        self._user = self._context.client_principal or ""
        return True

    def _challenge(self, header: str | None) -> None:
        self.send_response(401)
        if header:
            self.send_header("WWW-Authenticate", header)
        else:
            self.send_header("WWW-Authenticate", "Negotiate")
            self.send_header("WWW-Authenticate", "Kerberos")
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- message encryption ---------------------------------------------------------------------------
    def _unseal(self, body: bytes, content_type: str) -> bytes:
        if f'protocol="{_PROTOCOL}"' not in content_type or self._context is None:
            raise ValueError("not an SPNEGO session-encrypted message")
        parts = [p for p in body.split(_BOUNDARY + b"\r\n") if p]
        header, payload = parts[0], parts[1]
        length = int(re.search(rb"Length=(\d+)", header).group(1))  # type: ignore[union-attr]
        if payload.endswith(_BOUNDARY + b"--\r\n"):
            payload = payload[: -len(_BOUNDARY + b"--\r\n")]
        payload = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"", 1)
        sig_len = struct.unpack("<i", payload[:4])[0]
        signature, sealed = payload[4 : 4 + sig_len], payload[4 + sig_len :]
        plain: bytes = self._context.unwrap(signature + sealed).data
        if len(plain) != length:
            raise ValueError("encrypted length does not match")
        return plain

    def _seal(self, message: bytes) -> bytes:
        wrapped: bytes = self._context.wrap(message, encrypt=True).data
        signature, sealed = wrapped[:16], wrapped[16:]
        return (
            _BOUNDARY + b"\r\n\tContent-Type: " + _PROTOCOL.encode() + b"\r\n"
            b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length="
            + str(len(message)).encode()
            + b"\r\n"
            + _BOUNDARY
            + b"\r\n\tContent-Type: application/octet-stream\r\n"
            + struct.pack("<i", len(signature))
            + signature
            + sealed
            + _BOUNDARY
            + b"--\r\n"
        )

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
