"""Sparse-aware copy of a disk image file from a node over SSH (for vendors whose API has no disk download).

Proxmox VE's API lists a volume's ``path`` but cannot download it; a backend's ``export_disk`` reads
the path from the storage API and calls :func:`ssh_export`. Only the file's data extents travel: the
node's ``qemu-img map`` (which reads the file system's holes) lists them, and one SSH session per batch
of extents streams them with ``dd``; the local copy keeps the holes. The copy has the image's format,
so a qcow2 moves its allocated clusters only and a sparse raw file its data only.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import uuid
from pathlib import Path

import attrs

from ..errors import BackendError, ConnectionError, InvalidSpec
from ..models import DiskFormat

__all__ = ["SshNode", "ssh_export"]

BATCH = 256  # extents per SSH session
_READ = 4 * 1024 * 1024


@attrs.frozen
class SshNode:
    """How to reach a node: host, port, user, private key file and known_hosts file (host keys are checked)."""

    host: str
    port: int = 22
    user: str = "root"
    keyfile: str | None = None
    known_hosts: str | None = None
    timeout: float = 30.0

    def argv(self, command: str) -> list[str]:
        argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(self.timeout)}", "-p", str(self.port)]
        if self.keyfile:
            argv += ["-i", self.keyfile, "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        return [*argv, f"{self.user}@{self.host}", "--", command]

    def run(self, command: str) -> str:
        proc = subprocess.run(self.argv(command), capture_output=True, text=True, timeout=3600, check=False)
        if proc.returncode == 255:
            raise ConnectionError(f"ssh to {self.user}@{self.host}:{self.port} failed: {proc.stderr.strip()[-300:]}")
        if proc.returncode != 0:
            raise BackendError(f"on {self.host}: {command.split()[0]} failed: {proc.stderr.strip()[-300:]}")
        return proc.stdout


def _file_extents(node: SshNode, path: str) -> tuple[int, list[tuple[int, int]]]:
    """The remote file's length and its data extents (holes left out), read as raw bytes."""
    quoted = shlex.quote(path)
    out = node.run(f"stat -c %s {quoted} && qemu-img map --output=json -f raw -U {quoted}")
    first, _, rest = out.partition("\n")
    length = int(first.strip())
    extents = []
    for e in json.loads(rest):
        if e.get("data") and not e.get("zero"):
            start = int(e["start"])
            end = min(start + int(e["length"]), length)
            if end > start:
                extents.append((start, end - start))
    return length, extents


def ssh_export(
    node: SshNode,
    path: str,
    fmt: DiskFormat,
    workdir: str | os.PathLike[str],
    progress: object = None,
) -> tuple[Path, int, int]:
    """Copy the image file ``path`` from ``node`` into ``workdir``, data extents only.

    Returns (local path, guest-visible size, bytes moved). ``progress(done, total)`` follows the bytes.
    """
    if not path.startswith("/"):
        raise InvalidSpec(f"the node's image path must be absolute, got {path!r}")
    report = progress if callable(progress) else None
    info = json.loads(node.run(f"qemu-img info --output=json -U -f {fmt.value} {shlex.quote(path)}"))
    if info.get("backing-filename"):
        raise InvalidSpec(f"{path} on {node.host} has a backing file; export the whole chain first")
    length, extents = _file_extents(node, path)
    total = sum(n for _, n in extents)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    dest = Path(workdir) / f"ssh-{uuid.uuid4().hex[:12]}.{fmt.value}"
    done = 0
    try:
        with dest.open("wb") as out:
            out.truncate(length)
            for i in range(0, len(extents), BATCH):
                batch = extents[i : i + BATCH]
                script = "; ".join(
                    f"dd if={shlex.quote(path)} iflag=skip_bytes,count_bytes skip={s} count={n} bs=4M status=none"
                    for s, n in batch
                )
                with subprocess.Popen(node.argv(script), stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
                    assert proc.stdout is not None
                    for start, n in batch:
                        out.seek(start)
                        left = n
                        while left:
                            chunk = proc.stdout.read(min(_READ, left))
                            if not chunk:
                                break
                            out.write(chunk)
                            left -= len(chunk)
                            done += len(chunk)
                            if report is not None:
                                report(done, total)
                        if left:
                            break
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                if proc.returncode != 0 or left:
                    kind = ConnectionError if proc.returncode == 255 else BackendError
                    raise kind(f"copying {path} from {node.host} failed: {err.strip()[-300:] or 'short read'}")
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest, int(info["virtual-size"]), done
