"""The VMware driver: vCenter (``vcenter://user@vc/Datacenter``) and standalone ESXi (``esxi://root@host``).

Reads go through the PropertyCollector only (see ``_property_collector``); tasks are followed through
``WaitForUpdatesEx`` (see ``_tasks``). Operations that need vCenter (clone, relocate) are dropped from
the capabilities when the server turns out to be a standalone host.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any, ClassVar

from pyVim import connect as _connect
from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

from ..._options import ConnectOptions
from ...backend import Backend, ProgressFn
from ...capabilities import Capability
from ...driver import Limits, MacRange, TaskInfo, Traits, wait_for
from ...errors import (
    AlreadyExists,
    AuthenticationError,
    BackendError,
    InvalidSpec,
    InvalidState,
    NotFound,
    Timeout,
    Unsupported,
)
from ...models import (
    VM,
    Console,
    DiskBus,
    DiskFormat,
    Firmware,
    Host,
    HostMetrics,
    Network,
    NicModel,
    PowerState,
    Snapshot,
    StoragePool,
    TaskState,
    VMMetrics,
    VMSpec,
    Volume,
)
from ...tasks import Task
from ._datastore_files import FileTransfer, split_datastore_path
from ._devices import DISKS_PER_BUS, GUEST_IDS, NIC_MODELS, build_devices, guest_family, read_disks, read_nics
from ._errors import translating
from ._portability import PORTABILITY_NOTES
from ._property_collector import Collector, Props
from ._tasks import task_of

_pyvim: Any = _connect
vim: Any = _vim  # pyVmomi's generated types are untyped for mypy
vmodl: Any = _vmodl

__all__ = ["VmwareBackend"]

log = logging.getLogger("hvkit.vmware")

_POWER = {
    "poweredOn": PowerState.RUNNING,
    "poweredOff": PowerState.STOPPED,
    "suspended": PowerState.SUSPENDED,
}
VM_PROPS = [
    "name",
    "config.uuid",
    "config.instanceUuid",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "config.hardware.device",
    "config.firmware",
    "config.guestId",
    "config.annotation",
    "config.template",
    "config.files.vmPathName",
    "runtime.powerState",
    "runtime.host",
    "guest.net",
    "guest.ipAddress",
    "guest.toolsRunningStatus",
    "guest.toolsStatus",
    "resourcePool",
    "datastore",
]
# What ``vm_list="brief"`` reads: the fields most listings show, and nothing costly per VM (every
# property read costs XML parsing per VM in pyvmomi; devices cost the most). vms.get() reads VM_PROPS.
VM_BRIEF_PROPS = [
    "name",
    "runtime.powerState",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "runtime.host",
    "guest.net",
    "config.template",
]
# The default listing: what most callers and fleet planning use (identity, sizing, placement, the datastores a
# VM's files are on, guest family), and no devices (read with list(detail=True) or vms.get()).
VM_LIST_PROPS = [*VM_BRIEF_PROPS, "config.uuid", "config.guestId", "datastore"]
HOST_PROPS = [
    "name",
    "parent",
    "summary.hardware",
    "summary.quickStats",
    "summary.config.product",
    "runtime.inMaintenanceMode",
    "runtime.connectionState",
]
DS_PROPS = ["name", "summary", "host", "browser"]
LINKED_CLONE_BASE = "hvkit-linked-clone-base"
_VCENTER_ONLY = frozenset(
    {
        Capability.VM_CLONE,
        Capability.VM_LINKED_CLONE,
        Capability.VM_TEMPLATE,
        Capability.VM_MIGRATE,
        Capability.VM_STORAGE_MIGRATE,
    }
)
_CAPACITY = re.compile(r"^\s*RW\s+(\d+)\s+(FLAT|VMFS|SPARSE|VMFSSPARSE|SESPARSE)", re.MULTILINE)
_SKIP_VMDK = ("-flat.vmdk", "-delta.vmdk", "-ctk.vmdk", "-sesparse.vmdk", "-rdm.vmdk", "-rdmp.vmdk")


def _escape(name: str) -> str:
    """A VM name as vSphere takes it: '%' escaped, so a name holding '%2f' is never read as an escape."""
    return name.replace("%", "%25")


def _unescape(name: str) -> str:
    """A VM name as vSphere stores it ('%', '/', '\\' escaped) back as the user gave it."""
    return re.sub(r"%(25|2[fF]|5[cC])", lambda m: {"25": "%", "2f": "/", "5c": "\\"}[m.group(1).lower()], name)


def _descriptor(name: str, capacity_bytes: int) -> bytes:
    sectors = capacity_bytes // 512
    return (
        '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="vmfs"\n\n'
        f'RW {sectors} VMFS "{name}-flat.vmdk"\n\n'
        'ddb.adapterType = "lsilogic"\nddb.virtualHWVersion = "13"\n'
    ).encode()


class VmwareBackend(Backend):
    """pyvmomi driver for vCenter and ESXi."""

    kind: ClassVar[str] = "vcenter"
    portability_notes = PORTABILITY_NOTES
    capability_notes: ClassVar[dict[Capability, str]] = dict.fromkeys(
        _VCENTER_ONLY, "vCenter only, not on a standalone ESXi"
    )
    capabilities: frozenset[Capability] = frozenset(
        {
            Capability.VM_CREATE,
            Capability.VM_DELETE,
            Capability.VM_POWER,
            Capability.VM_SUSPEND,
            Capability.VM_RECONFIGURE,
            Capability.VM_TEMPLATE,
            Capability.VM_CLONE,
            Capability.VM_LINKED_CLONE,
            Capability.VM_CONSOLE,
            Capability.VM_METRICS,
            Capability.VM_GUEST_IPS,
            Capability.VM_MIGRATE,
            Capability.VM_STORAGE_MIGRATE,
            Capability.UEFI,
            Capability.SNAPSHOT,
            Capability.SNAPSHOT_MEMORY,
            Capability.HOST_METRICS,
            Capability.VOLUME_CREATE,
            Capability.VOLUME_DELETE,
            Capability.VOLUME_UPLOAD,
            Capability.VOLUME_DOWNLOAD,
        }
    )

    traits = Traits(
        disk_buses=frozenset(DISKS_PER_BUS),
        default_disk_bus=DiskBus.SCSI,
        nic_models=NIC_MODELS,
        default_nic_model=NicModel.VMXNET3,
        disk_formats=(DiskFormat.VMDK,),
        mac_ranges=(MacRange("00:50:56:00:00:00", "00:50:56:3f:ff:ff"),),  # static MACs vSphere takes
        guest_tools="VMware Tools (open-vm-tools)",
        limits=Limits(
            max_cpus=768,  # vSphere 8 configuration maximums
            max_memory_mib=24 * 1024 * 1024,
            disks_per_bus=DISKS_PER_BUS,
            max_name_length=80,
        ),
    )

    def __init__(self, options: ConnectOptions) -> None:
        super().__init__(options)
        kind = options.url.kind
        setattr(self, "kind", kind if kind in ("esxi", "vcenter") else "vcenter")  # noqa: B010 - per connection
        if kind == "esxi":
            self.capabilities = self.capabilities - _VCENTER_ONLY
        self._si: Any = None
        self._content: Any = None
        self._collector: Collector | None = None
        self._page_size = options.int_option("page_size", 0, low=0, high=100_000) or None
        self._dc: Any = None
        self._dc_name = ""
        self._dc_folders: Props = {}
        self._files: FileTransfer | None = None
        self._counters: dict[str, int] | None = None
        self._lock = threading.Lock()
        self.soap_requests = 0  # SOAP calls sent on this connection (for benchmarks and diagnostics)

    # -- connection --------------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        if not self.options.verify_tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        return ssl.create_default_context(cafile=self.options.ca_file)

    def connect(self) -> None:
        url = self.options.url
        if not url.host:
            raise InvalidSpec(f"a {self.kind} URL needs a host, like {self.kind}://user@host")
        if not self.options.username:
            raise AuthenticationError(
                f"no user name for {url.host}: put it in the URL ({self.kind}://user@host) or pass username="
            )
        port = url.port or 443
        context = self._ssl_context()
        with translating():
            self._si = _pyvim.SmartConnect(
                host=url.host,
                port=port,
                user=self.options.username,
                pwd=self.options.password or "",
                sslContext=context,
                httpConnectionTimeout=self.options.timeout,
                disableSslCertValidation=not self.options.verify_tls,
            )
            self._count_requests(self._si._stub)
            self._content = self._si.RetrieveContent()
            self._collector = Collector(self._content, self._page_size)
            api_type = self._content.about.apiType
            if api_type == "HostAgent":
                self.capabilities = self.capabilities - _VCENTER_ONLY
                if self.kind == "vcenter":
                    log.info("%s is a standalone ESXi host; vCenter-only operations are off", url.host)
            self._pick_datacenter(url.path.strip("/"))
        self._files = FileTransfer(url.host, port, context, self.options.timeout, self._cookie)

    def _count_requests(self, stub: Any) -> None:
        invoke = stub.InvokeMethod

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.soap_requests += 1
            return invoke(*args, **kwargs)

        stub.InvokeMethod = counted

    def _cookie(self) -> str:
        return str(self._si._stub.cookie) if self._si is not None else ""

    def _pick_datacenter(self, wanted: str) -> None:
        found = self.pc.collect(
            self._content.rootFolder,
            {vim.Datacenter: ["name", "vmFolder", "hostFolder", "datastoreFolder", "networkFolder"]},
        )
        if not found:
            raise NotFound("the server has no datacenter")
        if wanted:
            name = wanted.split("/")[-1]
            match = [(o, p) for o, p in found if p.get("name") == name]
            if not match:
                names = ", ".join(sorted(p.get("name", "?") for _, p in found))
                raise NotFound(f"no datacenter {name!r} (there are: {names})")
            obj, props = match[0]
        elif len(found) == 1:
            obj, props = found[0]
        else:
            names = ", ".join(sorted(p.get("name", "?") for _, p in found))
            raise InvalidSpec(
                f"the server has several datacenters; name one in the URL path ({self.kind}://host/NAME): {names}"
            )
        self._dc, self._dc_name, self._dc_folders = obj, props["name"], props

    def close(self) -> None:
        si, self._si = self._si, None
        if si is None:
            return
        try:
            if self._collector is not None:
                self._collector.close()
            _pyvim.Disconnect(si)
        except Exception as exc:  # closing must not raise
            log.debug("disconnect failed: %s", exc)

    @property
    def version(self) -> str:
        about = self.content.about
        return f"{about.fullName}"

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return translating()

    # -- shared helpers --------------------------------------------------------------------------
    @property
    def content(self) -> Any:
        if self._content is None:
            raise BackendError("not connected")
        return self._content

    @property
    def pc(self) -> Collector:
        if self._collector is None:
            raise BackendError("not connected")
        return self._collector

    @property
    def files(self) -> FileTransfer:
        if self._files is None:
            raise BackendError("not connected")
        return self._files

    @property
    def is_vcenter(self) -> bool:
        return bool(self.content.about.apiType == "VirtualCenter")

    def _ref(self, kind: type, moid: str) -> Any:
        return kind(moid, self._si._stub)

    def _task(self, task: Any, operation: str, target: str, convert: Callable[[Any], Any] | None = None) -> Task:
        def default(result: Any) -> Any:
            return result._moId if hasattr(result, "_moId") else result

        return task_of(
            self.pc, self.content, task, operation, target, convert or default, min(self.options.timeout / 2, 10.0)
        )

    def _wait(self, task: Any, operation: str, target: str) -> Any:
        return self._task(task, operation, target).wait(float(self.options.option("task_timeout", 1800.0)))

    def _names(self) -> tuple[dict[str, str], dict[str, str], dict[str, str], dict[str, str]]:
        """Names of hosts, datastores and networks, and portgroup keys -> names (one round trip)."""
        found = self.pc.collect(
            self._dc,
            {
                vim.HostSystem: ["name"],
                vim.Datastore: ["name"],
                vim.Network: ["name"],
                vim.dvs.DistributedVirtualPortgroup: ["name", "key"],
            },
        )
        return self._split_names(found)

    @staticmethod
    def _split_names(
        found: list[tuple[Any, Props]],
    ) -> tuple[dict[str, str], dict[str, str], dict[str, str], dict[str, str]]:
        hosts: dict[str, str] = {}
        stores: dict[str, str] = {}
        nets: dict[str, str] = {}
        keys: dict[str, str] = {}
        for obj, props in found:
            name = props.get("name", obj._moId)
            if isinstance(obj, vim.HostSystem):
                hosts[obj._moId] = name
            elif isinstance(obj, vim.Datastore):
                stores[obj._moId] = name
            elif isinstance(obj, vim.Network):
                nets[obj._moId] = name
                if "key" in props:
                    keys[props["key"]] = name
        return hosts, stores, nets, keys

    # -- inventory ---------------------------------------------------------------------------
    def list_hosts(self) -> list[Host]:
        return [self._host(obj, props) for obj, props in self.pc.collect(self._dc, {vim.HostSystem: HOST_PROPS})]

    def _host(self, obj: Any, props: Props) -> Host:
        hw = props.get("summary.hardware")
        stats = props.get("summary.quickStats")
        product = props.get("summary.config.product")
        cores = int(getattr(hw, "numCpuCores", 0) or 0)
        mhz = int(getattr(hw, "cpuMhz", 0) or 0)
        used_mhz = getattr(stats, "overallCpuUsage", None)
        usage = None
        if used_mhz is not None and cores and mhz:
            usage = min(1.0, float(used_mhz) / (cores * mhz))
        used_mem = getattr(stats, "overallMemoryUsage", None)
        parent = props.get("parent")
        return Host(
            id=obj._moId,
            name=props.get("name", obj._moId),
            cpu_sockets=int(getattr(hw, "numCpuPkgs", 0) or 0),
            cpu_cores=cores,
            cpu_threads=int(getattr(hw, "numCpuThreads", 0) or 0),
            memory_mib=int(getattr(hw, "memorySize", 0) or 0) // (1024 * 1024),
            hypervisor_kind="esxi",
            hypervisor_version=str(getattr(product, "version", "") or ""),
            cpu_model=str(getattr(hw, "cpuModel", "") or ""),
            cpu_mhz=mhz or None,
            cpu_usage=usage,
            memory_used_mib=int(used_mem) if used_mem is not None else None,
            maintenance=bool(props.get("runtime.inMaintenanceMode", False)),
            connected=props.get("runtime.connectionState", "connected") == "connected",
            extra={
                "moref": obj._moId,
                "parent": parent._moId if parent is not None else None,
                "product": str(getattr(product, "fullName", "") or ""),
            },
        )

    def list_pools(self) -> list[StoragePool]:
        hosts, _, _, _ = self._names()
        out = []
        for obj, props in self.pc.collect(self._dc, {vim.Datastore: DS_PROPS}):
            summary = props.get("summary")
            mounts = props.get("host") or []
            shared = bool(getattr(summary, "multipleHostAccess", False)) or len(mounts) > 1
            mounted = frozenset(hosts[m.key._moId] for m in mounts if m.key is not None and m.key._moId in hosts)
            host = next(iter(mounted)) if len(mounts) == 1 and len(mounted) == 1 else None
            out.append(
                StoragePool(
                    id=obj._moId,
                    name=props.get("name", obj._moId),
                    capacity_bytes=int(getattr(summary, "capacity", 0) or 0),
                    free_bytes=int(getattr(summary, "freeSpace", 0) or 0),
                    shared=shared,
                    formats=frozenset({DiskFormat.VMDK}),  # type: ignore[arg-type]
                    type=str(getattr(summary, "type", "") or ""),
                    host=None if shared else host,
                    active=bool(getattr(summary, "accessible", True)),
                    hosts=mounted,
                    extra={"moref": obj._moId, "url": str(getattr(summary, "url", "") or "")},
                )
            )
        return out

    def list_networks(self) -> list[Network]:
        found = self.pc.collect(
            self._dc,
            {
                vim.Network: ["name", "summary.accessible"],
                vim.dvs.DistributedVirtualPortgroup: [
                    "name",
                    "key",
                    "config.defaultPortConfig",
                    "config.distributedVirtualSwitch",
                ],
            },
        )
        out = []
        for obj, props in found:
            vlan = None
            if isinstance(obj, vim.dvs.DistributedVirtualPortgroup):
                kind = "dvportgroup"
                port = props.get("config.defaultPortConfig")
                vlan_spec = getattr(port, "vlan", None)
                vlan_id = getattr(vlan_spec, "vlanId", None)
                if isinstance(vlan_id, int) and vlan_id > 0:
                    vlan = vlan_id
            elif isinstance(obj, vim.OpaqueNetwork):
                kind = "opaque"
            else:
                kind = "portgroup"
            switch = props.get("config.distributedVirtualSwitch")
            out.append(
                Network(
                    id=obj._moId,
                    name=props.get("name", obj._moId),
                    type=kind,
                    vlan=vlan,
                    active=bool(props.get("summary.accessible", True)),
                    extra={
                        "moref": obj._moId,
                        "key": props.get("key"),
                        "switch": switch._moId if switch is not None else None,
                    },
                )
            )
        return out

    def list_vms(self, detail: bool = False) -> list[VM]:
        """One PropertyCollector read. Default: VM_LIST_PROPS (no devices); ``detail=True`` (or the option
        ``vm_list=full``): VM_PROPS, devices included, with the names of their datastores and networks."""
        mode = str(self.options.option("vm_list", "default"))
        if mode not in ("default", "full", "brief"):
            raise InvalidSpec(f"option vm_list must be 'default', 'full' or 'brief', got {mode!r}")
        detail = detail or mode == "full"
        props: dict[Any, list[str]] = {vim.VirtualMachine: VM_PROPS, vim.HostSystem: ["name"]}
        if detail:  # names for the disks' datastores and the NICs' networks
            props.update(
                {vim.Datastore: ["name"], vim.Network: ["name"], vim.dvs.DistributedVirtualPortgroup: ["name", "key"]}
            )
        elif mode == "brief":
            props[vim.VirtualMachine] = VM_BRIEF_PROPS
        else:
            props.update({vim.VirtualMachine: VM_LIST_PROPS, vim.Datastore: ["name"]})
        found = self.pc.collect(self._dc, props)
        names = self._split_names([(o, p) for o, p in found if not isinstance(o, vim.VirtualMachine)])
        return [self._vm(o, p, names, detail) for o, p in found if isinstance(o, vim.VirtualMachine)]

    def get_vm(self, ref: str) -> VM:
        if not isinstance(ref, str) or not ref:
            raise InvalidSpec(f"expected a VM id or name, got {ref!r}")
        if not any(c.isspace() for c in ref):
            try:
                props = self.pc.read(self._ref(vim.VirtualMachine, ref), VM_PROPS)
            except (vmodl.fault.ManagedObjectNotFound, vmodl.fault.InvalidArgument, vmodl.fault.InvalidType):
                props = {}
            except Exception as exc:  # a name that is no valid managed object id
                if "ManagedObjectNotFound" not in type(exc).__name__ and "NotFound" not in str(type(exc)):
                    raise
                props = {}
            if props:
                return self._vm(self._ref(vim.VirtualMachine, ref), props, self._names())
        found = super().get_vm(ref)  # by name, from the listing (no devices): read that VM in full
        return self.get_vm(found.id) if found.id != ref else found

    def _vm(
        self,
        obj: Any,
        props: Props,
        names: tuple[dict[str, str], dict[str, str], dict[str, str], dict[str, str]],
        detail: bool = True,
    ) -> VM:
        hosts, stores, nets, keys = names
        devices = props.get("config.hardware.device") or []
        host_ref = props.get("runtime.host")
        ips: list[str] = []
        for nic in props.get("guest.net") or []:
            for ip in nic.ipAddress or []:
                if ip not in ips:
                    ips.append(ip)
        primary = props.get("guest.ipAddress")
        if primary and primary not in ips:
            ips.insert(0, primary)
        pool = props.get("resourcePool")
        return VM(
            id=obj._moId,
            name=_unescape(str(props.get("name", obj._moId))),
            power_state=_POWER.get(str(props.get("runtime.powerState")), PowerState.UNKNOWN),
            cpus=int(props.get("config.hardware.numCPU", 0) or 0),
            memory_mib=int(props.get("config.hardware.memoryMB", 0) or 0),
            uuid=props.get("config.uuid"),
            disks=read_disks(devices, stores),  # type: ignore[arg-type]
            nics=read_nics(devices, nets, keys),  # type: ignore[arg-type]
            host=hosts.get(host_ref._moId, host_ref._moId) if host_ref is not None else None,
            firmware=Firmware.UEFI if props.get("config.firmware") == "efi" else Firmware.BIOS,
            guest_os=guest_family(props.get("config.guestId")),
            notes=str(props.get("config.annotation") or ""),
            ip_addresses=ips,  # type: ignore[arg-type]
            template=bool(props.get("config.template", False)),
            extra={
                "moref": obj._moId,
                "host_id": host_ref._moId if host_ref is not None else None,
                "instance_uuid": props.get("config.instanceUuid"),
                "guest_id": props.get("config.guestId"),
                "tools_status": props.get("guest.toolsStatus"),
                "tools_running": props.get("guest.toolsRunningStatus"),
                "vmx_path": props.get("config.files.vmPathName"),
                "resource_pool": pool._moId if pool is not None else None,
                "datastores": tuple(stores.get(d._moId, d._moId) for d in props.get("datastore") or []),
                "detail": detail,
            },
        )

    # -- placement ---------------------------------------------------------------------------
    def _placement(self, host_ref: str | None) -> tuple[Any, Any]:
        """(resource pool, host or None) for a new VM: the host's compute resource, else the first one."""
        found = self.pc.collect(
            self._dc,
            {
                vim.ComputeResource: ["resourcePool", "host", "name"],
                vim.HostSystem: ["name", "parent", "runtime.inMaintenanceMode"],
            },
        )
        computes = {o._moId: p for o, p in found if isinstance(o, vim.ComputeResource)}
        hosts = [(o, p) for o, p in found if isinstance(o, vim.HostSystem)]
        if host_ref is not None:
            for obj, props in hosts:
                if host_ref in (obj._moId, props.get("name")):
                    parent = props.get("parent")
                    compute = computes.get(parent._moId) if parent is not None else None
                    if compute is None:
                        raise NotFound(f"host {host_ref!r} has no compute resource")
                    return compute["resourcePool"], obj
            raise NotFound(f"no host {host_ref!r}")
        if not computes:
            raise NotFound("the datacenter has no host or cluster to place a VM on")
        clusters = [o for o, _ in found if isinstance(o, vim.ClusterComputeResource)]
        chosen = computes[clusters[0]._moId] if clusters else next(iter(computes.values()))
        return chosen["resourcePool"], None

    def _datastore(self, name: str) -> Any:
        for obj, props in self.pc.collect(self._dc, {vim.Datastore: ["name"]}):
            if name in (props.get("name"), obj._moId):
                return obj
        raise NotFound(f"no datastore {name!r}")

    def _datastore_name(self, ref: str) -> str:
        for obj, props in self.pc.collect(self._dc, {vim.Datastore: ["name"]}):
            if ref in (props.get("name"), obj._moId):
                return str(props["name"])
        raise NotFound(f"no datastore {ref!r}")

    def _network_backing(self) -> Callable[[str], Any]:
        found = self.pc.collect(
            self._dc,
            {
                vim.Network: ["name"],
                vim.dvs.DistributedVirtualPortgroup: ["name", "key", "config.distributedVirtualSwitch"],
            },
        )
        switches = {
            p["config.distributedVirtualSwitch"]
            for _, p in found
            if p.get("config.distributedVirtualSwitch") is not None
        }
        uuids = {o._moId: p.get("uuid") for o, p in self.pc.read_many(list(switches), ["uuid"])} if switches else {}

        def backing(ref: str) -> Any:
            for obj, props in found:
                if ref not in (obj._moId, props.get("name")):
                    continue
                if isinstance(obj, vim.dvs.DistributedVirtualPortgroup):
                    switch = props["config.distributedVirtualSwitch"]
                    port = vim.dvs.PortConnection(portgroupKey=props["key"], switchUuid=uuids.get(switch._moId))
                    return vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(port=port)
                if isinstance(obj, vim.OpaqueNetwork):
                    raise Unsupported(self.kind, "NICs on NSX opaque networks")
                return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=props["name"], network=obj)
            raise NotFound(f"no network {ref!r}")

        return backing

    # -- VMs -----------------------------------------------------------------------------------
    def create_vm(self, spec: VMSpec) -> Task:
        pool, host = self._placement(spec.host)
        stores = {p["name"]: o for o, p in self.pc.collect(self._dc, {vim.Datastore: ["name"]})}

        def datastore_of(name: str) -> Any:
            if name not in stores:
                raise NotFound(f"no datastore {name!r}")
            return stores[name]

        first_pool = next((d.pool for d in spec.disks if d.pool), None)
        if first_pool is None:
            vol = next((d.volume for d in spec.disks if d.volume), None)
            first_pool = split_datastore_path(vol)[0] if vol else None
        if first_pool is None:
            if not stores:
                raise NotFound("the datacenter has no datastore to keep the VM's files")
            first_pool = sorted(stores)[0]
        config = vim.vm.ConfigSpec(
            name=_escape(spec.name),
            numCPUs=spec.cpus,
            memoryMB=spec.memory_mib,
            guestId=str(spec.extra.get("guest_id") or GUEST_IDS[spec.guest_os]),
            firmware="efi" if spec.firmware is Firmware.UEFI else "bios",
            annotation=spec.notes,
            files=vim.vm.FileInfo(vmPathName=f"[{first_pool}]"),
            deviceChange=build_devices(
                spec.disks,
                spec.nics,
                datastore_of,
                self._volume_path,
                self._network_backing() if spec.nics else lambda n: None,
            ),
        )
        folder = self._dc_folders["vmFolder"]
        task = folder.CreateVM_Task(config=config, pool=pool, host=host)
        return self._one_of_its_name(self._task(task, "vm.create", spec.name), spec.name)

    def _one_of_its_name(self, task: Task, name: str) -> Task:
        """Follow a create or clone ``task``; then make sure its VM is the only one called ``name``."""
        return Task.in_thread(task.operation, name, lambda: task, lambda t: self._claim_name(t.wait(), name))

    def _claim_name(self, moid: str, name: str) -> str:
        """One name, one VM (vcsim, and folders other than the VM folder, take duplicates): among the VMs of
        one name the oldest (lowest moref number) wins; a newer one, just made by this call, is destroyed
        again (by its moref, nothing else) and AlreadyExists raised."""

        def age(ref: str) -> tuple[int, str]:
            digits = ref.rsplit("-", 1)[-1]
            return (int(digits) if digits.isdigit() else 0, ref)

        found = self.pc.collect(self._dc, {vim.VirtualMachine: ["name"]})
        named = [o._moId for o, p in found if p.get("name") == _escape(name)]
        older = sorted((m for m in named if m != moid and age(m) < age(moid)), key=age)
        if older:
            self._wait(self._ref(vim.VirtualMachine, moid).Destroy_Task(), "vm.create clean-up", name)
            raise AlreadyExists(f"a VM named {name!r} exists already ({older[0]}); the one made meanwhile was removed")
        return moid

    def _volume_path(self, ref: str) -> str:
        try:
            split_datastore_path(ref)
        except ValueError as exc:
            raise InvalidSpec(str(exc)) from None
        return ref

    def delete_vm(self, vm: VM, keep_disks: bool) -> Any:
        obj = self._ref(vim.VirtualMachine, vm.id)
        if not keep_disks:
            return self._task(obj.Destroy_Task(), "vm.delete", vm.name, lambda _: None)
        # Keep the disks: detach them, unregister the VM, then delete its other files one by one
        # (Destroy_Task may remove the VM's whole folder, disks detached or not).
        props = self.pc.read(obj, ["config.hardware.device", "config.files.vmPathName"])
        disks = [d for d in props.get("config.hardware.device") or [] if isinstance(d, vim.vm.device.VirtualDisk)]
        kept = {str(getattr(d.backing, "fileName", "") or "") for d in disks}
        if disks:
            detach = [vim.vm.device.VirtualDeviceSpec(operation="remove", device=d) for d in disks]
            self._wait(obj.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=detach)), "vm.delete", vm.name)
        vmx = str(props.get("config.files.vmPathName") or "")
        obj.UnregisterVM()
        if not vmx:
            return None
        ds_name, rel = split_datastore_path(vmx)
        folder = f"[{ds_name}] {rel.rsplit('/', 1)[0]}" if "/" in rel else f"[{ds_name}]"
        if "/" not in rel:
            self._delete_file(vmx, vm.name)
            return None
        stems = tuple(k[: -len(".vmdk")] for k in kept if k.endswith(".vmdk"))
        for path in self._folder_files(ds_name, folder):
            if path in kept or (path.endswith(".vmdk") and path.startswith(stems)):
                continue
            self._delete_file(path, vm.name)
        return None

    def _folder_files(self, ds_name: str, folder: str) -> list[str]:
        found = self.pc.collect(self._dc, {vim.Datastore: ["name", "browser"]})
        browser = next((p.get("browser") for _, p in found if p.get("name") == ds_name), None)
        if browser is None:
            return []
        spec = vim.host.DatastoreBrowser.SearchSpec(matchPattern=["*"])
        result = self._wait(browser.SearchDatastore_Task(datastorePath=folder, searchSpec=spec), "vm.delete", folder)
        base = folder if folder.endswith("]") else folder.rstrip("/") + "/"
        sep = " " if folder.endswith("]") else ""
        return [f"{base}{sep}{f.path}" for f in getattr(result, "file", None) or []]

    def _delete_file(self, path: str, target: str) -> None:
        manager = self.content.fileManager
        with contextlib.suppress(NotFound):
            self._wait(manager.DeleteDatastoreFile_Task(name=path, datacenter=self._dc), "vm.delete", target)

    def start_vm(self, vm: VM) -> Task:
        return self._task(self._ref(vim.VirtualMachine, vm.id).PowerOnVM_Task(), "vm.start", vm.name, lambda _: vm.id)

    def stop_vm(self, vm: VM, force: bool, timeout: float) -> Any:
        obj = self._ref(vim.VirtualMachine, vm.id)
        if force or vm.power_state is PowerState.SUSPENDED:
            return self._task(obj.PowerOffVM_Task(), "vm.stop", vm.name, lambda _: vm.id)
        try:
            obj.ShutdownGuest()
        except vim.fault.ToolsUnavailable as exc:
            raise InvalidState(
                f"VM {vm.name!r} has no running VMware Tools, which a graceful shutdown needs; stop it with force=True"
            ) from exc
        if not self._wait_power(obj, "poweredOff", timeout):
            raise Timeout(f"VM {vm.name!r} did not shut down within {timeout:g} s (stop it with force=True)")
        return vm.id

    def _wait_power(self, obj: Any, state: str, timeout: float) -> bool:
        """Wait until the VM reaches ``state`` (False after ``timeout``): the one waiting helper, with
        WaitForUpdatesEx on runtime.powerState as its blocking wait for the next change."""
        collector = self.content.propertyCollector.CreatePropertyCollector()
        try:
            spec = vmodl.query.PropertyCollector.FilterSpec(
                objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=obj, skip=False)],
                propSet=[
                    vmodl.query.PropertyCollector.PropertySpec(type=vim.VirtualMachine, pathSet=["runtime.powerState"])
                ],
            )
            collector.CreateFilter(spec, partialUpdates=False)
            version = ""
            waiting, reached = TaskInfo(TaskState.RUNNING), TaskInfo(TaskState.SUCCESS, 100)

            def next_change(seconds: float) -> TaskInfo:
                nonlocal version
                wait = max(1, min(int(seconds) + 1, int(min(self.options.timeout / 2, 10.0))))
                options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=wait)
                update = collector.WaitForUpdatesEx(version, options)
                if update is None:
                    return waiting
                version = update.version
                changes = [c for fu in update.filterSet or [] for oc in fu.objectSet or [] for c in oc.changeSet or []]
                hit = any(c.name == "runtime.powerState" and str(c.val) == state for c in changes)
                return reached if hit else waiting

            try:
                wait_for(lambda: waiting, timeout=timeout, what=f"power state {state}", wait_change=next_change,
                         max_interval=10.0)  # fmt: skip
            except Timeout:
                return False
            return True
        finally:
            with contextlib.suppress(Exception):
                collector.DestroyPropertyCollector()

    def reboot_vm(self, vm: VM, force: bool) -> Any:
        obj = self._ref(vim.VirtualMachine, vm.id)
        if force:
            return self._task(obj.ResetVM_Task(), "vm.reboot", vm.name, lambda _: vm.id)
        if vm.extra.get("tools_running") != "guestToolsRunning":
            raise InvalidState(
                f"VM {vm.name!r} has no running VMware Tools, which a graceful reboot needs; "
                "reboot it with force=True (a reset)"
            )
        obj.RebootGuest()
        return vm.id

    def suspend_vm(self, vm: VM) -> Task:
        return self._task(self._ref(vim.VirtualMachine, vm.id).SuspendVM_Task(), "vm.suspend", vm.name, lambda _: vm.id)

    def reconfigure_vm(self, vm: VM, cpus: int | None, memory_mib: int | None) -> Task:
        spec = vim.vm.ConfigSpec()
        if cpus is not None:
            spec.numCPUs = cpus
        if memory_mib is not None:
            spec.memoryMB = memory_mib
        return self._task(
            self._ref(vim.VirtualMachine, vm.id).ReconfigVM_Task(spec=spec), "vm.reconfigure", vm.name, lambda _: vm.id
        )

    def _relocate_spec(self, vm: VM, host: str | None, pool: str | None) -> Any:
        spec = vim.vm.RelocateSpec()
        if host is not None:
            rpool, host_obj = self._placement(host)
            spec.host = host_obj
            spec.pool = rpool
        if pool is not None:
            spec.datastore = self._datastore(pool)
        return spec

    def clone_vm(self, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> Any:
        if not self.is_vcenter:
            raise Unsupported(self.kind, "vms.clone", "cloning needs vCenter")
        obj = self._ref(vim.VirtualMachine, vm.id)
        location = self._relocate_spec(vm, host, pool)
        if location.pool is None:
            current = self.pc.read(obj, ["resourcePool", "runtime.host"])
            if current.get("resourcePool") is not None:
                location.pool = current["resourcePool"]
            else:  # a template has no resource pool: use its host's
                host_ref = current.get("runtime.host")
                location.pool, _ = self._placement(host_ref._moId if host_ref is not None else None)
        spec = vim.vm.CloneSpec(location=location, powerOn=False, template=False)
        made_snapshot = None
        if linked:
            snap = self.pc.read(obj, ["snapshot"]).get("snapshot")
            current_snap = getattr(snap, "currentSnapshot", None)
            if current_snap is None:
                # A linked clone shares a snapshot's disks: take one (it stays, as the clone needs it).
                made_snapshot = self._wait(
                    obj.CreateSnapshot_Task(
                        name=LINKED_CLONE_BASE, description="base of linked clones", memory=False, quiesce=False
                    ),
                    "vm.clone",
                    vm.name,
                )
                current_snap = self._ref(vim.vm.Snapshot, made_snapshot)
            spec.snapshot = current_snap
            location.diskMoveType = "createNewChildDiskBacking"
        if made_snapshot is None:
            return self._one_of_its_name(
                self._task(
                    obj.CloneVM_Task(folder=self._dc_folders["vmFolder"], name=_escape(name), spec=spec),
                    "vm.clone",
                    name,
                ),
                name,
            )
        try:  # follow the clone here, to remove the snapshot taken for it if the clone fails
            task = self._task(
                obj.CloneVM_Task(folder=self._dc_folders["vmFolder"], name=_escape(name), spec=spec), "vm.clone", name
            )
            return self._claim_name(task.wait(float(self.options.option("task_timeout", 1800.0))), name)
        except BaseException:
            with contextlib.suppress(Exception):
                snap = self._ref(vim.vm.Snapshot, made_snapshot)
                self._wait(snap.RemoveSnapshot_Task(removeChildren=False), "vm.clone clean-up", vm.name)
            raise

    def migrate_vm(self, vm: VM, host: str | None, pool: str | None, live: bool) -> Task:
        if not self.is_vcenter:
            raise Unsupported(self.kind, "vms.migrate", "relocation needs vCenter")
        if not live and vm.power_state is PowerState.RUNNING:
            raise InvalidState(f"VM {vm.name!r} is running; a cold migration needs it stopped (or pass live=True)")
        spec = self._relocate_spec(vm, host, pool)
        task = self._ref(vim.VirtualMachine, vm.id).RelocateVM_Task(spec=spec, priority="defaultPriority")
        return self._task(task, "vm.migrate", vm.name, lambda _: vm.id)

    def console(self, vm: VM) -> Console:
        obj = self._ref(vim.VirtualMachine, vm.id)
        try:
            ticket = obj.AcquireTicket("webmks")
        except (vmodl.MethodFault, vmodl.fault.MethodNotFound) as exc:
            log.debug("no WebMKS ticket (%s); offering a VMRC URL", type(exc).__name__)
        else:
            host = ticket.host or self.options.url.host
            port = ticket.port or 443
            return Console(
                protocol="webmks",
                host=host,
                port=port,
                url=f"wss://{host}:{port}/ticket/{ticket.ticket}",
                password=ticket.ticket,
            )
        clone = self.content.sessionManager.AcquireCloneTicket()
        host = self.options.url.host or ""
        port = self.options.url.port or 443
        netloc = host if port == 443 else f"{host}:{port}"
        return Console(
            protocol="vmrc", host=host, port=port, url=f"vmrc://clone:{clone}@{netloc}/?moid={vm.id}", password=clone
        )

    def guest_ips(self, vm: VM) -> list[str]:
        return list(vm.ip_addresses)

    # -- metrics ---------------------------------------------------------------------------------
    def _counter_ids(self) -> dict[str, int]:
        if self._counters is None:
            perf = self.content.perfManager
            counters = self.pc.read(perf, ["perfCounter"]).get("perfCounter") or []
            self._counters = {f"{c.groupInfo.key}.{c.nameInfo.key}.{c.rollupType}": c.key for c in counters}
        return self._counters

    def _query_perf(self, entities: list[Any], names: list[str]) -> dict[str, dict[str, float]]:
        ids = self._counter_ids()
        metric_ids = [vim.PerformanceManager.MetricId(counterId=ids[n], instance="") for n in names if n in ids]
        if not metric_ids or not entities:
            return {}
        by_id = {v: k for k, v in ids.items()}
        specs = [
            vim.PerformanceManager.QuerySpec(entity=e, metricId=metric_ids, intervalId=20, maxSample=1)
            for e in entities
        ]
        out: dict[str, dict[str, float]] = {}
        for result in self.content.perfManager.QueryPerf(querySpec=specs) or []:
            values: dict[str, float] = {}
            for series in getattr(result, "value", None) or []:
                samples = list(series.value or [])
                if samples and samples[-1] >= 0:
                    values[by_id.get(series.id.counterId, "?")] = float(samples[-1])
            out[result.entity._moId] = values
        return out

    def vm_metrics(self, vms: list[VM]) -> list[VMMetrics]:
        now = dt.datetime.now(dt.UTC)
        running = [self._ref(vim.VirtualMachine, v.id) for v in vms if v.power_state is PowerState.RUNNING]
        # net.* counters are rates (KBps), not the byte counts VMMetrics holds: not asked for
        data = self._query_perf(running, ["cpu.usage.average", "mem.consumed.average"])
        out = []
        for vm in vms:
            cpu, mem = _usage(data.get(vm.id, {}))
            out.append(VMMetrics(vm=vm.id, timestamp=now, cpu_usage=cpu, memory_used_mib=mem))
        return out

    def host_metrics(self, hosts: list[Host]) -> list[HostMetrics]:
        now = dt.datetime.now(dt.UTC)
        data = self._query_perf(
            [self._ref(vim.HostSystem, h.id) for h in hosts], ["cpu.usage.average", "mem.consumed.average"]
        )
        out = []
        for host in hosts:
            cpu, mem = _usage(data.get(host.id, {}))
            cpu = host.cpu_usage if cpu is None else cpu
            mem = host.memory_used_mib if mem is None else mem
            out.append(HostMetrics(host=host.id, timestamp=now, cpu_usage=cpu, memory_used_mib=mem))
        return out

    # -- snapshots -------------------------------------------------------------------------------
    def list_snapshots(self, vm: VM) -> list[Snapshot]:
        info = self.pc.read(self._ref(vim.VirtualMachine, vm.id), ["snapshot"]).get("snapshot")
        return _snapshot_tree(vm.id, info)

    def list_snapshots_many(self, vms: list[VM]) -> dict[str, list[Snapshot]]:
        """Every VM's snapshot tree in one PropertyCollector round trip."""
        objs = [self._ref(vim.VirtualMachine, vm.id) for vm in vms]
        found = {obj._moId: props.get("snapshot") for obj, props in self.pc.read_many(objs, ["snapshot"])}
        return {vm.id: _snapshot_tree(vm.id, found.get(vm.id)) for vm in vms}

    def create_snapshot(self, vm: VM, name: str, description: str, memory: bool, quiesce: bool) -> Task:
        obj = self._ref(vim.VirtualMachine, vm.id)
        task = obj.CreateSnapshot_Task(name=name, description=description, memory=memory, quiesce=quiesce)
        return self._task(task, "snapshot.create", vm.name, lambda _: None)

    def revert_snapshot(self, vm: VM, snapshot: Snapshot) -> Task:
        snap = self._ref(vim.vm.Snapshot, snapshot.id)
        return self._task(snap.RevertToSnapshot_Task(), "snapshot.revert", vm.name, lambda _: None)

    def delete_snapshot(self, vm: VM, snapshot: Snapshot, children: bool) -> Task:
        snap = self._ref(vim.vm.Snapshot, snapshot.id)
        return self._task(
            snap.RemoveSnapshot_Task(removeChildren=children, consolidate=True),
            "snapshot.delete",
            vm.name,
            lambda _: None,
        )

    # -- volumes (VMDK files on datastores) ----------------------------------------------------
    def list_volumes(self, pool: StoragePool) -> list[Volume]:
        ds = self._ref(vim.Datastore, pool.id)
        browser = self.pc.read(ds, ["browser"]).get("browser")
        if browser is None:
            return []
        flags = vim.host.DatastoreBrowser.FileInfo.Details(fileSize=True, fileType=True, modification=True)
        query = vim.host.DatastoreBrowser.VmDiskQuery(
            details=vim.host.DatastoreBrowser.VmDiskQuery.Details(capacityKb=True, diskType=True)
        )
        search = vim.host.DatastoreBrowser.SearchSpec(matchPattern=["*.vmdk"], details=flags, query=[query])
        task = browser.SearchDatastoreSubFolders_Task(datastorePath=f"[{pool.name}]", searchSpec=search)
        results = (
            self._task(task, "volumes.list", pool.name, lambda r: r).wait(
                float(self.options.option("task_timeout", 1800.0))
            )
            or []
        )
        sizes: dict[str, int] = {}
        disks: list[tuple[str, Any]] = []
        for result in results:
            ds_name, folder = split_datastore_path(result.folderPath)
            folder = folder.strip("/")
            for info in result.file or []:
                rel = f"{folder}/{info.path}" if folder else info.path
                path = f"[{ds_name}] {rel.lstrip('/')}"
                sizes[path] = int(info.fileSize or 0)
                if not info.path.endswith(_SKIP_VMDK):
                    disks.append((path, info))
        out = []
        for path, info in sorted(disks, key=lambda item: item[0]):
            flat = path[: -len(".vmdk")] + "-flat.vmdk"
            capacity = (
                int(getattr(info, "capacityKb", 0) or 0) * 1024 or self._descriptor_capacity(path) or sizes.get(flat, 0)
            )
            allocation = sizes.get(flat, 0) + sizes.get(path, 0)
            out.append(
                Volume(
                    id=path,
                    name=info.path.rsplit("/", 1)[-1][: -len(".vmdk")],
                    pool=pool.name,
                    capacity_bytes=capacity,
                    allocation_bytes=allocation,
                    format=DiskFormat.VMDK,
                    path=path,
                    extra={"datastore": pool.id},
                )
            )
        return out

    def _descriptor_capacity(self, path: str) -> int:
        try:
            _, data = self.files.get(self._dc_name, path, None)
        except NotFound:
            return 0
        if len(data) > 64 * 1024:  # not a text descriptor (a monolithic sparse disk)
            return 0
        return sum(int(m.group(1)) * 512 for m in _CAPACITY.finditer(data.decode("utf-8", "replace")))

    def get_volume(self, ref: str) -> Volume:
        try:
            ds_name, rel = split_datastore_path(ref)
        except ValueError:
            raise NotFound(
                f"no volume {ref!r}: volume ids are datastore paths like '[datastore1] dir/disk.vmdk'"
            ) from None
        for pool in self.list_pools():
            if pool.name == ds_name:
                for vol in self.list_volumes(pool):
                    if vol.id == ref or vol.id == f"[{ds_name}] {rel}":
                        return vol
                break
        raise NotFound(f"no volume {ref!r}")

    def create_volume(self, pool: StoragePool, name: str, size_bytes: int, fmt: DiskFormat) -> Volume:
        if fmt is not DiskFormat.VMDK:
            raise InvalidSpec(f"VMware volumes are vmdk; {fmt.value} was asked")
        path = f"[{pool.name}] {name}.vmdk"
        spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
            diskType="thin", adapterType="lsiLogic", capacityKb=size_bytes // 1024
        )
        manager = self.content.virtualDiskManager
        self._wait(manager.CreateVirtualDisk_Task(name=path, datacenter=self._dc, spec=spec), "volume.create", name)
        _, data = self.files.get(self._dc_name, path, None)
        if not data.strip():
            # The server made an empty descriptor (vcsim keeps empty files): write a real one, so the
            # disk's size is known to every reader, as on ESXi.
            body = _descriptor(name, size_bytes)
            self.files.put(self._dc_name, path, io.BytesIO(body), len(body))
        return self.get_volume(path)

    def delete_volume(self, volume: Volume) -> Task:
        manager = self.content.virtualDiskManager
        return self._task(
            manager.DeleteVirtualDisk_Task(name=volume.id, datacenter=self._dc),
            "volume.delete",
            volume.name,
            lambda _: None,
        )

    @staticmethod
    def _flat(volume: Volume) -> str:
        if not volume.id.endswith(".vmdk"):
            raise InvalidSpec(f"volume {volume.id!r} is not a .vmdk file")
        return volume.id[: -len(".vmdk")] + "-flat.vmdk"

    def upload_volume(self, volume: Volume, source: IO[bytes], size: int, progress: ProgressFn) -> None:
        self.files.put(self._dc_name, self._flat(volume), source, size, progress)

    def download_volume(self, volume: Volume, sink: IO[bytes], progress: ProgressFn) -> int:
        total = volume.capacity_bytes

        def report(done: int, _: int) -> None:
            progress(done, max(total, done))

        count, _ = self.files.get(self._dc_name, self._flat(volume), sink, report)
        # A thin or sparse extent may be shorter than the disk: the guest reads zeros past its end.
        zeros = bytes(1024 * 1024)
        while count < total:
            step = min(len(zeros), total - count)
            sink.write(zeros[:step])
            count += step
            progress(count, total)
        return count

    def mark_template(self, vm: VM) -> None:
        """Turn a stopped VM into a template (vCenter); clone it with ``hv.vms.clone``."""
        with translating():
            self._ref(vim.VirtualMachine, vm.id).MarkAsTemplate()

    def import_ovf(
        self, source: str, name: str, *, pool: str | None = None, network: str | None = None, host: str | None = None
    ) -> str:
        """Import an OVF (with its disks beside it) or an OVA through an HttpNfcLease; return the VM id."""
        from ._ovf import import_ovf

        with translating():
            vm_id: str = import_ovf(self, source, name, pool=pool, network=network, host=host)
        return vm_id

    @contextlib.contextmanager
    def _translating(self) -> Iterator[None]:
        with translating():
            yield


def _snapshot_tree(vm_id: str, info: Any) -> list[Snapshot]:
    """Flatten a VM's ``snapshot`` property (a tree) into Snapshots with parent links."""
    if info is None:
        return []
    current = info.currentSnapshot._moId if info.currentSnapshot is not None else None
    out: list[Snapshot] = []

    def walk(nodes: list[Any], parent: str | None) -> None:
        for node in nodes or []:
            sid = node.snapshot._moId
            created = node.createTime
            out.append(
                Snapshot(
                    id=sid,
                    name=node.name,
                    vm=vm_id,
                    parent=parent,
                    created=created if isinstance(created, dt.datetime) else None,
                    description=node.description or "",
                    memory=str(node.state) == "poweredOn",
                    current=sid == current,
                )
            )
            walk(node.childSnapshotList, sid)

    walk(info.rootSnapshotList, None)
    return out


def _usage(values: dict[str, float]) -> tuple[float | None, int | None]:
    """CPU use (0..1) and memory in use (MiB) from ``cpu.usage.average`` (hundredths of a percent) and
    ``mem.consumed.average`` (KiB) samples; None where there is no sample."""
    cpu = values.get("cpu.usage.average")
    mem = values.get("mem.consumed.average")
    return (min(1.0, cpu / 10000.0) if cpu is not None else None, int(mem // 1024) if mem is not None else None)
