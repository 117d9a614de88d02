"""Fetching an image (a file or an HTTP(S) URL) into a temporary directory and checking what was fetched.

Checksums are computed while the bytes stream in; a ``SHA256SUMS`` / ``SHA512SUMS`` file is trusted only
after ``gpgv`` accepted its detached signature with the keyring the caller names (Debian publishes its
cloud images this way).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import attrs

from ..errors import ConnectionError, InvalidSpec, Timeout
from ._errors import ImageChecksumMismatch, ImageError, SignatureError

__all__ = ["Digest", "Fetched", "fetch", "parse_sums", "source_name", "verify_signature"]

CHUNK = 1024 * 1024
ALGORITHMS = ("sha256", "sha512")
_HEX = {"sha256": 64, "sha512": 128}


@attrs.frozen
class Digest:
    """A checksum the caller requires: ``algorithm`` (sha256 / sha512) and lower-case hex."""

    algorithm: str
    hex: str

    def __attrs_post_init__(self) -> None:
        if self.algorithm not in _HEX:
            raise InvalidSpec(f"checksum algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        if not re.fullmatch(f"[0-9a-f]{{{_HEX[self.algorithm]}}}", self.hex):
            raise InvalidSpec(f"a {self.algorithm} checksum is {_HEX[self.algorithm]} hex digits, got {self.hex!r}")

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


@attrs.frozen
class Fetched:
    path: Path
    digests: dict[str, str]  # algorithm -> hex, of the bytes fetched
    size: int


def is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in ("http", "https")


def source_name(source: str) -> str:
    """The file name a source ends in (what a SHA256SUMS line names)."""
    if is_url(source):
        return urllib.parse.unquote(Path(urllib.parse.urlsplit(source).path).name)
    return Path(source).name


def check_source(source: str) -> None:
    """InvalidSpec unless ``source`` is an existing file or an http(s) URL; nothing is fetched."""
    if not isinstance(source, str | os.PathLike) or not str(source):
        raise InvalidSpec(f"an image source is a file path or an http(s) URL, got {source!r}")
    text = os.fspath(source)
    scheme = urllib.parse.urlsplit(text).scheme
    if scheme in ("http", "https"):
        return
    if scheme == "file":
        text = urllib.parse.unquote(urllib.parse.urlsplit(text).path)
    elif scheme and len(scheme) > 1:
        raise InvalidSpec(f"image sources are files or http(s) URLs, not {scheme}://")
    if not Path(text).is_file():
        raise InvalidSpec(f"{text} is not a file")


def fetch(source: str, workdir: str, *, timeout: float, ca_file: str | None = None, verify_tls: bool = True) -> Fetched:
    """Copy ``source`` into ``workdir`` (a URL) or read it in place (a file); hash it on the way."""
    hashes = {name: hashlib.new(name) for name in ALGORITHMS}
    if not is_url(source):
        path = Path(urllib.parse.unquote(urllib.parse.urlsplit(source).path) if source.startswith("file:") else source)
        size = 0
        with path.open("rb") as src:
            while chunk := src.read(CHUNK):
                size += len(chunk)
                for h in hashes.values():
                    h.update(chunk)
        return Fetched(path, {n: h.hexdigest() for n, h in hashes.items()}, size)
    dest = Path(workdir) / (source_name(source) or "download")
    size = 0
    with _open_url(source, timeout, ca_file, verify_tls) as response, dest.open("wb") as out:
        while True:
            try:
                chunk = response.read(CHUNK)
            except TimeoutError as exc:
                raise Timeout(f"download of {_safe(source)} stalled for {timeout} s") from exc
            if not chunk:
                break
            size += len(chunk)
            out.write(chunk)
            for h in hashes.values():
                h.update(chunk)
    return Fetched(dest, {n: h.hexdigest() for n, h in hashes.items()}, size)


def _safe(url: str) -> str:
    """A URL without its user info and query (they may hold secrets)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _open_url(url: str, timeout: float, ca_file: str | None, verify_tls: bool):  # type: ignore[no-untyped-def]
    context = None
    if url.startswith("https:"):
        context = ssl.create_default_context(cafile=ca_file)
        if not verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url, headers={"User-Agent": "hvkit"})
    try:
        return urllib.request.urlopen(request, timeout=timeout, context=context)
    except urllib.error.HTTPError as exc:
        raise ImageError(f"fetching {_safe(url)} failed: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise Timeout(f"fetching {_safe(url)} timed out after {timeout} s") from None
        raise ConnectionError(f"cannot fetch {_safe(url)}: {exc.reason}") from None
    except TimeoutError:
        raise Timeout(f"fetching {_safe(url)} timed out after {timeout} s") from None


def check_digest(what: str, fetched: Fetched, wanted: Digest) -> None:
    actual = fetched.digests[wanted.algorithm]
    if actual != wanted.hex:
        raise ImageChecksumMismatch(what, str(wanted), f"{wanted.algorithm}:{actual}")


def parse_sums(text: str, name: str, algorithm: str) -> Digest:
    """The checksum a ``SHA256SUMS``-style file gives ``name`` (``<hex>  <name>`` or ``<hex> *<name>``)."""
    found: list[str] = []
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) != 2:
            continue
        digest, listed = parts
        listed = listed.lstrip("*").strip()
        if listed == name or listed.removeprefix("./") == name:
            found.append(digest.lower())
    if not found:
        raise ImageError(f"the checksum file lists no {name!r}")
    if len(set(found)) > 1:
        raise ImageError(f"the checksum file lists {name!r} with different checksums")
    try:
        return Digest(algorithm, found[0])
    except InvalidSpec as exc:
        raise ImageError(f"the checksum file's line for {name!r} is not a {algorithm} checksum: {exc}") from None


def verify_signature(data: Path, signature: Path, keyring: Path, *, timeout: float = 60.0) -> str:
    """Check ``signature`` (detached, binary or armored) over ``data`` with ``keyring``; return the key id.

    ``gpgv`` (Debian's package of the same name) verifies against the named keyring only, never the
    user's own. A bad signature, or one by a key the keyring lacks, raises SignatureError.
    """
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise ImageError("checking a signed checksum file needs gpgv (Debian package gpgv)")
    if not keyring.is_file():
        raise InvalidSpec(f"keyring {keyring} is not a file")
    status_r, status_w = os.pipe()
    try:
        proc = subprocess.run(
            [gpgv, "--status-fd", str(status_w), "--keyring", str(keyring.resolve()), str(signature), str(data)],
            capture_output=True,
            timeout=timeout,
            pass_fds=(status_w,),
            env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            check=False,
        )
        os.close(status_w)
        status_w = -1
        with os.fdopen(status_r, "r", errors="replace") as reader:
            status_r = -1
            status = reader.read()
    except subprocess.TimeoutExpired:
        raise Timeout(f"gpgv did not finish within {timeout} s") from None
    finally:
        for fd in (status_r, status_w):
            if fd >= 0:
                os.close(fd)
    return _signer(status, proc.returncode, proc.stderr.decode(errors="replace"))


def _signer(status: str, code: int, stderr: str) -> str:
    lines = [line.split()[1:] for line in status.splitlines() if line.startswith("[GNUPG:] ")]
    keys = {words[0]: words[1:] for words in lines if words}
    if "BADSIG" in keys:
        raise SignatureError("the checksum file's signature is BAD (the file or the signature was altered)")
    if "NO_PUBKEY" in keys or "ERRSIG" in keys:
        key = (keys.get("NO_PUBKEY") or keys.get("ERRSIG") or ["?"])[0]
        raise SignatureError(f"the checksum file is signed by key {key}, which the named keyring does not hold")
    if code != 0 or "VALIDSIG" not in keys:
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else f"gpgv exit code {code}"
        raise SignatureError(f"the checksum file's signature could not be verified: {detail}")
    return keys["VALIDSIG"][0]  # the signing key's fingerprint
