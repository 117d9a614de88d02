"""Datastore files over HTTPS (``/folder/<path>?dcPath=...&dsName=...``), streamed, with the session cookie.

Used for volume upload and download (a VMDK's raw content is its ``-flat.vmdk`` extent), for reading
small descriptor files, and for OVF/OVA disk upload through an HttpNfcLease.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.parse
from collections.abc import Callable
from typing import IO

from ...errors import BackendError, ConnectionError, NotFound

__all__ = ["FileTransfer", "split_datastore_path"]

CHUNK = 1024 * 1024


def split_datastore_path(path: str) -> tuple[str, str]:
    """``"[ds1] dir/file.vmdk"`` -> ``("ds1", "dir/file.vmdk")``."""
    text = path.strip()
    if not text.startswith("[") or "]" not in text:
        raise ValueError(f"{path!r} is not a datastore path like '[datastore1] dir/file.vmdk'")
    end = text.index("]")
    return text[1:end], text[end + 1 :].strip()


class FileTransfer:
    """HTTP(S) transfers to one vSphere server, authenticated with the SOAP session's cookie."""

    def __init__(
        self, host: str, port: int, context: ssl.SSLContext | None, timeout: float, cookie: Callable[[], str]
    ) -> None:
        self._host = host
        self._port = port
        self._context = context
        self._timeout = timeout
        self._cookie = cookie

    def _connection(
        self, host: str | None = None, port: int | None = None, scheme: str = "https"
    ) -> http.client.HTTPConnection:
        if scheme == "http":
            return http.client.HTTPConnection(host or self._host, port or self._port, timeout=self._timeout)
        return http.client.HTTPSConnection(
            host or self._host, port or self._port, context=self._context, timeout=self._timeout
        )

    @staticmethod
    def folder_url(datacenter: str, datastore_path: str) -> str:
        ds, rel = split_datastore_path(datastore_path)
        query = urllib.parse.urlencode({"dcPath": datacenter, "dsName": ds})
        return f"/folder/{urllib.parse.quote(rel)}?{query}"

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Cookie": self._cookie(), "User-Agent": "hvkit"}
        headers.update(extra or {})
        return headers

    def get(
        self,
        datacenter: str,
        datastore_path: str,
        sink: IO[bytes] | None,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[int, bytes]:
        """Download a file; stream into ``sink`` (or return its bytes); returns (count, bytes-if-no-sink)."""
        conn = self._connection()
        try:
            conn.request("GET", self.folder_url(datacenter, datastore_path), headers=self._headers())
            resp = conn.getresponse()
            if resp.status == 404:
                raise NotFound(f"no datastore file {datastore_path}")
            if resp.status >= 300:
                raise BackendError(f"reading {datastore_path} failed: HTTP {resp.status} {resp.reason}")
            total = int(resp.getheader("Content-Length") or 0)
            count = 0
            chunks: list[bytes] = []
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                count += len(block)
                if sink is None:
                    chunks.append(block)
                else:
                    sink.write(block)
                if progress is not None:
                    progress(count, total)
            return count, b"".join(chunks)
        except OSError as exc:
            raise ConnectionError(f"reading {datastore_path} failed: {exc}") from exc
        finally:
            conn.close()

    def put(
        self,
        datacenter: str,
        datastore_path: str,
        source: IO[bytes],
        size: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Upload ``size`` bytes from ``source`` as a datastore file (replacing it)."""
        self.send("PUT", self.folder_url(datacenter, datastore_path), source, size, progress, what=datastore_path)

    def send(
        self,
        method: str,
        target: str,
        source: IO[bytes],
        size: int,
        progress: Callable[[int, int], None] | None,
        *,
        what: str,
        host: str | None = None,
        port: int | None = None,
        scheme: str = "https",
        content_type: str = "application/octet-stream",
    ) -> None:
        conn = self._connection(host, port, scheme)
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            for key, value in self._headers({"Content-Type": content_type, "Content-Length": str(size)}).items():
                conn.putheader(key, value)
            conn.endheaders()
            done = 0
            while done < size:
                block = source.read(min(CHUNK, size - done))
                if not block:
                    raise BackendError(f"the source ended after {done} of {size} bytes")
                conn.send(block)
                done += len(block)
                if progress is not None:
                    progress(done, size)
            resp = conn.getresponse()
            resp.read()
            if resp.status >= 300:
                raise BackendError(f"writing {what} failed: HTTP {resp.status} {resp.reason}")
        except OSError as exc:
            raise ConnectionError(f"writing {what} failed: {exc}") from exc
        finally:
            conn.close()
