"""The HTTPS server: PVE's auth (ticket + CSRF token, API tokens), /api2/json routing, PVE's errors."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import secrets
import ssl
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from . import _ha_manager as ha_manager
from .api import ROUTES, Request
from .schema import check_params, schema
from .state import Cluster, PVEError

__all__ = ["ProxmoxSimulator"]

_ROUTE_RES = [
    (re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"), path)
    for path in sorted(schema()["paths"], key=len, reverse=True)
]
_WRITE_METHODS = {"POST", "PUT", "DELETE"}
MAX_BODY = 8 * 1024**3


def _make_certs(directory: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Proxmox Virtual Environment (simulated CA)")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = directory / "pve-root-ca.pem", directory / "pve-ssl.pem", directory / "pve-ssl.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


class ProxmoxSimulator:
    """A Proxmox VE API on 127.0.0.1 (HTTPS, random port) for offline tests.

    >>> with ProxmoxSimulator(nodes=3) as sim:
    ...     hv = hvkit.connect(sim.url, token=sim.token, ca_file=sim.ca_file)

    Users: ``root@pam`` (password ``sim.password``; API token ``sim.token``) may do everything;
    ``audit@pve`` (password ``sim.password``) may only read. ``task_delay`` is the length of one
    task step in seconds; ``lock_timeout`` how long a config lock is waited for (PVE: 10 s).
    """

    def __init__(
        self,
        nodes: int | list[str] = 2,
        *,
        root: str | Path | None = None,
        task_delay: float = 0.05,
        lock_timeout: float = 1.0,
        capacity_gib: int = 200,
        password: str | None = None,
    ) -> None:
        names = [f"pve{i + 1}" for i in range(nodes)] if isinstance(nodes, int) else list(nodes)
        self._tmp = tempfile.TemporaryDirectory(prefix="pve-sim-") if root is None else None
        self.root = Path(self._tmp.name if self._tmp else root)  # type: ignore[arg-type]
        self.cluster = Cluster(
            self.root / "storage",
            names,
            task_delay=task_delay,
            lock_timeout=lock_timeout,
            capacity=capacity_gib * 1024**3,
        )
        self.password = password or secrets.token_urlsafe(12)
        self.token_id = "root@pam!hvkit"
        self.token_secret = str(__import__("uuid").uuid4())
        self.users = {"root@pam": self.password, "audit@pve": self.password}
        self.tickets: dict[str, tuple[str, str, float]] = {}  # ticket -> (user, csrf, birth)
        self.request_count = 0
        self.requests: list[tuple[str, str]] = []
        self._count_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.ca_file = ""
        self.port = 0

    # -- life cycle -----------------------------------------------------------------------------------
    def start(self) -> ProxmoxSimulator:
        certs = self.root / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        ca_file, cert_file, key_file = _make_certs(certs)
        self.ca_file = str(ca_file)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        handler = type("Handler", (_Handler,), {"sim": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="pve-sim"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for task in list(self.cluster.runner.tasks.values()):
            task.done.wait(5)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> ProxmoxSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what clients need ----------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"localhost:{self.port}"

    @property
    def url(self) -> str:
        return f"proxmox://root@pam@localhost:{self.port}"

    @property
    def token(self) -> str:
        return f"{self.token_id}={self.token_secret}"

    @property
    def nodes(self) -> list[str]:
        return list(self.cluster.nodes)

    def reset_counts(self) -> None:
        with self._count_lock:
            self.request_count = 0
            self.requests.clear()

    def populate(self, count: int, *, running_every: int = 2) -> None:
        """Add ``count`` VMs (config only, no disk files) spread over the nodes, for inventory tests."""
        from ._values import mac_for
        from .state import VMState

        c = self.cluster
        with c.mu:
            for i in range(count):
                vmid = c.nextid()
                node = c.nodes[i % len(c.nodes)]
                vm = VMState(
                    vmid,
                    node,
                    {
                        "name": f"vm-{vmid}",
                        "cores": "2",
                        "memory": "2048",
                        "ostype": "l26",
                        "net0": f"virtio={mac_for(vmid, 0)},bridge=vmbr0",
                        "scsihw": "virtio-scsi-single",
                        "scsi0": f"local-lvm:vm-{vmid}-disk-0,size=32G",
                        "tags": "bench",
                    },
                )
                if i % running_every == 0:
                    vm.status = vm.qmpstatus = "running"
                    vm.started = time.time()
                c.vms[vmid] = vm

    # -- request handling ---------------------------------------------------------------------------------
    def authenticate(self, headers: Any, method: str) -> str:
        auth = headers.get("Authorization", "")
        if auth.startswith("PVEAPIToken="):
            ident, _, secret = auth[len("PVEAPIToken=") :].partition("=")
            if ident != self.token_id or not secrets.compare_digest(secret, self.token_secret):
                raise PVEError(401, "invalid token value!")
            return str(ident.split("!")[0])
        cookie = headers.get("Cookie", "")
        match = re.search(r"PVEAuthCookie=([^;]+)", cookie)
        if not match:
            raise PVEError(401, "No ticket")
        ticket = urllib.parse.unquote(match.group(1))
        found = self.tickets.get(ticket)
        if found is None or time.time() - found[2] > 7200:
            raise PVEError(401, "permission denied - invalid PVE ticket")
        user, csrf, _ = found
        if method in _WRITE_METHODS and headers.get("CSRFPreventionToken") != csrf:
            raise PVEError(401, "Permission denied - invalid csrf token")
        return user

    def login(self, params: dict[str, str]) -> dict[str, Any]:
        user = params.get("username", "")
        if "@" not in user and params.get("realm"):
            user = f"{user}@{params['realm']}"
        password = params.get("password", "")
        if password in self.tickets and self.tickets[password][0] == user:  # ticket renewal
            pass
        elif user not in self.users or not secrets.compare_digest(password, self.users[user]):
            raise PVEError(401, "authentication failure")
        ticket = f"PVE:{user}:{int(time.time()):08X}::{secrets.token_urlsafe(32)}"
        csrf = f"{int(time.time()):08X}:{secrets.token_urlsafe(24)}"
        self.tickets[ticket] = (user, csrf, time.time())
        return {"username": user, "ticket": ticket, "CSRFPreventionToken": csrf, "cap": {}}

    def dispatch(self, method: str, path: str, headers: Any, params: dict[str, str], files: dict[str, Path]) -> Any:
        with self._count_lock:
            self.request_count += 1
            self.requests.append((method, path))
        for rx, template in _ROUTE_RES:
            m = rx.match(path)
            if m and ((template, method) in ROUTES or (template, method) == ("/access/ticket", "POST")):
                break
        else:
            raise PVEError(501, f"Method '{method} {path}' not implemented")
        all_params = {**params, **{k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}}
        if template == "/access/ticket":
            errors = check_params(template, method, all_params)
            if errors:
                raise PVEError(400, "Parameter verification failed.", errors)
            return self.login(all_params)
        user = self.authenticate(headers, method)
        errors = check_params(template, method, all_params)
        if errors:
            raise PVEError(400, "Parameter verification failed.", errors)
        if user == "audit@pve" and method in _WRITE_METHODS:
            what = f"/vms/{all_params['vmid']}" if "vmid" in all_params else f"/nodes/{all_params.get('node', '')}"
            raise PVEError(403, f"Permission check failed ({what}, VM.Allocate)")
        ha_manager.step(self.cluster)  # the HA manager's rounds since the last request
        return ROUTES[(template, method)](Request(self.cluster, user, all_params, files))


class _Handler(BaseHTTPRequestHandler):
    sim: ProxmoxSimulator
    protocol_version = "HTTP/1.1"
    server_version = "pve-api-daemon/3.0"
    disable_nagle_algorithm = True  # headers and body go out as they are written: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _handle(self) -> None:
        files: dict[str, Path] = {}
        try:
            parsed = urllib.parse.urlsplit(self.path)
            if not parsed.path.startswith("/api2/json/"):
                raise PVEError(
                    501, f"Unsupported format '{parsed.path.split('/')[2] if parsed.path.count('/') > 2 else ''}'"
                )
            params = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise PVEError(413, "request too large")
            ctype = self.headers.get("Content-Type", "")
            if length:
                if ctype.startswith("multipart/form-data"):
                    params.update(self._multipart(ctype, length, files))
                else:
                    text = self.rfile.read(length).decode()
                    params.update(dict(urllib.parse.parse_qsl(text, keep_blank_values=True)))
            data = self.sim.dispatch(self.command, parsed.path[len("/api2/json") :], self.headers, params, files)
            self._send(200, "OK", {"data": data})
        except PVEError as exc:
            body: dict[str, Any] = {"data": None, "message": exc.message + "\n"}
            if exc.errors:
                body["errors"] = exc.errors
            reason = exc.message.replace("\n", " ").strip()
            self._send(exc.status, reason, body)
        except Exception as exc:  # a simulator bug: answer as PVE would, with a 500
            self._send(500, f"simulator error: {type(exc).__name__}: {exc}".replace("\n", " "), {"data": None})
        finally:
            for path in files.values():
                if path.exists() and path.parent == self.sim.root / "upload-tmp":
                    path.unlink(missing_ok=True)

    def _multipart(self, ctype: str, length: int, files: dict[str, Path]) -> dict[str, str]:
        boundary = ctype.split("boundary=", 1)[1].strip('"').encode()
        body = self.rfile.read(length)
        fields: dict[str, str] = {}
        tmpdir = self.sim.root / "upload-tmp"
        tmpdir.mkdir(exist_ok=True)
        for part in body.split(b"--" + boundary)[1:]:
            if part.startswith(b"--"):
                break
            head, _, content = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
            content = content[:-2] if content.endswith(b"\r\n") else content
            disp = next(
                (
                    line
                    for line in head.decode(errors="replace").split("\r\n")
                    if line.lower().startswith("content-disposition")
                ),
                "",
            )
            name_m = re.search(r'name="([^"]*)"', disp)
            if not name_m:
                continue
            file_m = re.search(r'filename="([^"]*)"', disp)
            if file_m is not None:
                fd, tmp = tempfile.mkstemp(dir=tmpdir, prefix="pveupload-")
                with os.fdopen(fd, "wb") as f:
                    f.write(content)
                files[name_m.group(1)] = Path(tmp)
                fields.setdefault(name_m.group(1), file_m.group(1))
            else:
                fields[name_m.group(1)] = content.decode()
        if "filename" in files and "filename" in fields and fields["filename"] == "":
            fields["filename"] = files["filename"].name
        return fields

    def _send(self, status: int, reason: str, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status, reason.encode("latin-1", "replace").decode("latin-1"))
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "max-age=0")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _handle
