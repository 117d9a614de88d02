"""KvmBackend: the hvkit driver for KVM/QEMU (and other libvirt drivers) through libvirt-python."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import threading
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import IO, Any

import libvirt

from ..._options import ConnectOptions
from ..._rollback import Rollback
from ...backend import Backend, Event, ProgressFn
from ...capabilities import Capability
from ...driver import Traits
from ...errors import AlreadyExists, ConnectionError, InvalidSpec, InvalidState, NotFound, Timeout, Unsupported
from ...models import (
    VM,
    Console,
    Disk,
    DiskBus,
    DiskFormat,
    Firmware,
    Host,
    HostMetrics,
    Network,
    Nic,
    PowerState,
    Snapshot,
    StoragePool,
    VMMetrics,
    VMSpec,
    Volume,
)
from ...models.enums import TaskState
from ...tasks import TaskInfo, wait_for
from . import _bases, _cloudinit, _cluster, _domxml, _migrate, _overlays, _streams
from ._errors import error_for, translate
from ._portability import PORTABILITY_NOTES
from ._uri import libvirt_uri

__all__ = ["KvmBackend"]

log = logging.getLogger("hvkit.kvm")
_FILE_POOLS = {"dir", "fs", "netfs", "gluster"}
_SHARED_POOLS = {"netfs", "iscsi", "iscsi-direct", "rbd", "gluster", "sheepdog", "mpath", "vstorage"}
_EXT = {f: "." + f.value for f in DiskFormat} | {DiskFormat.QCOW2: ".qcow2", DiskFormat.RAW: ".img"}
_SHUTDOWN_REPEAT = 10.0  # seconds between repeated ACPI shutdown requests during a graceful stop
_ALL = frozenset(
    {
        Capability.VM_CREATE,
        Capability.VM_DELETE,
        Capability.VM_POWER,
        Capability.VM_PAUSE,
        Capability.VM_SUSPEND,
        Capability.VM_RECONFIGURE,
        Capability.VM_RECONFIGURE_LIVE,
        Capability.VM_CLONE,
        Capability.VM_LINKED_CLONE,
        Capability.VM_CONSOLE,
        Capability.VM_METRICS,
        Capability.VM_GUEST_IPS,
        Capability.VM_EVENTS,
        Capability.CLOUD_INIT,
        Capability.SNAPSHOT,
        Capability.SNAPSHOT_MEMORY,
        Capability.HOST_METRICS,
        Capability.VOLUME_CREATE,
        Capability.VOLUME_DELETE,
        Capability.VOLUME_UPLOAD,
        Capability.VOLUME_DOWNLOAD,
        Capability.VM_MIGRATE,
        Capability.VM_STORAGE_MIGRATE,
        Capability.UEFI,
    }
)
# libvirt's test:///default driver keeps everything in memory: no images to stream, no guests to ask.
_TEST_DRIVER_LACKS = frozenset(
    {
        Capability.VM_CONSOLE,
        Capability.VM_GUEST_IPS,
        Capability.VM_LINKED_CLONE,
        Capability.VM_RECONFIGURE_LIVE,
        Capability.CLOUD_INIT,
        Capability.VOLUME_UPLOAD,
        Capability.VOLUME_DOWNLOAD,
        Capability.HOST_METRICS,
        Capability.SNAPSHOT_MEMORY,
        Capability.VM_MIGRATE,
        Capability.VM_STORAGE_MIGRATE,
        Capability.UEFI,
    }
)
_EVENTS = {
    "VIR_DOMAIN_EVENT_DEFINED": "defined",
    "VIR_DOMAIN_EVENT_UNDEFINED": "undefined",
    "VIR_DOMAIN_EVENT_STARTED": "started",
    "VIR_DOMAIN_EVENT_SUSPENDED": "paused",
    "VIR_DOMAIN_EVENT_RESUMED": "resumed",
    "VIR_DOMAIN_EVENT_STOPPED": "stopped",
    "VIR_DOMAIN_EVENT_SHUTDOWN": "shutdown",
    "VIR_DOMAIN_EVENT_PMSUSPENDED": "pmsuspended",
    "VIR_DOMAIN_EVENT_CRASHED": "crashed",
}

_loop_lock = threading.Lock()
_loop_started = False


def _ensure_event_loop() -> None:
    """Run libvirt's default event loop in a daemon thread (events and keep-alive need it), once."""
    global _loop_started
    with _loop_lock:
        if _loop_started:
            return
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors are raised, not printed
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                try:
                    libvirt.virEventRunDefaultImpl()
                except Exception:  # keep the loop alive; a failed iteration is logged
                    log.exception("libvirt event loop iteration failed")
                    time.sleep(0.1)

        threading.Thread(target=run, name="hvkit-libvirt-events", daemon=True).start()
        _loop_started = True


def _flag(name: str) -> int:
    value: int = getattr(libvirt, name, 0)
    return value


def _power_state(state: int, reason: int, saved: bool) -> PowerState:
    if state == libvirt.VIR_DOMAIN_RUNNING or state == libvirt.VIR_DOMAIN_BLOCKED:
        return PowerState.RUNNING
    if state == libvirt.VIR_DOMAIN_PAUSED:
        if reason in (libvirt.VIR_DOMAIN_PAUSED_MIGRATION, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY):
            return PowerState.MIGRATING
        if reason == libvirt.VIR_DOMAIN_PAUSED_STARTING_UP:
            return PowerState.STARTING
        if reason == libvirt.VIR_DOMAIN_PAUSED_SAVE:
            return PowerState.STOPPING
        if reason == libvirt.VIR_DOMAIN_PAUSED_CRASHED:
            return PowerState.CRASHED
        return PowerState.PAUSED
    if state == libvirt.VIR_DOMAIN_SHUTDOWN:
        return PowerState.STOPPING
    if state == libvirt.VIR_DOMAIN_SHUTOFF:
        if saved:
            return PowerState.SUSPENDED
        if reason == libvirt.VIR_DOMAIN_SHUTOFF_CRASHED:
            return PowerState.CRASHED
        return PowerState.STOPPED
    if state == libvirt.VIR_DOMAIN_CRASHED:
        return PowerState.CRASHED
    if state == libvirt.VIR_DOMAIN_PMSUSPENDED:
        return PowerState.PAUSED
    return PowerState.UNKNOWN


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@_cluster.clustered  # with the option peers: one cluster, each VM call sent to its daemon
class KvmBackend(Backend):
    """KVM/QEMU through libvirt. Options: ``virt_type`` (kvm | qemu), ``vnc_listen``, ``uri``."""

    kind = "kvm"
    capabilities = _ALL
    portability_notes = PORTABILITY_NOTES
    traits = Traits(
        disk_buses=_domxml.SUPPORTED_BUSES,
        disk_export=True,  # local_path: the volume files of this machine's libvirtd
        disk_import=True,
        disk_formats=(DiskFormat.QCOW2, DiskFormat.RAW),
    )

    def __init__(self, options: ConnectOptions) -> None:
        super().__init__(options)
        self._conn: libvirt.virConnect | None = None
        self._uri = ""
        self._driver = ""
        self._virt_type = "kvm"
        self._host_id = ""
        self._host_name = ""
        self._cpu_sample: tuple[float, int, int] | None = None
        self._subscriptions: set[int] = set()
        self._list_cache: dict[str, tuple[dict[str, Any], bool, VM]] = {}
        self._peers = _migrate.Peers(self)  # other libvirt hosts to migrate to (option "peers")

    # -- connection ---------------------------------------------------------------------------------
    def connect(self) -> None:
        uri = libvirt_uri(self.options)
        wanted = self.options.option("virt_type")
        if wanted is not None and wanted not in ("kvm", "qemu"):
            raise InvalidSpec(f"virt_type must be 'kvm' or 'qemu', got {wanted!r}")
        _ensure_event_loop()
        username, password = self.options.username, self.options.password

        def auth(creds: list[list[Any]], _data: object) -> int:
            for cred in creds:
                if cred[0] == libvirt.VIR_CRED_AUTHNAME:
                    cred[4] = username or cred[3] or ""
                elif cred[0] == libvirt.VIR_CRED_PASSPHRASE:
                    if password is None:
                        return -1
                    cred[4] = password
                else:
                    return -1
            return 0

        try:
            conn = libvirt.openAuth(uri, [[libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE], auth, None], 0)
        except libvirt.libvirtError as exc:
            err = error_for(exc)
            if not isinstance(err, ConnectionError):
                err = ConnectionError(f"cannot connect to {uri}: {exc.get_error_message()}")
            raise err from exc
        self._conn = conn
        self._uri = uri
        with translate():
            self._driver = conn.getType().lower()
            if "+" in uri.split("://", 1)[0]:  # remote: detect a dead peer within about the timeout
                interval = max(1, int(self.options.timeout / 3))
                with contextlib.suppress(libvirt.libvirtError):
                    conn.setKeepAlive(interval, 3)
            caps = ET.fromstring(conn.getCapabilities())
            self._host_name = conn.getHostname()
            self._host_id = caps.findtext("host/uuid") or self._host_name
        if self._driver == "test":
            self._virt_type = "test"
            self.capabilities = _ALL - _TEST_DRIVER_LACKS
        else:
            self._virt_type = wanted or self._probe_virt_type()
            if not self._efi_available():
                self.capabilities = self.capabilities - {Capability.UEFI}

    def _efi_available(self) -> bool:
        """UEFI guests need OVMF firmware the host's libvirt can auto-select (Debian: package ovmf)."""
        try:
            caps = ET.fromstring(self.conn.getDomainCapabilities(None, None, None, self._virt_type, 0))
        except libvirt.libvirtError:
            return False
        return "efi" in {v.text for v in caps.findall("os/enum[@name='firmware']/value")}

    def _probe_virt_type(self) -> str:
        try:
            self.conn.getDomainCapabilities(None, None, None, "kvm", 0)
        except libvirt.libvirtError:
            return "qemu"
        return "kvm"

    @property
    def conn(self) -> libvirt.virConnect:
        if self._conn is None:
            raise ConnectionError("the libvirt connection is closed")
        return self._conn

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def virt_type(self) -> str:
        return self._virt_type

    @property
    def host_id(self) -> str:
        return self._host_id

    def close(self) -> None:
        self._peers.close()
        conn, self._conn = self._conn, None
        if conn is None:
            return
        for cb in list(self._subscriptions):
            with contextlib.suppress(Exception):
                conn.domainEventDeregisterAny(cb)
        self._subscriptions.clear()
        with contextlib.suppress(Exception):
            conn.close()

    @property
    def version(self) -> str:
        with translate():
            number = self.conn.getLibVersion()
        return f"libvirt {number // 1000000}.{number // 1000 % 1000}.{number % 1000}"

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return translate()

    # -- lookups (public: the helper modules _migrate and _cluster use them) -------------------------------
    def domain(self, vm: VM | str) -> libvirt.virDomain:
        """The libvirt domain of ``vm`` (a VM or its UUID); NotFound if this daemon has none."""
        ref = vm.id if isinstance(vm, VM) else vm
        try:
            return self.conn.lookupByUUIDString(ref)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_INVALID_ARG):
                raise
        try:
            return self.conn.lookupByName(ref)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise NotFound(f"no VM {ref!r} on {self._uri}") from exc
            raise

    def _vol(self, ref: str) -> libvirt.virStorageVol:
        for lookup in (self.conn.storageVolLookupByKey, self.conn.storageVolLookupByPath):
            try:
                return lookup(ref)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() not in (libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_ERR_INVALID_ARG):
                    raise
        raise NotFound(f"no volume {ref!r} on {self._uri}")

    def volume_at(self, path: str) -> libvirt.virStorageVol | None:
        """The storage volume whose path (or key) is ``path``, or None when no pool of this daemon has it."""
        try:
            return self._vol(path)
        except NotFound:
            return None

    def _serial_log(self, vm_uuid: str) -> str | None:
        if self._driver != "qemu" or not self._uri.split("?", 1)[0].endswith("/system"):
            return None
        directory = self.options.option("serial_log_dir", "/var/log/libvirt/qemu")
        return f"{directory}/hvkit-{vm_uuid}.serial.log"

    # -- inventory ----------------------------------------------------------------------------------
    def list_hosts(self) -> list[Host]:
        """This connection's host, then the hosts of the option ``peers`` (see ``_migrate``)."""
        return [self._local_host(), *self._peers.hosts(self._host_id)]

    def _local_host(self) -> Host:
        info = self.conn.getInfo()  # model, MiB, cpus, MHz, nodes, sockets, cores, threads
        sockets = max(1, info[4] * info[5])
        free = self.conn.getFreeMemory() // (1024 * 1024) if self._driver != "test" else None
        return Host(
            id=self._host_id,
            name=self._host_name,
            cpu_sockets=sockets,
            cpu_cores=sockets * info[6],
            cpu_threads=info[2],
            memory_mib=info[1],
            hypervisor_kind=self.kind,
            hypervisor_version=self.version,
            cpu_model=info[0],
            cpu_mhz=info[3] or None,
            memory_used_mib=None if free is None else max(0, info[1] - free),
            extra={"uri": self._uri, "driver": self._driver, "virt_type": self._virt_type},
        )

    def list_pools(self) -> list[StoragePool]:
        pools = []
        for pool in self.conn.listAllStoragePools(0):
            root = ET.fromstring(pool.XMLDesc(0))
            ptype = root.get("type", "")
            active = bool(pool.isActive())
            _, capacity, _, available = pool.info()
            formats = {DiskFormat.RAW, DiskFormat.QCOW2} if ptype in _FILE_POOLS else {DiskFormat.RAW}
            pools.append(
                StoragePool(
                    id=pool.UUIDString(),
                    name=pool.name(),
                    capacity_bytes=capacity,
                    free_bytes=available,
                    shared=ptype in _SHARED_POOLS,
                    formats=formats,
                    type=ptype,
                    host=None if ptype in _SHARED_POOLS else self._host_id,
                    active=active,
                    extra={"path": root.findtext("target/path") or ""},
                )
            )
        return pools

    def list_networks(self) -> list[Network]:
        nets = []
        for net in self.conn.listAllNetworks(0):
            root = ET.fromstring(net.XMLDesc(0))
            forward = root.find("forward")
            mode = forward.get("mode", "nat") if forward is not None else "isolated"
            bridge = root.find("bridge")
            nets.append(
                Network(
                    id=net.UUIDString(),
                    name=net.name(),
                    type=mode,
                    bridge=bridge.get("name") if bridge is not None else None,
                    active=bool(net.isActive()),
                    host=self._host_id,
                )
            )
        return nets

    def list_vms(self, detail: bool = False) -> list[VM]:
        """Every domain from one bulk getAllDomainStats call (plus one call for managed-save images).

        Name, UUID, power state, CPUs, memory and disks come from the bulk call; notes, tags and NICs
        need each domain's XML, read with ``detail=True`` or ``hv.vms.get()`` (``vm.extra["detail"]`` says which).
        """
        if detail:
            return [self._vm_from_domain(dom) for dom in self.conn.listAllDomains(0)]

        stats = (
            libvirt.VIR_DOMAIN_STATS_STATE
            | libvirt.VIR_DOMAIN_STATS_VCPU
            | libvirt.VIR_DOMAIN_STATS_BALLOON
            | libvirt.VIR_DOMAIN_STATS_BLOCK
        )
        records = self.conn.getAllDomainStats(stats, 0)
        saved = {d.UUIDString() for d in self.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE)}
        # VMs are immutable values: one whose stats did not change since the last listing is reused
        previous, cache = self._list_cache, {}
        result = []
        for dom, st in records:
            uuid = dom.UUIDString()
            is_saved = uuid in saved
            hit = previous.get(uuid)
            vm = (
                hit[2]
                if hit is not None and hit[0] == st and hit[1] == is_saved and "vcpu.current" in st
                else self._vm_from_stats(dom, uuid, st, is_saved)
            )
            cache[uuid] = (st, is_saved, vm)
            result.append(vm)
        self._list_cache = cache
        return result

    def _vm_from_stats(self, dom: libvirt.virDomain, uuid: str, st: dict[str, Any], saved: bool) -> VM:
        cpus = st.get("vcpu.current")
        memory = st.get("balloon.current") or st.get("balloon.maximum")
        if cpus is None or memory is None:  # drivers with partial bulk stats (the in-process test driver)
            return self._vm_from_domain(dom)
        disks = []
        for i in range(int(st.get("block.count", 0))):
            path = st.get(f"block.{i}.path")
            if path and path.endswith("-seed.iso"):  # the cloud-init seed hvkit attached is no disk
                continue
            disks.append(
                Disk(
                    name=st.get(f"block.{i}.name", f"disk{i}"),
                    size_bytes=int(st.get(f"block.{i}.capacity", 0)),
                    volume=path,
                    path=path,
                )
            )
        return VM(
            id=uuid,
            name=dom.name(),
            power_state=_power_state(st.get("state.state", 0), st.get("state.reason", 0), saved),
            cpus=int(cpus),
            memory_mib=int(memory) // 1024,
            uuid=uuid,
            disks=disks,
            host=self._host_id,
            extra={"detail": False},
        )

    def get_vm(self, ref: str) -> VM:
        return self._vm_from_domain(self.domain(ref))

    def _vm_from_domain(self, dom: libvirt.virDomain) -> VM:
        info = _domxml.parse_domain(dom.XMLDesc(0))
        state, reason = dom.state(0)
        saved = bool(state == libvirt.VIR_DOMAIN_SHUTOFF and dom.hasManagedSaveImage(0))
        disks = []
        for dev in info.disks:
            vol = self.volume_at(dev.path) if dev.path else None
            size = 0
            pool_name = None
            vol_id = None
            if vol is not None:
                size = vol.info()[1]
                vol_id = vol.key()
                pool_name = vol.storagePoolLookupByVolume().name()
            elif dev.path:
                with contextlib.suppress(libvirt.libvirtError):
                    size = dom.blockInfo(dev.target, 0)[0]
            if dev.device != "disk":
                continue
            disks.append(Disk(dev.target, size, dev.format, dev.bus, pool_name, vol_id, dev.path or None))
        nics = [Nic(mac=n.mac or "", network=n.network, model=n.model, name=n.target) for n in info.nics]
        return VM(
            id=info.uuid,
            name=info.name,
            power_state=_power_state(state, reason, saved),
            cpus=info.cpus,
            memory_mib=info.memory_kib // 1024,
            uuid=info.uuid,
            disks=disks,
            nics=nics,
            host=self._host_id,
            firmware=info.firmware,
            guest_os=info.guest_os,
            notes=info.notes,
            tags=info.tags,
            extra={
                "detail": True,
                "domain_type": info.domain_type,
                "max_cpus": info.max_cpus,
                "max_memory_mib": info.max_memory_kib // 1024,
                "serial_log": info.serial_log,
                "seed": info.seed,
            },
        )

    # -- VMs ----------------------------------------------------------------------------------------
    def create_vm(self, spec: VMSpec) -> VM:
        if spec.host is not None and spec.host not in (self._host_id, self._host_name):
            raise InvalidSpec(f"the kvm backend creates VMs on its own host ({self._host_name}); connect to the peer")
        extra = dict(spec.extra)
        # room to hot-add CPUs up to the host's logical CPUs, unless the spec says otherwise
        host_cpus = 1 if self._driver == "test" else int(self.conn.getInfo()[2])
        max_cpus = int(extra.get("max_cpus", max(spec.cpus, host_cpus)))
        max_memory = int(extra.get("max_memory_mib", spec.memory_mib))
        if max_cpus < spec.cpus or max_memory < spec.memory_mib:
            raise InvalidSpec("extra max_cpus / max_memory_mib must not be below cpus / memory_mib")
        used: set[str] = set()
        targets = [_domxml.next_target(d.bus, used) for d in spec.disks]  # validates buses before any call
        seed_target = _domxml.next_target(DiskBus.SATA, used) if spec.cloud_init is not None else None
        files = _cloudinit.seed_files(spec.name, spec.cloud_init) if spec.cloud_init is not None else None
        vm_uuid = str(uuidlib.uuid4())
        names = [
            (d.pool or "default", f"{d.name or spec.name + '-' + t}{_EXT.get(d.format or DiskFormat.QCOW2, '.')}")
            for d, t in zip(spec.disks, targets, strict=True)
            if d.volume is None
        ]
        for pool_name, vol_name in names:  # refuse taken names before creating anything
            with contextlib.suppress(libvirt.libvirtError):
                self.conn.storagePoolLookupByName(pool_name).storageVolLookupByName(vol_name)
                raise AlreadyExists(f"volume {vol_name!r} exists already in pool {pool_name!r}")
        devs: list[_domxml.DiskDev] = []
        seed_path = None
        with Rollback() as undo:
            for disk, target in zip(spec.disks, targets, strict=True):
                if disk.volume is not None:
                    vol = self._vol(disk.volume)
                    fmt = _volume_format(vol) or DiskFormat.RAW
                else:
                    pool = self.conn.storagePoolLookupByName(disk.pool or "default")
                    fmt = disk.format or DiskFormat.QCOW2
                    name = f"{disk.name or spec.name + '-' + target}{_EXT.get(fmt, '.')}"
                    vol = pool.createXML(_domxml.volume_xml(name, disk.size_bytes, fmt), 0)
                    undo.push(_deleter(vol), f"delete volume {name}")
                devs.append(_domxml.DiskDev(vol.path(), fmt, disk.bus, target, kind=self._disk_kind(vol)))
            if files is not None and seed_target is not None:
                pool = self._seed_pool(spec)
                data = _cloudinit.seed_iso(files)
                vol = pool.createXML(_domxml.volume_xml(f"{spec.name}-seed.iso", len(data), DiskFormat.RAW), 0)
                undo.push(_deleter(vol), "delete the cloud-init seed")
                _streams.upload_bytes(self.conn, vol, data)
                seed_path = vol.path()
                devs.append(
                    _domxml.DiskDev(seed_path, DiskFormat.RAW, DiskBus.SATA, seed_target, "cdrom", readonly=True)
                )
            xml = _domxml.build_domain(
                name=spec.name,
                uuid=vm_uuid,
                domain_type=self._virt_type,
                cpus=spec.cpus,
                max_cpus=max_cpus,
                memory_kib=spec.memory_mib * 1024,
                max_memory_kib=max_memory * 1024,
                disks=devs,
                nics=[_domxml.NicDev(n.network, n.mac, n.model) for n in spec.nics],
                notes=spec.notes,
                tags=spec.tags,
                guest_os=spec.guest_os,
                seed=seed_path,
                serial_log=self._serial_log(vm_uuid),
                vnc_listen=None
                if self._driver == "test"
                else str(extra.get("vnc_listen", self.options.option("vnc_listen", "127.0.0.1"))),
                host_cpu=self._virt_type == "kvm",
                firmware=spec.firmware,
            )
            dom = self.conn.defineXML(xml)
            if spec.firmware is Firmware.UEFI:
                undo.push(functools.partial(dom.undefineFlags, _flag("VIR_DOMAIN_UNDEFINE_NVRAM")), "undefine it")
            else:
                undo.push(dom.undefine, "undefine the domain")
            return self._vm_from_domain(dom)

    def _seed_pool(self, spec: VMSpec) -> libvirt.virStoragePool:
        for disk in spec.disks:
            if disk.pool:
                return self.conn.storagePoolLookupByName(disk.pool)
        return self.conn.storagePoolLookupByName("default")

    def _disk_kind(self, vol: libvirt.virStorageVol) -> str:
        vtype = vol.info()[0]
        return "block" if vtype == libvirt.VIR_STORAGE_VOL_BLOCK else "file"

    def delete_vm(self, vm: VM, keep_disks: bool) -> None:
        """Undefine the VM and delete its disks; a base it moved off at a linked clone goes once unused."""
        dom = self.domain(vm)
        inactive = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        info = _domxml.parse_domain(inactive)
        bases = _bases.recorded_bases(ET.fromstring(inactive))
        if dom.isActive():
            dom.destroy()
        flags = (
            _flag("VIR_DOMAIN_UNDEFINE_MANAGED_SAVE")
            | _flag("VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA")
            | _flag("VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA")
            | _flag("VIR_DOMAIN_UNDEFINE_NVRAM")
        )
        try:
            dom.undefineFlags(flags)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG):
                raise
            dom.undefine()
        paths = [] if keep_disks else [d.path for d in info.disks if d.device == "disk" and d.path]
        if info.seed:
            paths.append(info.seed)
        for path in paths:
            vol = self.volume_at(path)
            if vol is not None:
                vol.delete(0)
        if bases and not keep_disks:
            _bases.release_bases(self.conn, bases)

    def start_vm(self, vm: VM) -> None:
        self.domain(vm).create()

    def stop_vm(self, vm: VM, force: bool, timeout: float) -> None:
        dom = self.domain(vm)
        if force:
            if dom.isActive():
                dom.destroy()
            elif dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)
            return
        if dom.state(0)[0] == libvirt.VIR_DOMAIN_PAUSED:
            dom.resume()
        dom.shutdown()
        pressed = [time.monotonic()]

        def read() -> TaskInfo:
            done = not dom.isActive()
            if not done and time.monotonic() - pressed[0] >= _SHUTDOWN_REPEAT:
                # a guest still booting may miss one press of the power button: press it again
                with contextlib.suppress(libvirt.libvirtError):
                    dom.shutdown()
                pressed[0] = time.monotonic()
            return TaskInfo(TaskState.SUCCESS if done else TaskState.RUNNING)

        try:
            wait_for(read, timeout=timeout, what=f"shutdown of VM {vm.name!r}", max_interval=0.5)
        except Timeout:
            raise Timeout(
                f"VM {vm.name!r} did not shut down within {timeout:g} s (use force=True to power it off)"
            ) from None

    def reboot_vm(self, vm: VM, force: bool) -> None:
        dom = self.domain(vm)
        if force:
            dom.reset(0)
        else:
            dom.reboot(0)

    def pause_vm(self, vm: VM) -> None:
        self.domain(vm).suspend()

    def resume_vm(self, vm: VM) -> None:
        self.domain(vm).resume()

    def suspend_vm(self, vm: VM) -> None:
        self.domain(vm).managedSave(0)

    def reconfigure_vm(self, vm: VM, cpus: int | None, memory_mib: int | None) -> None:
        dom = self.domain(vm)
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE
        config = dom.XMLDesc(flags)
        kib = None if memory_mib is None else memory_mib * 1024
        if not dom.isActive():
            self.conn.defineXML(_domxml.set_sizing(config, cpus, kib))
            return
        info = _domxml.parse_domain(config)
        if cpus is not None and cpus > info.max_cpus:
            raise InvalidState(
                f"VM {vm.name!r} is running with at most {info.max_cpus} CPUs; stop it to give it {cpus}"
            )
        if kib is not None and kib > info.max_memory_kib:
            raise InvalidState(
                f"VM {vm.name!r} is running with at most {info.max_memory_kib // 1024} MiB; "
                f"stop it to give it {memory_mib} MiB"
            )
        both = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if cpus is not None and cpus != info.cpus:
            dom.setVcpusFlags(cpus, both)
        if kib is not None:
            dom.setMemoryFlags(kib, both)

    def clone_vm(self, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> VM:
        """Full or linked clone. Linked clones of one source run one at a time in this process (each gives
        the source a new overlay), so concurrent ``wait=False`` clones of a template are safe."""
        if not linked:
            return self._clone_vm(vm, name, linked, host, pool)
        with _clone_lock(self._uri, vm.id):
            return self._clone_vm(vm, name, linked, host, pool)

    def _clone_vm(self, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> VM:
        if host is not None and host not in (self._host_id, self._host_name):
            raise InvalidSpec(
                f"the kvm backend clones on the source's host only ({self._host_name}); migrate the clone after"
            )
        src = self.domain(vm)
        running = bool(src.isActive())
        if src.hasManagedSaveImage(0) or (running and not linked):
            raise InvalidState(
                f"cannot clone VM {vm.name!r}: it is {vm.power_state.value}; stop it first"
                + ("" if src.hasManagedSaveImage(0) else " (or make a linked clone, which a running VM gives)")
            )
        if running and pool is not None:
            raise InvalidSpec("a linked clone of a running VM stays on its source's pools; stop it to pass pool")
        target_pool = self.conn.storagePoolLookupByName(pool) if pool is not None else None
        root = ET.fromstring(src.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
        _bases.forget_bases(root)  # the source's bases stay the source's
        # a running source moves onto new overlays first (live): the images the clone links to are then frozen
        # (on a failure later the source simply stays on its overlays, whose content is the same)
        if running:
            _overlays.freeze_running(self.conn, src, vm.name, lambda _undo, _what: None)

        new_uuid = str(uuidlib.uuid4())
        _set_text(root, "name", name)
        _set_text(root, "uuid", new_uuid)
        for iface in root.findall("devices/interface"):
            for mac in iface.findall("mac"):
                iface.remove(mac)
            for tap in iface.findall("target"):
                iface.remove(tap)
        for graphics in root.findall("devices/graphics"):
            if graphics.get("autoport") == "yes":
                graphics.attrib.pop("port", None)
        log_el = root.find("devices/serial/log")
        new_log = self._serial_log(new_uuid)
        if log_el is not None and new_log:
            log_el.set("file", new_log)
        seed_el = root.find(f"metadata/{{{_domxml.NS}}}vm/{{{_domxml.NS}}}seed")
        source_rebase: list[tuple[ET.Element, str]] = []
        with Rollback() as undo:
            for disk in root.findall("devices/disk"):
                source = disk.find("source")
                if source is None:
                    continue
                path = source.get("file") or source.get("dev")
                if not path:
                    continue
                vol = self._vol(path)
                vol_pool = target_pool or vol.storagePoolLookupByVolume()
                fmt = _volume_format(vol) or DiskFormat.RAW
                target = disk.find("target")
                dev = target.get("dev", "disk") if target is not None else "disk"
                capacity = vol.info()[1]
                if seed_el is not None and seed_el.text == path:
                    new_vol = vol_pool.createXMLFrom(_domxml.volume_xml(f"{name}-seed.iso", capacity, fmt), vol, 0)
                    undo.push(_deleter(new_vol), "delete the clone's seed")
                    new_fmt = fmt
                elif linked and disk.get("device", "disk") == "disk":
                    new_name = f"{name}-{dev}.qcow2"
                    new_vol = vol_pool.createXML(
                        _domxml.volume_xml(new_name, capacity, DiskFormat.QCOW2, (path, fmt)), 0
                    )
                    undo.push(_deleter(new_vol), f"delete volume {new_name}")
                    source_rebase.append((disk, path))
                    new_fmt = DiskFormat.QCOW2
                else:
                    new_name = f"{name}-{dev}{_EXT.get(fmt, '.' + fmt.value)}"
                    new_vol = vol_pool.createXMLFrom(_domxml.volume_xml(new_name, capacity, fmt), vol, 0)
                    undo.push(_deleter(new_vol), f"delete volume {new_name}")
                    new_fmt = fmt
                new_path = new_vol.path()
                source.attrib.pop("file", None)
                source.attrib.pop("dev", None)
                source.set("file" if self._disk_kind(new_vol) == "file" else "dev", new_path)
                driver = disk.find("driver")
                if driver is not None:
                    driver.set("type", new_fmt.value)
                for store in disk.findall("backingStore"):
                    disk.remove(store)
                if seed_el is not None and seed_el.text == path:
                    seed_el.text = new_path
            dom = self.conn.defineXML(ET.tostring(root, encoding="unicode"))
            undo.push(dom.undefine, f"undefine {name}")
            if source_rebase and not running:
                self._rebase_source(src, vm.name, source_rebase, undo)
            elif source_rebase:  # it is on its new overlays already: its former images are now its bases
                src_root = ET.fromstring(src.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
                _bases.record_bases(src_root, [path for _, path in source_rebase])
                self.conn.defineXML(ET.tostring(src_root, encoding="unicode"))
            return self._vm_from_domain(dom)

    def _rebase_source(
        self, src: libvirt.virDomain, src_name: str, disks: list[tuple[ET.Element, str]], undo: Rollback
    ) -> None:
        """After a linked clone: give the source its own overlay, so the shared base never changes again."""
        root = ET.fromstring(src.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
        original = ET.tostring(root, encoding="unicode")
        base_paths = {path for _, path in disks}
        token = uuidlib.uuid4().hex[:8]
        for disk in root.findall("devices/disk"):
            source = disk.find("source")
            path = source.get("file") if source is not None else None
            if source is None or path not in base_paths or path is None:
                continue
            vol = self._vol(path)
            fmt = _volume_format(vol) or DiskFormat.RAW
            target = disk.find("target")
            dev = target.get("dev", "disk") if target is not None else "disk"
            pool = vol.storagePoolLookupByVolume()
            overlay = pool.createXML(
                _domxml.volume_xml(f"{src_name}-{dev}-{token}.qcow2", vol.info()[1], DiskFormat.QCOW2, (path, fmt)), 0
            )
            undo.push(_deleter(overlay), "delete the source's new overlay")
            source.set("file", overlay.path())
            driver = disk.find("driver")
            if driver is not None:
                driver.set("type", "qcow2")
            for store in disk.findall("backingStore"):
                disk.remove(store)
        _bases.record_bases(root, base_paths)  # its former images, now the clones' bases, stay its own
        self.conn.defineXML(ET.tostring(root, encoding="unicode"))
        undo.push(lambda: self.conn.defineXML(original), "restore the source's disks")

    def migrate_vm(self, vm: VM, host: str | None, pool: str | None, live: bool) -> Any:
        """To a peer host (live, disks copied unless shared) and/or disks to another pool: see ``_migrate``."""
        if self._driver == "test":
            raise Unsupported(self.kind, "vms.migrate", "libvirt's test driver does not migrate")
        if host is not None and host not in (self._host_id, self._host_name):
            return _migrate.migrate_to_host(self, self._peers, vm, host, pool, live)
        if pool is None:
            raise InvalidSpec(f"VM {vm.name!r} is on host {self._host_name!r} already")
        return _migrate.migrate_storage(self, vm, pool, live)

    def console(self, vm: VM) -> Console:
        dom = self.domain(vm)
        info = _domxml.parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE))
        if info.vnc is None or info.vnc[1] is None:
            raise Unsupported(self.kind, "vms.console", f"VM {vm.name!r} has no VNC display")
        listen, port, password = info.vnc
        host = listen if listen and listen not in ("0.0.0.0", "::") else self._host_name
        return Console(protocol="vnc", host=host, port=port, url=f"vnc://{host}:{port}", password=password)

    def guest_ips(self, vm: VM) -> list[str]:
        dom = self.domain(vm)
        if not dom.isActive():
            return []
        found: list[str] = []
        sources = [libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT]
        for source in sources:
            try:
                ifaces = dom.interfaceAddresses(source, 0)
            except libvirt.libvirtError:  # no guest agent, or no lease support
                continue
            for name, iface in (ifaces or {}).items():
                if name == "lo":
                    continue
                for addr in iface.get("addrs") or []:
                    ip = addr.get("addr")
                    if ip and not ip.startswith(("127.", "fe80:", "::1")) and ip not in found:
                        found.append(ip)
        return found

    def read_serial(self, vm: VM) -> Callable[[], str]:
        """Open the VM's serial console through libvirt; the returned function gives everything read so far."""
        dom = self.domain(vm)
        stream = self.conn.newStream(libvirt.VIR_STREAM_NONBLOCK)
        dom.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
        chunks: list[bytes] = []

        def read() -> str:
            while True:
                try:
                    data = stream.recv(65536)
                except libvirt.libvirtError:
                    break
                if data == -2 or not data or not isinstance(data, bytes):
                    break
                chunks.append(data)
            return b"".join(chunks).decode(errors="replace")

        return read

    def vm_metrics(self, vms: list[VM]) -> list[VMMetrics]:
        wanted = {vm.id for vm in vms}
        stats = (
            libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
            | libvirt.VIR_DOMAIN_STATS_BALLOON
            | libvirt.VIR_DOMAIN_STATS_BLOCK
            | libvirt.VIR_DOMAIN_STATS_INTERFACE
        )
        now = _now()
        by_id: dict[str, VMMetrics] = {}
        for dom, st in self.conn.getAllDomainStats(stats, 0):
            uuid = dom.UUIDString()
            if uuid not in wanted:
                continue
            used = None
            if "balloon.rss" in st:
                used = int(st["balloon.rss"]) // 1024
            elif "balloon.current" in st and "balloon.unused" in st:
                used = (int(st["balloon.current"]) - int(st["balloon.unused"])) // 1024
            blocks = range(int(st.get("block.count", 0)))
            nets = range(int(st.get("net.count", 0)))
            by_id[uuid] = VMMetrics(
                vm=uuid,
                timestamp=now,
                cpu_time_ns=st.get("cpu.time"),
                memory_used_mib=used,
                disk_read_bytes=sum(int(st.get(f"block.{i}.rd.bytes", 0)) for i in blocks) if blocks else None,
                disk_write_bytes=sum(int(st.get(f"block.{i}.wr.bytes", 0)) for i in blocks) if blocks else None,
                net_rx_bytes=sum(int(st.get(f"net.{i}.rx.bytes", 0)) for i in nets) if nets else None,
                net_tx_bytes=sum(int(st.get(f"net.{i}.tx.bytes", 0)) for i in nets) if nets else None,
            )
        return [by_id.get(vm.id) or VMMetrics(vm=vm.id, timestamp=now) for vm in vms]

    def host_metrics(self, hosts: list[Host]) -> list[HostMetrics]:
        def sample() -> tuple[float, int, int]:
            cpu = self.conn.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS, 0)
            total = sum(int(v) for k, v in cpu.items() if k in ("kernel", "user", "idle", "iowait"))
            return time.monotonic(), total, int(cpu.get("idle", 0)) + int(cpu.get("iowait", 0))

        first = self._cpu_sample
        if first is None or time.monotonic() - first[0] > 60:
            first = sample()
            time.sleep(0.2)
        second = sample()
        self._cpu_sample = second
        delta = second[1] - first[1]
        usage = None if delta <= 0 else max(0.0, min(1.0, 1 - (second[2] - first[2]) / delta))
        mem = self.conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)
        used = (
            int(mem.get("total", 0)) - int(mem.get("free", 0)) - int(mem.get("buffers", 0)) - int(mem.get("cached", 0))
        ) // 1024
        now = _now()
        return [HostMetrics(host=h.id, timestamp=now, cpu_usage=usage, memory_used_mib=used) for h in hosts]

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        names = {getattr(libvirt, k): v for k, v in _EVENTS.items() if hasattr(libvirt, k)}

        def on_event(_conn: object, dom: libvirt.virDomain, event: int, detail: int, _opaque: object) -> None:
            kind = names.get(event, str(event))
            if event == libvirt.VIR_DOMAIN_EVENT_STOPPED and detail == libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED:
                kind = "suspended"
            try:
                callback({"vm": dom.UUIDString(), "name": dom.name(), "event": kind, "detail": detail})
            except Exception:
                log.exception("event callback failed")

        cb_id = self.conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_event, None)
        self._subscriptions.add(cb_id)

        def stop() -> None:
            if cb_id in self._subscriptions:
                self._subscriptions.discard(cb_id)
                if self._conn is not None:
                    with contextlib.suppress(libvirt.libvirtError):
                        self._conn.domainEventDeregisterAny(cb_id)

        return stop

    # -- snapshots ----------------------------------------------------------------------------------
    def list_snapshots(self, vm: VM) -> list[Snapshot]:
        dom = self.domain(vm)
        result = []
        for snap in dom.listAllSnapshots(0):
            root = ET.fromstring(snap.getXMLDesc(0))
            created = root.findtext("creationTime")
            state = root.findtext("state") or ""
            memory = root.find("memory")
            has_memory = (
                memory.get("snapshot") in ("internal", "external")
                if memory is not None
                else state in ("running", "paused")
            )
            result.append(
                Snapshot(
                    id=snap.getName(),
                    name=snap.getName(),
                    vm=vm.id,
                    parent=root.findtext("parent/name"),
                    created=dt.datetime.fromtimestamp(int(created), dt.UTC) if created else None,
                    description=root.findtext("description") or "",
                    memory=has_memory,
                    current=bool(snap.isCurrent(0)),
                )
            )
        return result

    def create_snapshot(self, vm: VM, name: str, description: str, memory: bool, quiesce: bool) -> Snapshot:
        if quiesce:
            raise Unsupported(
                self.kind, "snapshots.create(quiesce=True)", "libvirt quiesces only external disk-only snapshots"
            )
        dom = self.domain(vm)
        if dom.isActive() and not memory:
            raise InvalidState(
                f"VM {vm.name!r} is running: QEMU's internal snapshots of a running VM keep its memory "
                "(pass memory=True, or stop the VM)"
            )
        dom.snapshotCreateXML(_domxml.snapshot_xml(name, description), 0)
        return next(s for s in self.list_snapshots(vm) if s.name == name)

    def revert_snapshot(self, vm: VM, snapshot: Snapshot) -> None:
        """Revert; a snapshot inside an image linked clones share is first moved onto a copy (see _overlays)."""
        from ._uri import is_local_uri

        local = self._driver == "qemu" and is_local_uri(self._uri)
        _overlays.revert_unshared(self.conn, self.domain(vm), snapshot.id, local=local)

    def delete_snapshot(self, vm: VM, snapshot: Snapshot, children: bool) -> None:
        dom = self.domain(vm)
        snap = dom.snapshotLookupByName(snapshot.id, 0)
        snap.delete(libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN if children else 0)

    # -- volumes ------------------------------------------------------------------------------------
    def _volume(self, vol: libvirt.virStorageVol, pool_name: str | None = None) -> Volume:
        root = ET.fromstring(vol.XMLDesc(0))
        fmt_el = root.find("target/format")
        try:
            fmt = DiskFormat(fmt_el.get("type", "")) if fmt_el is not None else None
        except ValueError:
            fmt = None
        backing = root.findtext("backingStore/path")
        return Volume(  # key, name and path from the XML: one call per volume
            id=root.findtext("key") or vol.key(),
            name=root.findtext("name") or vol.name(),
            pool=pool_name or vol.storagePoolLookupByVolume().name(),
            capacity_bytes=int(root.findtext("capacity") or 0),
            allocation_bytes=int(root.findtext("allocation") or 0),
            format=fmt,
            path=root.findtext("target/path") or vol.path(),
            backing=backing or None,
        )

    def list_volumes(self, pool: StoragePool) -> list[Volume]:
        p = self.conn.storagePoolLookupByName(pool.name)
        if not p.isActive():
            return []
        return [self._volume(v, pool.name) for v in p.listAllVolumes(0)]

    def get_volume(self, ref: str) -> Volume:
        return self._volume(self._vol(ref))

    def create_volume(self, pool: StoragePool, name: str, size_bytes: int, fmt: DiskFormat) -> Volume:
        p = self.conn.storagePoolLookupByName(pool.name)
        vol = p.createXML(_domxml.volume_xml(name, size_bytes, fmt), 0)
        return self._volume(vol, pool.name)

    def delete_volume(self, volume: Volume) -> None:
        self._vol(volume.id).delete(0)

    def upload_volume(self, volume: Volume, source: IO[bytes], size: int, progress: ProgressFn) -> Volume:
        vol = self._vol(volume.id)
        fmt = _volume_format(vol)
        if fmt in (None, DiskFormat.RAW):
            _streams.upload(self.conn, vol, source, size, progress)
            return self._volume(vol)
        with self._raw_twin(vol, volume) as raw:
            _streams.upload(self.conn, raw, source, size, progress)
            pool = vol.storagePoolLookupByVolume()
            xml = vol.XMLDesc(0)
            if ET.fromstring(xml).find("backingStore/path") is not None:
                raise InvalidState(
                    f"volume {volume.name!r} is a linked clone; upload into a volume without a backing file"
                )
            vol.delete(0)
            new = pool.createXMLFrom(_domxml.volume_xml(volume.name, volume.capacity_bytes, fmt), raw, 0)
        return self._volume(new)

    def download_volume(self, volume: Volume, sink: IO[bytes], progress: ProgressFn) -> int:
        vol = self._vol(volume.id)
        fmt = _volume_format(vol)
        if fmt in (None, DiskFormat.RAW) and ET.fromstring(vol.XMLDesc(0)).find("backingStore/path") is None:
            return _streams.download(self.conn, vol, sink, progress)
        with self._raw_twin(vol, volume, copy=True) as raw:
            return _streams.download(self.conn, raw, sink, progress)

    def local_path(self, volume: Volume) -> str | None:
        """The volume's image file when this machine's own libvirtd keeps it in a file pool, else None.

        Local means ``qemu:///system`` or ``qemu:///session`` through the default socket (see
        ``_uri.is_local_uri``); a remote URI, or a daemon behind a ``socket=`` of its own, gives None.
        The volume must be a file (a dir/fs/netfs pool, not a block device) that this process can read
        and write. The option ``local_files`` overrides the URI rule: ``false`` never, ``true`` always
        (e.g. a remote host whose images are mounted here at the same paths).
        """
        import os

        from ._uri import is_local_uri

        explicit = self.options.option("local_files")
        local = self.options.bool_option("local_files", False) if explicit is not None else None
        if local is False or self._driver != "qemu" or (local is None and not is_local_uri(self._uri)):
            return None
        try:
            vol = self._vol(volume.id)
            vtype = vol.info()[0]
            path = vol.path()
            pool_type = ET.fromstring(vol.storagePoolLookupByVolume().XMLDesc(0)).get("type", "")
        except (libvirt.libvirtError, NotFound):
            return None
        if vtype != libvirt.VIR_STORAGE_VOL_FILE or pool_type not in _FILE_POOLS:
            return None
        if not (os.path.isfile(path) and os.access(path, os.R_OK | os.W_OK)):  # noqa: PTH113
            return None
        return str(path)

    @contextlib.contextmanager
    def _raw_twin(
        self, vol: libvirt.virStorageVol, volume: Volume, copy: bool = False
    ) -> Iterator[libvirt.virStorageVol]:
        """A temporary raw volume beside ``vol`` (a converted copy of it with ``copy``), deleted after."""
        pool = vol.storagePoolLookupByVolume()
        name = f".hvkit-{uuidlib.uuid4().hex[:12]}.raw"
        xml = _domxml.volume_xml(name, volume.capacity_bytes, DiskFormat.RAW)
        raw = pool.createXMLFrom(xml, vol, 0) if copy else pool.createXML(xml, 0)
        try:
            yield raw
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                raw.delete(0)


def _volume_format(vol: libvirt.virStorageVol) -> DiskFormat | None:
    fmt_el = ET.fromstring(vol.XMLDesc(0)).find("target/format")
    if fmt_el is None:
        return None
    try:
        return DiskFormat(fmt_el.get("type", ""))
    except ValueError:
        return None


_clone_locks_guard = threading.Lock()
_clone_locks: dict[tuple[str, str], threading.Lock] = {}


def _clone_lock(uri: str, vm_id: str) -> threading.Lock:
    with _clone_locks_guard:
        return _clone_locks.setdefault((uri, vm_id), threading.Lock())


def _deleter(vol: libvirt.virStorageVol) -> Callable[[], None]:
    return lambda: vol.delete(0)


def _set_text(root: ET.Element, tag: str, text: str) -> None:
    el = root.find(tag)
    if el is None:
        el = ET.SubElement(root, tag)
    el.text = text
