"""In-place patches of a volume on its node, over SSH (replication into Proxmox VE).

PVE's API cannot write into part of an existing volume, so both halves run on the node over the
connection's SSH access (:func:`._disks.ssh_node`), with ``qemu-img`` and ``python3`` (ifupdown2, PVE's
network stack, is Python) and nothing else:

* :func:`scan_volume`: a small stdlib-only Python program, sent on stdin, reads the volume's image file at
  the offsets ``qemu-img map`` reports (holes are not read) and prints its ``hvkit-disk-v1`` checksum and,
  when asked, one BLAKE2b-128 digest per non-zero 64 KiB block (24 bytes a block cross the wire);
* :func:`patch_volume`: the patch (a qcow2 without backing file holding only the changed clusters, zeroed
  ranges as zero clusters) is sent on stdin, gzip-compressed (its metadata clusters are mostly zeros), into
  a private directory, given the volume's file as backing
  file (``qemu-img rebase -u``), and ``qemu-img commit`` writes its clusters into the volume in place,
  whatever the volume's format (raw or qcow2, a file or a block device); the directory is removed after.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
import urllib.parse
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...driver import DiskImage, VolumeScan
from ...errors import BackendError, InvalidSpec, Unsupported
from ...models import DiskFormat, Volume
from ._disks import _node_of, ssh_node
from ._errors import translate

if TYPE_CHECKING:
    from ._session import ProxmoxSession

__all__ = ["patch_volume", "scan_volume"]

_RECORD = 24  # u64 block index + 16-byte digest
_CHUNK = 4 * 1024 * 1024

# Runs on the node (python3 -, stdlib only): argv = path, format, "1" for block digests. Prints one JSON
# line ({"size", "checksum", "blocks"}) then the digests as u64be index + 16 bytes. The checksum follows the
# hvkit-disk-v1 definition (hvkit.migration._verify): per 64 MiB segment, SHA-256 of Z/D records; zero
# blocks are never hashed, zero runs are one record.
_SCAN = r"""
import bisect, hashlib, json, os, shutil, struct, subprocess, sys, tempfile
path, fmt, want = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
B, G = 65536, 64 * 1024 * 1024
def img(*a):
    return json.loads(subprocess.run(["qemu-img", *a], check=True, capture_output=True).stdout)
size = int(img("info", "--output=json", "-U", "-f", fmt, path)["virtual-size"])
ext = img("map", "--output=json", "-U", "-f", fmt, path)
tmp = None
if any(e.get("data") and (e.get("offset") is None or e.get("depth", 0)) for e in ext):
    tmp = tempfile.mkdtemp(prefix="hvkit-scan-", dir="/var/tmp")
    raw = os.path.join(tmp, "c.raw")
    subprocess.run(["qemu-img", "convert", "-U", "-f", fmt, "-O", "raw", path, raw], check=True, capture_output=True)
    path, ext = raw, img("map", "--output=json", "-U", "-f", "raw", raw)
try:
    data = [(e["start"], e["start"] + e["length"], e["offset"]) for e in ext if e.get("data") and not e.get("zero")]
    starts = [d[0] for d in data]
    fd = os.open(path, os.O_RDONLY)
    def read(s, e):
        out = bytearray(e - s)
        i = max(0, bisect.bisect_right(starts, s) - 1)
        while i < len(data) and data[i][0] < e:
            a, b, off = data[i]
            lo, hi = max(a, s), min(b, e)
            if lo < hi:
                out[lo - s : hi - s] = os.pread(fd, hi - lo, off + lo - a)
            i += 1
        return bytes(out)
    touched = []
    for a, b, _ in data:
        first = a // B if not touched else max(a // B, touched[-1] + 1)
        touched.extend(range(first, (min(b, size) - 1) // B + 1))
    rec = struct.Struct(">cQQ")
    final = hashlib.sha256(b"hvkit-disk-v1\0" + struct.pack(">Q", size))
    digests = []
    k = 0
    for s in range(0, size, G):
        e = min(s + G, size)
        h = hashlib.sha256()
        zero_from = s
        while k < len(touched) and touched[k] * B < e:
            b = touched[k] * B
            k += 1
            block = read(b, min(b + B, e))
            if block.count(0) == len(block):
                continue
            if zero_from < b:
                h.update(rec.pack(b"Z", zero_from, b - zero_from))
            h.update(rec.pack(b"D", b, len(block)) + block)
            zero_from = b + len(block)
            if want:
                digests.append(struct.pack(">Q", b // B) + hashlib.blake2b(block, digest_size=16).digest())
        if zero_from < e:
            h.update(rec.pack(b"Z", zero_from, e - zero_from))
        final.update(h.digest())
    head = {"size": size, "checksum": "hvkit1:" + final.hexdigest(), "blocks": len(digests)}
    sys.stdout.buffer.write(json.dumps(head).encode() + b"\n" + b"".join(digests))
finally:
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
"""


def _volume_file(session: ProxmoxSession, volume: Volume) -> tuple[str, str, DiskFormat]:
    """(node, image path on the node, format) of ``volume``, from the storage content API."""
    node = _node_of(session, volume)
    storage = volume.id.split(":", 1)[0]
    with translate():
        info = session.api.nodes(node).storage(storage).content(urllib.parse.quote(volume.id, safe=":")).get()
    path = str(info.get("path") or "")
    if not path.startswith("/"):
        raise Unsupported("proxmox", "patching a volume", f"volume {volume.id!r} has no file path on its node")
    text = str(info.get("format") or (volume.format.value if volume.format else "raw"))
    if text not in ("raw", "qcow2"):
        raise Unsupported("proxmox", "patching a volume", f"volume {volume.id!r} is {text}; raw or qcow2 is needed")
    return node, path, DiskFormat(text)


def _run(node: Any, command: str, stdin: bytes, timeout: float = 3600) -> bytes:
    """Run ``command`` on the node with ``stdin``; its stdout, or a clear error."""
    proc = subprocess.run(node.argv(command), input=stdin, capture_output=True, timeout=timeout, check=False)
    err = proc.stderr.decode(errors="replace").strip()[-400:]
    if proc.returncode == 255:
        raise ConnectionError(f"ssh to {node.user}@{node.host}:{node.port} failed: {err}")
    if proc.returncode == 127:  # the shell found no such program
        raise _missing(node, err)
    if proc.returncode != 0:
        raise BackendError(f"on {node.host}: {command.split()[0]} failed (exit {proc.returncode}): {err}")
    return proc.stdout


def _missing(node: Any, err: str) -> Unsupported:
    reason = f"a program is missing on {node.host} ({err[-160:]}); the node needs qemu-img, python3 and gzip"
    return Unsupported("proxmox", "patching volumes on their node", reason)


def _send_gzipped(node: Any, command: str, path: Path, timeout: float = 3600) -> int:
    """Stream the file ``path``, gzip-compressed (level 1), to ``command`` on the node; the bytes sent."""
    sent = 0
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: a gzip stream, which gzip -d reads
    with tempfile.TemporaryFile() as err, path.open("rb") as src:
        proc = subprocess.Popen(node.argv(command), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        assert proc.stdin is not None
        try:
            while chunk := src.read(_CHUNK):
                packed = packer.compress(chunk)
                proc.stdin.write(packed)
                sent += len(packed)
            packed = packer.flush()
            proc.stdin.write(packed)
            sent += len(packed)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the node's side ended early: its exit status and message say why
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise BackendError(f"on {node.host}: writing the patch took longer than {timeout:.0f} s") from None
        err.seek(0)
        text = err.read().decode(errors="replace").strip()[-400:]
    if code == 255:
        raise ConnectionError(f"ssh to {node.user}@{node.host}:{node.port} failed: {text}")
    if code == 127:
        raise _missing(node, text)
    if code != 0:
        raise BackendError(f"on {node.host}: applying the patch failed (exit {code}): {text}")
    return sent + len(command)


def scan_volume(session: ProxmoxSession, volume: Volume, digests: bool) -> VolumeScan:
    """The volume's hvkit-disk-v1 checksum (and block digests) computed on its node (see the module)."""
    node_name, path, fmt = _volume_file(session, volume)
    node = ssh_node(session, node_name)
    script = _SCAN.encode()
    command = f"python3 - {shlex.quote(path)} {fmt.value} {1 if digests else 0}"
    out = _run(node, command, script)
    head, sep, body = out.partition(b"\n")
    try:
        meta = json.loads(head)
        count = int(meta["blocks"])
    except (ValueError, KeyError, TypeError):
        raise BackendError(f"on {node.host}: the volume scan printed no summary: {head[:200]!r}") from None
    if not sep or len(body) != count * _RECORD:
        raise BackendError(f"on {node.host}: the volume scan of {volume.id} was cut short")
    found = None
    if digests:
        found = {
            int.from_bytes(body[i : i + 8], "big"): body[i + 8 : i + _RECORD] for i in range(0, len(body), _RECORD)
        }
    moved = len(script) + len(command) + len(out)
    return VolumeScan(int(meta["size"]), str(meta["checksum"]), found, moved)


def patch_volume(session: ProxmoxSession, volume: Volume, patch: DiskImage) -> int:
    """Write the patch's clusters into the volume on its node with qemu-img commit (see the module)."""
    if patch.format is not DiskFormat.QCOW2:
        raise InvalidSpec(f"a volume patch is a qcow2 image, not {patch.format.value}")
    node_name, path, fmt = _volume_file(session, volume)
    node = ssh_node(session, node_name)
    if volume.capacity_bytes and patch.size > volume.capacity_bytes:
        raise InvalidSpec(f"the patch covers {patch.size} bytes, volume {volume.id} holds {volume.capacity_bytes}")
    quoted = shlex.quote(path)
    command = (
        'set -e; d=$(mktemp -d "${TMPDIR:-/var/tmp}/hvkit-patch.XXXXXX"); trap \'rm -rf "$d"\' EXIT; '
        'gzip -dc > "$d/patch.qcow2"; '
        f'qemu-img rebase -u -f qcow2 -b {quoted} -F {fmt.value} "$d/patch.qcow2"; '
        'qemu-img commit -q -f qcow2 -d "$d/patch.qcow2"'
    )
    return _send_gzipped(node, command, Path(patch.path))
