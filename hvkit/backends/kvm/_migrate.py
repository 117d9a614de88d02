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

The peers themselves are in ``_peers``; the disks a move copies (planned, created, copied, removed) in
``_disk_moves``.
"""

from __future__ import annotations

import contextlib
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import libvirt

from ...driver import Task, TaskInfo, wait_for
from ...errors import HvkitError, InvalidSpec
from ...models import VM
from ...models.enums import TaskState
from . import _disk_moves, _domxml
from ._errors import translate

if TYPE_CHECKING:
    from ._peers import Peers
    from .backend import KvmBackend

__all__ = ["migrate_storage", "migrate_to_host"]


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
    moves = _disk_moves.plan_disks(backend, root, dconn, pool, same_host=False)
    _disk_moves.create_targets(moves, dconn, pool)
    changed = False
    for move in moves:
        assert move.new_vol is not None
        if move.new_vol.path() != move.source_vol.path():
            changed = True
        _disk_moves.set_disk_path(move.element, move.new_vol)
    dest_xml = ET.tostring(root, encoding="unicode")
    uuid = dom.UUIDString()

    def finish() -> VM:
        _disk_moves.delete_sources(moves)
        found = peer.get_vm(uuid)
        return attrs.evolve(found, extra={**found.extra, "uri": peer.uri})

    if not running:

        def offline() -> VM:
            try:
                for move in moves:
                    _disk_moves.stream_copy(backend.conn, dconn, move)
                new = dconn.defineXML(dest_xml)
            except BaseException:
                _disk_moves.delete_targets(moves)
                raise
            try:
                backend.delete_vm(backend.get_vm(uuid), keep_disks=True)
            except BaseException:
                with contextlib.suppress(libvirt.libvirtError):
                    new.undefine()
                _disk_moves.delete_targets(moves)
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
                    _disk_moves.stream_copy(backend.conn, dconn, move)
            if spec.p2p:
                dom.migrateToURI3(spec.dest_uri or spec.uri, params, flags | libvirt.VIR_MIGRATE_PEER2PEER)
            else:
                dom.migrate3(dconn, params, flags)
        except BaseException:
            _disk_moves.delete_targets(moves)
            raise
        return finish()

    return _task("vms.migrate", vm, _JobSource("vms.migrate", run, lambda: _job_percent(dom), dom.abortJob))


# -- storage migration on one host -------------------------------------------------------------------------
def migrate_storage(backend: KvmBackend, vm: VM, pool: str, live: bool) -> Task:
    dom = backend.domain(vm)
    conn = backend.conn
    root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
    moves = _disk_moves.plan_disks(backend, root, conn, pool, same_host=True)
    _disk_moves.create_targets(moves, conn, pool)
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
                _disk_moves.set_disk_path(disk, move.new_vol)
        conn.defineXML(ET.tostring(config, encoding="unicode"))
        _disk_moves.delete_sources(moves)
        return backend.get_vm(uuid)

    def offline() -> VM:
        try:
            for move in moves:
                assert move.new_vol is not None
                tpool = move.new_vol.storagePoolLookupByVolume()
                name, capacity = move.new_vol.name(), move.source_vol.info()[1]
                move.new_vol.delete(0)
                move.new_vol = None
                xml = _domxml.volume_xml(name, capacity, _disk_moves.volume_format(move.source_vol))
                move.new_vol = tpool.createXMLFrom(xml, move.source_vol, 0)
            return redefine()
        except BaseException:
            _disk_moves.delete_targets(moves)
            raise

    def online() -> VM:
        pivoted: list[_disk_moves.DiskMove] = []
        try:
            for move in moves:
                if move.readonly:
                    raise InvalidSpec(f"disk {move.target} is read-only media: stop the VM to move it")
            for move in moves:
                assert move.new_vol is not None
                fmt = _disk_moves.volume_format(move.new_vol).value
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
            _disk_moves.delete_targets([m for m in moves if m not in pivoted])
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
