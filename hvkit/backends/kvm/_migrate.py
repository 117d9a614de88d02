"""Migration for the kvm backend: VMs to other libvirt hosts (peers), disks to other storage pools.

Peers come from the connection option ``peers``: a comma-separated list of ``[NAME=]URI`` (libvirt
URIs), or a list whose items are such strings or mappings with the keys of :class:`PeerSpec` — e.g.
``{"uri": "qemu+ssh://root@kvm2/system", "migrate_uri": "tcp://10.0.0.2"}``. ``hv.hosts.list()`` lists
this connection's host, then each peer's (id = its libvirt host UUID, name = its hostname).

* ``hv.vms.migrate(vm, host=PEER)`` with the VM running: libvirt live migration (``virDomainMigrate3``
  driven by hvkit, or peer-to-peer with ``p2p``), persistent on the target, undefined on the source.
  Disks not on shared storage are copied along (``VIR_MIGRATE_NON_SHARED_DISK``, QEMU's NBD mirror)
  into volumes hvkit pre-creates in the target pool (``pool=``, else the pool of the same name on the
  peer); read-only disks (ISOs) are copied by storage streams; after success the source volumes are
  deleted. With the VM stopped: disks copied by storage streams, domain defined on the peer,
  undefined here. Progress comes from ``jobStats``; ``Task.cancel()`` aborts the job.
* ``hv.vms.migrate(vm, pool=POOL)``: disks move to another pool on the same host; a running VM keeps
  running (``virDomainBlockCopy`` then pivot), a stopped one is copied and redefined.

After a host move the VM lives on the peer: the returned VM is read through the peer's connection
(``vm.host`` is the peer's host id, ``vm.extra["uri"]`` its libvirt URI). The connection with ``peers``
still lists it and routes every call on it to the peer (``_cluster``), including moves back.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import libvirt

from ...errors import AlreadyExists, HvkitError, InvalidSpec, NotFound
from ...models import VM, DiskFormat, Host
from ...models.enums import TaskState
from ...tasks import Task, TaskInfo, wait_for
from . import _domxml, _streams
from ._errors import translate

if TYPE_CHECKING:
    from .backend import KvmBackend

__all__ = ["PeerSpec", "Peers", "migrate_storage", "migrate_to_host", "parse_peers"]

_SHARED_POOLS = {"netfs", "iscsi", "iscsi-direct", "rbd", "gluster", "sheepdog", "mpath", "vstorage"}
_PEER_KEYS = {"uri", "name", "migrate_uri", "disks_uri", "p2p", "dest_uri"}


@attrs.frozen
class PeerSpec:
    """Another libvirt host this connection may migrate VMs to.

    ``uri``: how hvkit reaches the peer. ``migrate_uri`` / ``disks_uri``: where the source QEMU sends
    memory / disk data (``tcp://ADDR[:PORT]`` or ``unix:///PATH``; ``{vm}`` becomes the VM's UUID);
    default: what the peer's libvirtd chooses. ``p2p``: the source libvirtd drives the migration itself,
    connecting to ``dest_uri`` (default ``uri``), which must be valid from the source daemon.
    """

    uri: str
    name: str | None = None
    migrate_uri: str | None = None
    disks_uri: str | None = None
    p2p: bool = False
    dest_uri: str | None = None


def parse_peers(value: object) -> list[PeerSpec]:
    if value is None or value == "":
        return []
    items: list[Any] = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    specs = []
    for item in items:
        if isinstance(item, PeerSpec):
            specs.append(item)
        elif isinstance(item, Mapping):
            unknown = set(item) - _PEER_KEYS
            if unknown or "uri" not in item:
                raise InvalidSpec(f"a peer needs 'uri' and takes {sorted(_PEER_KEYS)}; got {sorted(item)}")
            fields: dict[str, Any] = {k: (bool(v) if k == "p2p" else v) for k, v in item.items()}
            specs.append(PeerSpec(**fields))
        elif isinstance(item, str) and item.strip():
            text = item.strip()
            head, sep, rest = text.partition("=")
            if sep and "://" not in head:
                specs.append(PeerSpec(uri=rest.strip(), name=head.strip()))
            else:
                specs.append(PeerSpec(uri=text))
        else:
            raise InvalidSpec(f"cannot read the peer {item!r}: give '[NAME=]URI' or a mapping")
    return specs


class Peers:
    """The peers of one KvmBackend: connected on first use, closed with it."""

    def __init__(self, backend: KvmBackend) -> None:
        self._backend = backend
        self.specs = parse_peers(backend.options.option("peers"))
        self._open: dict[str, KvmBackend] = {}
        self._lock = threading.Lock()

    def backend(self, spec: PeerSpec) -> KvmBackend:
        with self._lock:
            peer = self._open.get(spec.uri)
            if peer is None:
                opts = dict(self._backend.options.options)
                opts.pop("peers", None)
                opts["uri"] = spec.uri
                opts.setdefault("virt_type", self._backend.virt_type)
                peer = type(self._backend)(attrs.evolve(self._backend.options, options=opts))
                peer.connect()
                self._open[spec.uri] = peer
            return peer

    def hosts(self, local_id: str) -> list[Host]:
        hosts: list[Host] = []
        seen = {local_id}
        for spec in self.specs:
            try:
                with translate():
                    host = self.backend(spec).list_hosts()[0]
            except HvkitError as exc:
                label = spec.name or spec.uri
                extra = {"uri": spec.uri, "error": str(exc)}
                host = Host(label, label, 0, 0, 0, 0, "kvm", connected=False, extra=extra)
            if host.id in seen:
                continue
            seen.add(host.id)
            hosts.append(attrs.evolve(host, extra={**host.extra, "peer": spec.name or spec.uri}))
        return hosts

    def find(self, host: str) -> tuple[PeerSpec, KvmBackend]:
        for spec in self.specs:
            if host in (spec.name, spec.uri):
                return spec, self.backend(spec)
        for spec in self.specs:
            with contextlib.suppress(HvkitError, libvirt.libvirtError):
                peer = self.backend(spec)
                if host in (peer.host_id, peer.host_name):
                    return spec, peer
        raise NotFound(f"no peer host {host!r} (the connection option 'peers' names the hosts to migrate to)")

    def close(self) -> None:
        with self._lock:
            for peer in self._open.values():
                peer.close()
            self._open.clear()


# -- tasks -------------------------------------------------------------------------------------------------
class _JobSource:
    """Runs ``work`` in a thread; ``progress()`` reads the hypervisor's job; ``cancel()`` aborts it."""

    def __init__(self, what: str, work: Callable[[], VM], progress: Callable[[], int], cancel: Callable[[], None]):
        self._what = what
        self._progress = progress
        self._cancel = cancel
        self._done = threading.Event()
        self._info = TaskInfo(TaskState.RUNNING)
        self._percent = 0
        threading.Thread(target=self._run, args=(work,), daemon=True, name=f"hvkit-{what}").start()

    def _run(self, work: Callable[[], VM]) -> None:
        try:
            with translate():
                result = work()
            self._info = TaskInfo(TaskState.SUCCESS, 100, result=result)
        except HvkitError as exc:
            self._info = TaskInfo(TaskState.ERROR, message=str(exc), error=exc)
        except Exception as exc:  # a bug: keep it visible
            err = HvkitError(f"{self._what} failed: {type(exc).__name__}: {exc}")
            err.__cause__ = exc
            self._info = TaskInfo(TaskState.ERROR, message=str(err), error=err)
        self._done.set()

    def poll(self) -> TaskInfo:
        if self._done.is_set():
            return self._info
        try:
            percent = self._progress()
        except Exception:  # the job ended between two reads
            percent = 0
        # disks, then memory: libvirt's totals grow between phases; progress never goes back
        self._percent = max(self._percent, min(99, percent))
        return TaskInfo(TaskState.RUNNING, self._percent)

    def wait_change(self, seconds: float) -> TaskInfo:
        self._done.wait(min(seconds, 0.5))
        return self.poll()

    def cancel(self) -> None:
        with translate():
            self._cancel()


def _task(operation: str, vm: VM, source: _JobSource) -> Task:
    return Task(id=f"{operation}-{vm.id}-{time.monotonic_ns():x}", operation=operation, target=vm.name, source=source)


def _job_percent(dom: libvirt.virDomain) -> int:
    stats = dom.jobStats(0)
    total = int(stats.get("data_total", 0) or 0)
    done = int(stats.get("data_processed", 0) or 0)
    return int(100 * done / total) if total else 0


# -- disks -------------------------------------------------------------------------------------------------
@attrs.define
class _DiskMove:
    element: ET.Element  # the <disk> in the XML for the target
    target: str  # vda ...
    source_vol: libvirt.virStorageVol
    readonly: bool
    new_vol: libvirt.virStorageVol | None = None


def _volume_format(vol: libvirt.virStorageVol) -> DiskFormat:
    fmt_el = ET.fromstring(vol.XMLDesc(0)).find("target/format")
    try:
        return DiskFormat(fmt_el.get("type", "raw")) if fmt_el is not None else DiskFormat.RAW
    except ValueError:
        return DiskFormat.RAW


def _disk_path(disk: ET.Element) -> str | None:
    source = disk.find("source")
    return None if source is None else source.get("file") or source.get("dev")


def _set_disk_path(disk: ET.Element, vol: libvirt.virStorageVol) -> None:
    source = disk.find("source")
    if source is None:
        return
    source.attrib.pop("file", None)
    source.attrib.pop("dev", None)
    block = vol.info()[0] == libvirt.VIR_STORAGE_VOL_BLOCK
    disk.set("type", "block" if block else "file")
    source.set("dev" if block else "file", vol.path())
    driver = disk.find("driver")
    if driver is not None:
        driver.set("type", _volume_format(vol).value)
    for store in disk.findall("backingStore"):
        disk.remove(store)


def _plan_disks(
    backend: KvmBackend, root: ET.Element, target_conn: libvirt.virConnect, pool: str | None, same_host: bool
) -> list[_DiskMove]:
    """The disks that must be copied (not on storage the target shares), with their target pools checked."""
    moves = []
    for disk in root.findall("devices/disk"):
        path = _disk_path(disk)
        if not path:
            continue
        vol = backend.volume_at(path)
        if vol is None:
            if same_host:
                raise InvalidSpec(f"disk {path!r} is in no libvirt storage pool: hvkit cannot move it")
            try:
                target_conn.storageVolLookupByPath(path)
            except libvirt.libvirtError:
                raise InvalidSpec(f"disk {path!r} is in no libvirt storage pool and not on the target") from None
            continue  # shared: the target sees the same volume
        src_pool = vol.storagePoolLookupByVolume()
        ptype = ET.fromstring(src_pool.XMLDesc(0)).get("type", "")
        if same_host and pool in (None, src_pool.name()):
            continue
        if not same_host and pool is None and ptype in _SHARED_POOLS:
            with contextlib.suppress(libvirt.libvirtError):
                target_conn.storagePoolLookupByName(src_pool.name())
                continue
        target_el = disk.find("target")
        moves.append(
            _DiskMove(
                element=disk,
                target=target_el.get("dev", "") if target_el is not None else "",
                source_vol=vol,
                readonly=disk.find("readonly") is not None or disk.get("device") == "cdrom",
            )
        )
    return moves


def _create_targets(moves: list[_DiskMove], target_conn: libvirt.virConnect, pool: str | None) -> None:
    """Create the target volumes (same name, size and format; no backing file), or raise without leftovers."""
    try:
        for move in moves:
            src_pool_name = move.source_vol.storagePoolLookupByVolume().name()
            try:
                tpool = target_conn.storagePoolLookupByName(pool or src_pool_name)
            except libvirt.libvirtError as exc:
                raise NotFound(f"the target has no storage pool {pool or src_pool_name!r}") from exc
            name = move.source_vol.name()
            with contextlib.suppress(libvirt.libvirtError):
                tpool.storageVolLookupByName(name)
                raise AlreadyExists(f"volume {name!r} exists already in the target pool {tpool.name()!r}")
            xml = _domxml.volume_xml(name, move.source_vol.info()[1], _volume_format(move.source_vol))
            move.new_vol = tpool.createXML(xml, 0)
    except BaseException:
        _delete_targets(moves)
        raise


def _delete_targets(moves: list[_DiskMove]) -> None:
    for move in moves:
        if move.new_vol is not None:
            with contextlib.suppress(libvirt.libvirtError):
                move.new_vol.delete(0)
            move.new_vol = None


def _delete_sources(moves: list[_DiskMove]) -> None:
    for move in moves:
        with contextlib.suppress(libvirt.libvirtError):
            move.source_vol.delete(0)


def _stream_copy(src_conn: libvirt.virConnect, dst_conn: libvirt.virConnect, move: _DiskMove) -> None:
    """Copy one volume's content between hosts by storage streams, through a sparse temporary file here."""
    assert move.new_vol is not None
    fd, tmp = tempfile.mkstemp(prefix=".hvkit-migrate-", suffix=".raw")
    try:
        with os.fdopen(fd, "w+b") as f:
            size = _streams.download(src_conn, move.source_vol, f, lambda _d, _t: None)
            f.seek(0)
            _streams.upload(dst_conn, move.new_vol, f, size, lambda _d, _t: None)
    finally:
        Path(tmp).unlink()


# -- host migration ----------------------------------------------------------------------------------------
def migrate_to_host(backend: KvmBackend, peers: Peers, vm: VM, host: str, pool: str | None, live: bool) -> Task:
    spec, peer = peers.find(host)
    dom = backend.domain(vm)
    dconn = peer.conn
    running = bool(dom.isActive())
    xml_flags = libvirt.VIR_DOMAIN_XML_SECURE | (libvirt.VIR_DOMAIN_XML_MIGRATABLE if running else 0)
    if not running:
        xml_flags |= libvirt.VIR_DOMAIN_XML_INACTIVE
    root = ET.fromstring(dom.XMLDesc(xml_flags))
    moves = _plan_disks(backend, root, dconn, pool, same_host=False)
    _create_targets(moves, dconn, pool)
    changed = False
    for move in moves:
        assert move.new_vol is not None
        if move.new_vol.path() != move.source_vol.path():
            changed = True
        _set_disk_path(move.element, move.new_vol)
    dest_xml = ET.tostring(root, encoding="unicode")
    uuid = dom.UUIDString()

    def finish() -> VM:
        _delete_sources(moves)
        found = peer.get_vm(uuid)
        return attrs.evolve(found, extra={**found.extra, "uri": peer.uri})

    if not running:

        def offline() -> VM:
            try:
                for move in moves:
                    _stream_copy(backend.conn, dconn, move)
                new = dconn.defineXML(dest_xml)
            except BaseException:
                _delete_targets(moves)
                raise
            try:
                backend.delete_vm(backend.get_vm(uuid), keep_disks=True)
            except BaseException:
                with contextlib.suppress(libvirt.libvirtError):
                    new.undefine()
                _delete_targets(moves)
                raise
            return finish()

        return _task("vms.migrate", vm, _JobSource("vms.migrate", offline, lambda: 0, lambda: None))

    flags = libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    if live:
        flags |= libvirt.VIR_MIGRATE_LIVE
    params: dict[str, Any] = {}
    copy = [m for m in moves if not m.readonly]
    if copy:
        flags |= libvirt.VIR_MIGRATE_NON_SHARED_DISK
        params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = [m.target for m in copy]
    if changed or moves:
        params[libvirt.VIR_MIGRATE_PARAM_DEST_XML] = dest_xml
        params[libvirt.VIR_MIGRATE_PARAM_PERSIST_XML] = dest_xml
    if spec.migrate_uri:
        params[libvirt.VIR_MIGRATE_PARAM_URI] = spec.migrate_uri.format(vm=uuid)
    if spec.disks_uri and copy:
        params[libvirt.VIR_MIGRATE_PARAM_DISKS_URI] = spec.disks_uri.format(vm=uuid)

    def run() -> VM:
        try:
            for move in moves:
                if move.readonly:
                    _stream_copy(backend.conn, dconn, move)
            if spec.p2p:
                dom.migrateToURI3(spec.dest_uri or spec.uri, params, flags | libvirt.VIR_MIGRATE_PEER2PEER)
            else:
                dom.migrate3(dconn, params, flags)
        except BaseException:
            _delete_targets(moves)
            raise
        return finish()

    return _task("vms.migrate", vm, _JobSource("vms.migrate", run, lambda: _job_percent(dom), dom.abortJob))


# -- storage migration on one host -------------------------------------------------------------------------
def migrate_storage(backend: KvmBackend, vm: VM, pool: str, live: bool) -> Task:
    dom = backend.domain(vm)
    conn = backend.conn
    root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
    moves = _plan_disks(backend, root, conn, pool, same_host=True)
    _create_targets(moves, conn, pool)
    uuid = dom.UUIDString()
    running = bool(dom.isActive())
    copying: list[str] = []

    def redefine() -> VM:
        """Point the persistent definition at the new volumes, delete the old ones."""
        config = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
        by_target = {m.target: m for m in moves}
        for disk in config.findall("devices/disk"):
            target = disk.find("target")
            move = by_target.get(target.get("dev", "") if target is not None else "")
            if move is not None and move.new_vol is not None:
                _set_disk_path(disk, move.new_vol)
        conn.defineXML(ET.tostring(config, encoding="unicode"))
        _delete_sources(moves)
        return backend.get_vm(uuid)

    def offline() -> VM:
        try:
            for move in moves:
                assert move.new_vol is not None
                tpool = move.new_vol.storagePoolLookupByVolume()
                name, capacity = move.new_vol.name(), move.source_vol.info()[1]
                move.new_vol.delete(0)
                move.new_vol = None
                xml = _domxml.volume_xml(name, capacity, _volume_format(move.source_vol))
                move.new_vol = tpool.createXMLFrom(xml, move.source_vol, 0)
            return redefine()
        except BaseException:
            _delete_targets(moves)
            raise

    def online() -> VM:
        pivoted: list[_DiskMove] = []
        try:
            for move in moves:
                if move.readonly:
                    raise InvalidSpec(f"disk {move.target} is read-only media: stop the VM to move it")
            for move in moves:
                assert move.new_vol is not None
                fmt = _volume_format(move.new_vol).value
                disk = ET.Element("disk", type="file")
                ET.SubElement(disk, "source", file=move.new_vol.path())
                ET.SubElement(disk, "driver", type=fmt)
                dest = ET.tostring(disk, encoding="unicode")
                flags = libvirt.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT | libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
                dom.blockCopy(move.target, dest, None, flags)
                copying.append(move.target)
            for move in moves:
                _pivot(dom, move.target)
                copying.remove(move.target)
                pivoted.append(move)
            return redefine()
        except BaseException:
            for target in copying:
                with contextlib.suppress(libvirt.libvirtError):
                    dom.blockJobAbort(target, 0)
            _delete_targets([m for m in moves if m not in pivoted])
            raise

    def progress() -> int:
        done = total = 0
        for target in list(copying):
            info = dom.blockJobInfo(target, 0)
            if info:
                done += int(info.get("cur", 0))
                total += int(info.get("end", 0))
        return int(100 * done / total) if total else 0

    def cancel() -> None:
        for target in list(copying):
            dom.blockJobAbort(target, 0)

    if running and not live:
        raise InvalidSpec(f"VM {vm.name!r} is running: its disks move live (live=True), or stop it first")
    work = online if running else offline
    return _task("vms.migrate", vm, _JobSource("vms.migrate", work, progress, cancel))


def _pivot(dom: libvirt.virDomain, target: str, timeout: float = 3600.0) -> None:
    """Wait until the copy of ``target`` mirrors its source, then switch the VM over to the copy."""

    def read() -> TaskInfo:
        info = dom.blockJobInfo(target, 0)
        if not info:
            raise HvkitError(f"the copy job of disk {target} ended before the switch-over")
        if info.get("end", 0) and info.get("cur") == info.get("end"):
            try:
                dom.blockJobAbort(target, libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)
                return TaskInfo(TaskState.SUCCESS, 100)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_BLOCK_COPY_ACTIVE:
                    raise  # not yet in sync: read again
        return TaskInfo(TaskState.RUNNING)

    wait_for(read, timeout=timeout, what=f"the copy of disk {target}", max_interval=0.5)
