"""The XAPI simulator's HTTPS listeners: XML-RPC at /, JSON-RPC at /jsonrpc, /import_raw_vdi, /export_raw_vdi,
/rrd_updates."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import shutil
import ssl
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from . import disks as _disks  # noqa: F401 - registers the VDI, VBD and VIF handlers
from . import vms as _vms  # noqa: F401 - registers the VM handlers
from .api import API
from .model import Failure
from .pool import Pool
from .rrd import Rrd, RrdError
from .wire import json_response, parse_json, parse_xml, xml_response

__all__ = ["XapiSimulator"]

_CHUNK = 1024 * 1024
_ZERO = bytes(64 * 1024)


def _make_certs(directory: Path) -> tuple[Path, Path, Path]:
    """A self-signed certificate for localhost, 127.0.0.1 and 127.0.0.2 (as XCP-ng makes at install)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xcp-ng-1 (simulated)")])
    sans = [x509.DNSName("localhost")] + [x509.IPAddress(ipaddress.ip_address(f"127.0.0.{i}")) for i in (1, 2)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "xapi-ssl.pem", directory / "xapi-ssl.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)
    return cert_file, cert_file, key_file


class XapiSimulator:
    """A XAPI pool on loopback for offline tests, driven by the real XenAPI client.

    >>> with XapiSimulator(hosts=2) as sim:
    ...     hv = hvkit.connect(sim.url, password=sim.password, ca_file=sim.ca_file)

    The pool master listens on 127.0.0.1, a pool member on 127.0.0.2 (same port, when it can be bound;
    ``member_url``): every call there answers HOST_IS_SLAVE with the master's address. The user is
    ``root`` (password ``sim.password``). ``task_delay`` is the length of one of an Async task's four
    steps; sessions idle longer than ``session_ttl`` seconds expire (SESSION_INVALID).
    """

    def __init__(
        self,
        hosts: int = 2,
        *,
        task_delay: float = 0.01,
        session_ttl: float = 24 * 3600.0,
        capacity_gib: int = 200,
        password: str | None = None,
        root: str | Path | None = None,
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="xapi-sim-") if root is None else None
        self.root = Path(self._tmp.name if self._tmp else root)  # type: ignore[arg-type]
        self.username = "root"
        self.password = password or secrets.token_urlsafe(12)
        self.pool = Pool(self.root / "sr", hosts, capacity_gib=capacity_gib)
        self.api = API(self.pool, {self.username: self.password}, task_delay=task_delay, session_ttl=session_ttl)
        self.rrd = Rrd(self.api)  # /rrd_updates; rrd.advance(s) lets time pass for the counters
        self._servers: list[ThreadingHTTPServer] = []
        self.ca_file = ""
        self.port = 0
        self.member_port = 0

    # -- life cycle ---------------------------------------------------------------------------------------
    def start(self) -> XapiSimulator:
        certs = self.root / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        ca_file, cert_file, key_file = _make_certs(certs)
        self.ca_file = str(ca_file)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        master = self._listen(ctx, "127.0.0.1", 0, self.pool.host_refs[0])
        self.port = master.server_address[1]
        if len(self.pool.host_refs) < 2:
            return self
        second = self.pool.host_refs[1]  # its address is 127.0.0.2
        try:
            self._listen(ctx, "127.0.0.2", self.port, second)
            self.member_port = self.port
        except OSError:  # the port is taken on 127.0.0.2: a member on its own port still redirects
            self.member_port = self._listen(ctx, "127.0.0.1", 0, second).server_address[1]
        return self

    def _listen(self, ctx: ssl.SSLContext, address: str, port: int, host: str) -> ThreadingHTTPServer:
        handler = type("Handler", (_Handler,), {"sim": self, "host": host})
        server = ThreadingHTTPServer((address, port), handler)
        server.daemon_threads = True
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self._servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return server

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> XapiSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what clients and tests need -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"xen://{self.username}@127.0.0.1:{self.port}"

    @property
    def member_url(self) -> str:
        host = "127.0.0.2" if self.member_port == self.port else "127.0.0.1"
        return f"xen://{self.username}@{host}:{self.member_port}"

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def calls(self) -> list[str]:
        return self.api.calls

    def reset_counts(self) -> None:
        self.api.calls.clear()

    def expire_sessions(self) -> None:
        self.api.expire_sessions()

    def fail_over(self) -> None:
        """The pool member (127.0.0.2) becomes the master, as ``pool.designate_new_master`` or HA does;
        every session ends and the old master answers HOST_IS_SLAVE."""
        with self.api.store.lock:
            pool = next(iter(self.api.store.objects["pool"]))
            self.api.store.set("pool", pool, "master", self.pool.host_refs[1])
            self.api.expire_sessions()

    def populate(self, count: int, *, running_every: int = 2) -> None:
        self.pool.populate(count, running_every=running_every)


class _Handler(BaseHTTPRequestHandler):
    sim: XapiSimulator
    host: str  # the host whose XAPI this listener is
    protocol_version = "HTTP/1.1"
    server_version = "xapi/24.19"
    disable_nagle_algorithm = True  # headers and body go out at once, not after a delayed ACK

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_POST(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        body = self._body()
        if path == "/jsonrpc":
            method, params, request_id, version = parse_json(body)
            try:
                value = self.sim.api.call(method, params, self.host)
                data = json_response(request_id, version, value)
            except Failure as exc:
                data = json_response(request_id, version, error=exc.description)
            self._send(200, data, "application/json")
            return
        if path not in ("/", "/RPC2"):
            self._send(404, b"", "text/plain")
            return
        try:
            method, params = parse_xml(body)
            data = xml_response(self.sim.api.call(method, params, self.host))
        except Failure as exc:
            data = xml_response(error=exc.description)
        except Exception as exc:  # a simulator bug or a malformed request: XAPI's INTERNAL_ERROR
            data = xml_response(error=["INTERNAL_ERROR", f"{type(exc).__name__}: {exc}"])
        self._send(200, data, "text/xml")

    # -- disk content -------------------------------------------------------------------------------------------
    def _vdi_request(self) -> tuple[str, str, str]:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        api = self.sim.api
        if self.host != self.sim.pool.master:
            raise _HTTPError(403, "HOST_IS_SLAVE")
        try:
            api.check_session(query.get("session_id", ""))
        except Failure:
            raise _HTTPError(403, "SESSION_INVALID") from None
        vdi = query.get("vdi", "")
        if not api.store.exists("VDI", vdi):
            vdi = api.store.by_uuid["VDI"].get(vdi, "")
            if not vdi:
                raise _HTTPError(404, "VDI not found")
        fmt = query.get("format", "raw")
        if fmt not in ("raw", "vhd"):
            raise _HTTPError(400, f"format {fmt} is not raw or vhd")
        return vdi, fmt, query.get("task_id", "")

    def do_PUT(self) -> None:
        if urllib.parse.urlsplit(self.path).path != "/import_raw_vdi":
            self._send(404, b"", "text/plain")
            return
        task = ""
        try:
            vdi, fmt, task = self._vdi_request()
            length = int(self.headers.get("Content-Length") or 0)
            with self.sim.api.store.lock:
                size = int(self.sim.api.store.get("VDI", vdi)["virtual_size"])
                path = self.sim.pool.vdi_path(vdi)
            if fmt == "raw":
                if length > size:
                    raise _HTTPError(400, f"{length} bytes do not fit a VDI of {size}")
                self._receive_raw(path, length, size)
            else:
                self._receive_vhd(path, length, size)
            self._finish_task(task, None)
            self._send(200, b"", "text/plain")
        except _HTTPError as exc:
            self._finish_task(task, ["VDI_IO_ERROR", exc.text])
            self._send(exc.status, exc.text.encode(), "text/plain")

    def _receive_raw(self, path: Path, length: int, size: int) -> None:
        with path.open("r+b" if path.exists() else "wb") as out:
            out.truncate(size)
            done = 0
            while done < length:
                chunk = self.rfile.read(min(_CHUNK, length - done))
                if not chunk:
                    raise _HTTPError(400, "the upload ended early")
                for i in range(0, len(chunk), len(_ZERO)):  # zero blocks stay holes
                    piece = chunk[i : i + len(_ZERO)]
                    if piece != _ZERO[: len(piece)]:
                        out.seek(done + i)
                        out.write(piece)
                    elif path.exists():
                        out.seek(done + i)
                        out.write(piece)  # an earlier content there is overwritten with zeros
                done += len(chunk)

    def _receive_vhd(self, path: Path, length: int, size: int) -> None:
        from ...driver import qemu_img

        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".vhd") as tmp:
            shutil.copyfileobj(_Limited(self.rfile, length), tmp, _CHUNK)
            tmp.flush()
            try:
                qemu_img("convert", "-q", "-f", "vpc", "-O", "raw", tmp.name, str(path))
            except Exception as exc:
                raise _HTTPError(400, f"not a VHD image: {exc}") from None
            os.truncate(path, size)

    def do_GET(self) -> None:
        if urllib.parse.urlsplit(self.path).path == "/rrd_updates":
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            try:
                self._send(200, self.sim.rrd.updates(self.host, query), "text/xml")
            except RrdError as exc:
                self._send(exc.status, exc.text.encode(), "text/plain")
            return
        if urllib.parse.urlsplit(self.path).path != "/export_raw_vdi":
            self._send(404, b"", "text/plain")
            return
        task = ""
        try:
            vdi, fmt, task = self._vdi_request()
            with self.sim.api.store.lock:
                size = int(self.sim.api.store.get("VDI", vdi)["virtual_size"])
                path = self.sim.pool.vdi_path(vdi)
            if not path.exists():
                with path.open("wb") as f:
                    f.truncate(size)
            if fmt == "vhd":
                from ...driver import qemu_img

                with tempfile.TemporaryDirectory(dir=path.parent) as tmpdir:
                    out = Path(tmpdir) / "export.vhd"
                    qemu_img(
                        "convert",
                        "-q",
                        "-f",
                        "raw",
                        "-O",
                        "vpc",
                        "-o",
                        "subformat=dynamic,force_size=on",
                        str(path),
                        str(out),
                    )
                    self._stream(out, out.stat().st_size, "application/octet-stream")
            else:
                self._stream(path, size, "application/octet-stream")
            self._finish_task(task, None)
        except _HTTPError as exc:
            self._finish_task(task, ["VDI_IO_ERROR", exc.text])
            self._send(exc.status, exc.text.encode(), "text/plain")

    def _stream(self, path: Path, length: int, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        with path.open("rb") as f:
            sent = 0
            while sent < length:
                chunk = f.read(min(_CHUNK, length - sent))
                if not chunk:
                    chunk = bytes(min(_CHUNK, length - sent))
                self.wfile.write(chunk)
                sent += len(chunk)

    def _finish_task(self, task: str, error: list[str] | None) -> None:
        store = self.sim.api.store
        with store.lock:
            if task and store.exists("task", task):
                if error is None:
                    store.update("task", task, status="success", progress=1.0)
                else:
                    store.update("task", task, status="failure", error_info=error)

    def _send(self, status: int, data: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _HTTPError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class _Limited:
    def __init__(self, stream: Any, length: int) -> None:
        self._stream = stream
        self._left = length

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        data: bytes = self._stream.read(self._left if n < 0 else min(n, self._left))
        self._left -= len(data)
        return data
