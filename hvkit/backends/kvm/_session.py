"""The libvirt connection: the daemon, its host, lookups of domains and volumes, the VM and volume models
and error translation; what the area modules take instead of the backend."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import libvirt

if TYPE_CHECKING:
    from .backend import KvmBackend

from ...capabilities import Capability
from ...driver import ConnectOptions
from ...errors import ConnectionError, InvalidSpec, NotFound
from ...models import (
    VM,
    Disk,
    DiskFormat,
    Nic,
    PowerState,
    Volume,
)
from . import _domxml, _peers
from ._errors import error_for, translate
from ._uri import libvirt_uri

__all__ = ["KvmSession"]

log = logging.getLogger("hvkit.kvm")
FILE_POOLS = {"dir", "fs", "netfs", "gluster"}
SHARED_POOLS = {"netfs", "iscsi", "iscsi-direct", "rbd", "gluster", "sheepdog", "mpath", "vstorage"}
EXT = {f: "." + f.value for f in DiskFormat} | {DiskFormat.QCOW2: ".qcow2", DiskFormat.RAW: ".img"}
SHUTDOWN_REPEAT = 10.0  # seconds between repeated ACPI shutdown requests during a graceful stop
ALL = frozenset(
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
        Capability.VOLUME_LINKED,
        Capability.VM_MIGRATE,
        Capability.VM_STORAGE_MIGRATE,
        Capability.UEFI,
    }
)
# libvirt's test:///default driver keeps everything in memory: no images to stream, no guests to ask.
TEST_DRIVER_LACKS = frozenset(
    {
        Capability.VM_CONSOLE,
        Capability.VM_GUEST_IPS,
        Capability.VM_LINKED_CLONE,
        Capability.VOLUME_LINKED,
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
EVENTS = {
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


def ensure_event_loop() -> None:
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


def flag(name: str) -> int:
    value: int = getattr(libvirt, name, 0)
    return value


def undefine(dom: libvirt.virDomain, *, keep_nvram: bool) -> None:
    """Undefine ``dom`` with its managed-save image and snapshot and checkpoint metadata, and its NVRAM file
    unless ``keep_nvram``; plainly where the driver takes no flags."""
    flags = (
        flag("VIR_DOMAIN_UNDEFINE_MANAGED_SAVE")
        | flag("VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA")
        | flag("VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA")
        | flag("VIR_DOMAIN_UNDEFINE_KEEP_NVRAM" if keep_nvram else "VIR_DOMAIN_UNDEFINE_NVRAM")
    )
    try:
        dom.undefineFlags(flags)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG):
            raise
        dom.undefine()


def power_state(state: int, reason: int, saved: bool) -> PowerState:
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


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class KvmSession:
    """One libvirt connection: what every area function takes instead of the backend."""

    kind = "kvm"

    def __init__(self, backend: KvmBackend, options: ConnectOptions) -> None:
        self.backend = backend  # for peers and cluster routing: a peer is a whole backend
        self.options = options
        self.capabilities = ALL
        self._conn: libvirt.virConnect | None = None
        self._uri = ""
        self.driver = ""
        self._virt_type = "kvm"
        self._host_id = ""
        self._host_name = ""
        self.cpu_sample: tuple[float, int, int] | None = None
        self._host_cpus = 0  # the host's logical CPUs, read once per connection
        self.subscriptions: set[int] = set()
        self.list_cache: dict[str, tuple[dict[str, Any], bool, VM]] = {}
        self.peers = _peers.Peers(backend)  # other libvirt hosts (option "peers"); _cluster routes to them

    def connect(self) -> None:
        uri = libvirt_uri(self.options)
        wanted = self.options.option("virt_type")
        if wanted is not None and wanted not in ("kvm", "qemu"):
            raise InvalidSpec(f"virt_type must be 'kvm' or 'qemu', got {wanted!r}")
        ensure_event_loop()
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
            self.driver = conn.getType().lower()
            if "+" in uri.split("://", 1)[0]:  # remote: detect a dead peer within about the timeout
                interval = max(1, int(self.options.timeout / 3))
                with contextlib.suppress(libvirt.libvirtError):
                    conn.setKeepAlive(interval, 3)
            caps = ET.fromstring(conn.getCapabilities())
            self._host_name = conn.getHostname()
            self._host_id = caps.findtext("host/uuid") or self._host_name
        if self.driver == "test":
            self._virt_type = "test"
            self.capabilities = ALL - TEST_DRIVER_LACKS
        else:
            self._virt_type = wanted or self.probe_virt_type()
            if not self.efi_available():
                self.capabilities = self.capabilities - {Capability.UEFI}

    def efi_available(self) -> bool:
        """UEFI guests need OVMF firmware the host's libvirt can auto-select (Debian: package ovmf)."""
        try:
            caps = ET.fromstring(self.conn.getDomainCapabilities(None, None, None, self._virt_type, 0))
        except libvirt.libvirtError:
            return False
        return "efi" in {v.text for v in caps.findall("os/enum[@name='firmware']/value")}

    def probe_virt_type(self) -> str:
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

    @property
    def host_name(self) -> str:
        return self._host_name

    def close(self) -> None:
        self.peers.close()
        conn, self._conn = self._conn, None
        if conn is None:
            return
        for cb in list(self.subscriptions):
            with contextlib.suppress(Exception):
                conn.domainEventDeregisterAny(cb)
        self.subscriptions.clear()
        with contextlib.suppress(Exception):
            conn.close()

    @property
    def version(self) -> str:
        with translate():
            number = self.conn.getLibVersion()
        return f"libvirt {number // 1000000}.{number // 1000 % 1000}.{number % 1000}"

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return translate()

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

    def vol(self, ref: str) -> libvirt.virStorageVol:
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
            return self.vol(path)
        except NotFound:
            return None

    def serial_log(self, vm_uuid: str) -> str | None:
        if self.driver != "qemu" or not self._uri.split("?", 1)[0].endswith("/system"):
            return None
        directory = self.options.option("serial_log_dir", "/var/log/libvirt/qemu")
        return f"{directory}/hvkit-{vm_uuid}.serial.log"

    def vm_from_stats(self, dom: libvirt.virDomain, uuid: str, st: dict[str, Any], saved: bool) -> VM:
        cpus = st.get("vcpu.current")
        memory = st.get("balloon.current") or st.get("balloon.maximum")
        if cpus is None or memory is None:  # drivers with partial bulk stats (the in-process test driver)
            return self.vm_from_domain(dom)
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
            power_state=power_state(st.get("state.state", 0), st.get("state.reason", 0), saved),
            cpus=int(cpus),
            memory_mib=int(memory) // 1024,
            uuid=uuid,
            disks=disks,
            host=self._host_id,
            extra={"detail": False},
        )

    def vm_from_domain(self, dom: libvirt.virDomain) -> VM:
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
            power_state=power_state(state, reason, saved),
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

    def host_cpus(self) -> int:
        """The host's logical CPUs (read once: one round trip less per VM created)."""
        if not self._host_cpus:
            self._host_cpus = 1 if self.driver == "test" else int(self.conn.getInfo()[2])
        return self._host_cpus

    def disk_kind(self, vol: libvirt.virStorageVol) -> str:
        vtype = vol.info()[0]
        return "block" if vtype == libvirt.VIR_STORAGE_VOL_BLOCK else "file"

    def volume(self, vol: libvirt.virStorageVol, pool_name: str | None = None) -> Volume:
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


def volume_format(vol: libvirt.virStorageVol) -> DiskFormat | None:
    fmt_el = ET.fromstring(vol.XMLDesc(0)).find("target/format")
    if fmt_el is None:
        return None
    try:
        return DiskFormat(fmt_el.get("type", ""))
    except ValueError:
        return None


_clone_locks_guard = threading.Lock()
_clone_locks: dict[tuple[str, str], threading.Lock] = {}


def refresh_pool(pool: libvirt.virStoragePool, patience: float = 30.0) -> None:
    """Refresh ``pool``; libvirt refuses while any client's volume job runs in it, so wait for that job."""
    deadline = time.monotonic() + patience
    delay = 0.05
    while True:
        try:
            pool.refresh(0)
            return
        except libvirt.libvirtError as exc:
            if "asynchronous jobs running" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def clone_lock(uri: str, vm_id: str) -> threading.Lock:
    with _clone_locks_guard:
        return _clone_locks.setdefault((uri, vm_id), threading.Lock())


def deleter(vol: libvirt.virStorageVol) -> Callable[[], None]:
    return lambda: vol.delete(0)


def set_text(root: ET.Element, tag: str, text: str) -> None:
    el = root.find(tag)
    if el is None:
        el = ET.SubElement(root, tag)
    el.text = text
