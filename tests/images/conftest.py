"""Fixtures: images served over HTTP and HTTPS on loopback, throwaway OpenPGP keys, a temporary catalogue."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import random
import shutil
import ssl
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

MIB = 1024 * 1024


@attrs.frozen
class Served:
    root: Path
    url: str  # http://127.0.0.1:port
    https: str  # https://127.0.0.1:port
    ca_file: str

    def put(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return f"{self.url}/{name}"


def _serve(root: Path, context: ssl.SSLContext | None) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True, name="hvkit-test-http").start()
    scheme = "https" if context else "http"
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A folder served over http:// and https:// (a self-signed certificate for 127.0.0.1) on loopback."""
    root = tmp_path_factory.mktemp("served")
    tls = tmp_path_factory.mktemp("tls")
    cert, key = tls / "cert.pem", tls / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    plain, url = _serve(root, None)
    secure, https = _serve(root, context)
    yield Served(root, url, https, str(cert))
    for server in (plain, secure):
        server.shutdown()
        server.server_close()


def disk_content(size: int, seed: int) -> bytes:
    """A disk of ``size`` bytes: a marker, some random data in places, zeros elsewhere."""
    rnd = random.Random(seed)
    content = bytearray(size)
    for off in (0, size // 2, size - 300_000):
        content[off : off + 200_000] = rnd.randbytes(200_000)
    content[:24] = f"hvkit-image-{seed:08d}".encode().ljust(24, b"\0")
    return bytes(content)


def qcow2_of(content: bytes, where: Path) -> bytes:
    raw = where / "content.raw"
    raw.write_bytes(content)
    out = where / "content.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(out)], check=True)
    data = out.read_bytes()
    raw.unlink()
    out.unlink()
    return data


def ova_of(content: bytes, where: Path, name: str = "appliance") -> bytes:
    """An OVA: a descriptor naming one stream-optimized vmdk, and that vmdk."""
    raw = where / "disk.raw"
    raw.write_bytes(content)
    vmdk = where / f"{name}-disk1.vmdk"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized",
                    str(raw), str(vmdk)], check=True)  # fmt: skip
    ovf = where / f"{name}.ovf"
    ovf.write_text(
        '<?xml version="1.0"?>\n<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" '
        'xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">\n'
        f'  <References><File ovf:id="file1" ovf:href="{vmdk.name}"/></References>\n'
        f'  <DiskSection><Info>disks</Info><Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" '
        f'ovf:capacity="{len(content)}"/></DiskSection>\n</Envelope>\n'
    )
    ova = where / f"{name}.ova"
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as tar:
        tar.add(ovf, arcname=ovf.name)
        tar.add(vmdk, arcname=vmdk.name)
    data = ova.read_bytes()
    for p in (raw, vmdk, ovf, ova):
        p.unlink()
    return data


@attrs.frozen
class Signer:
    home: Path
    fingerprint: str
    keyring: Path  # a keyring file holding only this key (what gpgv --keyring reads)

    def sign(self, path: Path) -> Path:
        sig = path.with_name(path.name + ".sign")
        sig.unlink(missing_ok=True)
        subprocess.run(["gpg", "--batch", "--yes", "--homedir", str(self.home), "--local-user", self.fingerprint,
                        "--output", str(sig), "--detach-sign", str(path)], check=True, capture_output=True)  # fmt: skip
        return sig


def _make_signer(home: Path, email: str) -> Signer:
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", email, "ed25519", "sign", "1d"],
                   check=True, capture_output=True, env=env)  # fmt: skip
    listing = subprocess.run(["gpg", "--batch", "--with-colons", "--list-keys", email], check=True,
                             capture_output=True, text=True, env=env).stdout  # fmt: skip
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    keyring = home / "trusted.gpg"
    exported = subprocess.run(["gpg", "--batch", "--export", fingerprint], check=True, capture_output=True, env=env)
    keyring.write_bytes(exported.stdout)
    return Signer(home, fingerprint, keyring)


@pytest.fixture(scope="session")
def signers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Signer, Signer]:
    """Two throwaway signing keys, each in its own GNUPGHOME: the trusted one and a stranger."""
    if shutil.which("gpg") is None or shutil.which("gpgv") is None:
        pytest.skip("gpg and gpgv are needed (Debian packages gnupg, gpgv)")
    base = tmp_path_factory.mktemp("gpg")
    return _make_signer(base / "release", "release@hvkit.test"), _make_signer(base / "stranger", "x@hvkit.test")


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return tmp_path / "catalog" / "images.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
