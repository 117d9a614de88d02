"""Disk export / import for cross-vendor migration on Proxmox VE.

Export: PVE's API cannot download a disk, so the volume's ``path`` comes from the storage content API
(``GET /nodes/{node}/storage/{storage}/content/{volume}``) and the image file is copied from the node
over SSH, data extents only (:func:`hvkit.driver.ssh_export`). Import: the image is uploaded as a
qcow2 (allocated clusters only) with ``content=import`` and its sha256 ``checksum``, which PVE checks;
the volume ``STORAGE:import/NAME.qcow2`` it yields is attached with ``import-from`` when the VM is
created (PVE copies it into the VM's storage), after which the pipeline deletes it.

Connection options for SSH to the nodes (all optional):

* ``ssh_user`` (default ``root``), ``ssh_port`` (default 22), ``ssh_key`` (a private key file; default:
  ssh's own), ``ssh_known_hosts`` (a known_hosts file; host keys are always checked);
* ``ssh_host_map``: ``node=host[:port],...``; a node not in the map is reached at its address from
  ``/cluster/status``, else at the API URL's host;
* ``import_storage``: the storage that receives uploads (default: the target storage when it takes
  ``import`` content, else the node's first storage that does).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import urllib.parse
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...driver import DiskImage, ProgressFn, Task
from ...errors import AlreadyExists, HvkitError, InvalidSpec, NotFound, Unsupported
from ...models import DiskFormat, Snapshot, StoragePool, Volume
from ._errors import translate

if TYPE_CHECKING:
    from ._session import ProxmoxSession

__all__ = ["delete_volume", "export_disk", "import_disk", "ssh_node"]

_HASH_CHUNK = 8 * 1024 * 1024
_node_addresses: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()
_node_lock = threading.Lock()


def _quoted(volid: str) -> str:
    """A volume id as one URL path segment (``local:import/x.qcow2`` holds a slash)."""
    return urllib.parse.quote(volid, safe=":")


def _int_option(session: ProxmoxSession, name: str, default: int) -> int:
    return session.options.int_option(name, default, low=1, high=65535)


def _host_map(session: ProxmoxSession) -> dict[str, str]:
    raw = session.options.option("ssh_host_map")
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    out = {}
    for item in str(raw).split(","):
        node, sep, host = item.strip().partition("=")
        if not sep or not node or not host:
            raise InvalidSpec(f"ssh_host_map takes node=host[:port] entries separated by commas, got {raw!r}")
        out[node] = host
    return out


def _cluster_addresses(session: ProxmoxSession) -> dict[str, str]:
    """Node name -> IP address from ``/cluster/status`` (read once per connection); {} when not offered."""
    with _node_lock:
        if session in _node_addresses:
            return _node_addresses[session]
    found: dict[str, str] = {}
    try:
        with translate():
            entries = session.api.cluster.status.get()
        found = {str(e["name"]): str(e["ip"]) for e in entries if e.get("type") == "node" and e.get("ip")}
    except HvkitError:
        pass
    with _node_lock:
        _node_addresses[session] = found
    return found


def ssh_node(session: ProxmoxSession, node: str) -> Any:
    """How to reach ``node`` over SSH, from the connection options (see the module's doc)."""
    from ...driver import SshNode

    port = _int_option(session, "ssh_port", 22)
    host = _host_map(session).get(node) or _cluster_addresses(session).get(node) or session.options.url.host
    if not host:
        raise InvalidSpec(f"no SSH address for Proxmox node {node!r}: pass ssh_host_map={node}=HOST")
    if host.count(":") == 1:  # host:port (an IPv6 address has more colons)
        host, _, port_text = host.partition(":")
        try:
            port = int(port_text)
        except ValueError:
            raise InvalidSpec(f"ssh_host_map: bad port in {host}:{port_text}") from None
    key = session.options.option("ssh_key")
    known = session.options.option("ssh_known_hosts")
    return SshNode(
        host,
        port,
        str(session.options.option("ssh_user", "root")),
        str(Path(str(key)).expanduser()) if key else None,
        str(Path(str(known)).expanduser()) if known else None,
        timeout=float(session.options.timeout),
    )


def _node_of(session: ProxmoxSession, volume: Volume) -> str:
    node = volume.extra.get("node")
    if node:
        return str(node)
    from . import _inventory

    for pool in _inventory.list_pools(session):
        if pool.name == volume.pool:
            return str(pool.host or pool.extra.get("node"))
    raise NotFound(f"no node holds volume {volume.id!r}")


def export_disk(
    session: ProxmoxSession, volume: Volume, workdir: str, progress: ProgressFn, snapshot: Snapshot | None
) -> DiskImage:
    """Copy the volume's image file from its node over SSH (data extents only) into ``workdir``."""
    from ...driver import ssh_export

    if snapshot is not None:
        raise Unsupported("proxmox", "export_disk(snapshot=...)", "reading a disk as of a snapshot is not offered")
    node = _node_of(session, volume)
    storage = volume.id.split(":", 1)[0]
    with translate():
        info = session.api.nodes(node).storage(storage).content(_quoted(volume.id)).get()
    path = str(info.get("path") or "")
    if not path.startswith("/"):
        raise Unsupported("proxmox", "export_disk", f"volume {volume.id!r} has no file path on its node ({path!r})")
    fmt_text = str(info.get("format") or (volume.format.value if volume.format else "raw"))
    try:
        fmt = DiskFormat(fmt_text)
    except ValueError:
        raise Unsupported("proxmox", "export_disk", f"volume {volume.id!r} is in format {fmt_text!r}") from None
    local, size, moved = ssh_export(ssh_node(session, node), path, fmt, workdir, progress)
    return DiskImage(os.fspath(local), fmt, size, temporary=True, bytes_moved=moved)


def _import_storage(session: ProxmoxSession, node: str, pool: StoragePool) -> str:
    with translate():
        storages = list(session.api.nodes(node).storage.get())
    takes = [str(s["storage"]) for s in storages if "import" in str(s.get("content", "")).split(",")]
    chosen = session.options.option("import_storage")
    if chosen:
        if str(chosen) not in takes:
            raise InvalidSpec(f"import_storage {chosen!r} does not take 'import' content on node {node!r}")
        return str(chosen)
    if pool.name in takes:
        return pool.name
    if not takes:
        raise Unsupported("proxmox", "import_disk", f"no storage on node {node!r} takes 'import' content")
    return takes[0]


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def import_disk(
    session: ProxmoxSession,
    pool: StoragePool,
    name: str,
    image: DiskImage,
    fmt: DiskFormat,
    workdir: str,
    progress: ProgressFn,
) -> Volume:
    """Upload ``image`` as ``import/<name>.qcow2`` (sha256 checked by PVE); return that import volume.

    The VM's own disk is made from it with ``import-from`` when the VM is created (in ``fmt`` on file
    storages); only allocated clusters travel.
    """
    from ...driver import convert_image

    node = pool.host or str(pool.extra.get("node") or "")
    if not node:
        raise InvalidSpec(f"storage {pool.name!r} names no node")
    storage = _import_storage(session, node, pool)
    filename = f"{name}.qcow2"
    volid = f"{storage}:import/{filename}"
    with translate():
        present = {str(v["volid"]) for v in session.api.nodes(node).storage(storage).content.get(content="import")}
    if volid in present:
        raise AlreadyExists(f"{volid} exists already on node {node!r}")
    qcow = convert_image(image, DiskFormat.QCOW2, workdir, name=f"upload-{os.getpid()}-{filename}")
    try:
        digest = _sha256(qcow.path)
        with Path(qcow.path).open("rb") as src:
            from . import _storage

            task = _storage.upload_image(
                session, node, storage, filename, src, content="import", checksum=("sha256", digest), progress=progress
            )
            task.wait()
    except BaseException:
        with contextlib.suppress(Exception), translate():  # a failed upload may have left the file
            if volid in {str(v["volid"]) for v in session.api.nodes(node).storage(storage).content.get()}:
                session.api.nodes(node).storage(storage).content(_quoted(volid)).delete()
        raise
    finally:
        if qcow is not image:
            Path(qcow.path).unlink(missing_ok=True)
    return Volume(
        id=volid,
        name=f"import/{filename}",
        pool=storage,
        capacity_bytes=image.size,
        format=DiskFormat.QCOW2,
        extra={"content": "import", "node": node},
    )


def delete_volume(session: ProxmoxSession, volume: Volume) -> Task:
    """``DELETE /nodes/{node}/storage/{storage}/content/{volume}``: a Task (PVE runs it as one)."""
    node = _node_of(session, volume)
    storage = volume.id.split(":", 1)[0]
    with translate():
        upid = str(session.api.nodes(node).storage(storage).content(_quoted(volume.id)).delete())
    task: Task = session.follow_task(node, upid, "volumes.delete", volume.name)
    return task
