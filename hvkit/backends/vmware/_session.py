"""The vSphere connection: service instance, property collector, datacenter, lookups, waiting and error
translation; what the area modules take instead of the backend."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

from pyVim import connect as _connect
from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

from ...capabilities import Capability
from ...driver import ConnectOptions, Task
from ...errors import (
    AuthenticationError,
    BackendError,
    InvalidSpec,
    NotFound,
    Unsupported,
)
from ...models import (
    PowerState,
    Snapshot,
    Volume,
)
from ._datastore_files import FileTransfer, split_datastore_path
from ._errors import translating
from ._property_collector import Collector, Props
from ._tasks import task_of

_pyvim: Any = _connect
vim: Any = _vim  # pyVmomi's generated types are untyped for mypy
vmodl: Any = _vmodl


__all__ = ["VmwareSession"]

log = logging.getLogger("hvkit.vmware")

POWER = {
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
VCENTER_ONLY = frozenset(
    {
        Capability.VM_CLONE,
        Capability.VM_LINKED_CLONE,
        Capability.VM_TEMPLATE,
        Capability.VM_MIGRATE,
        Capability.VM_STORAGE_MIGRATE,
    }
)
CAPACITY = re.compile(r"^\s*RW\s+(\d+)\s+(FLAT|VMFS|SPARSE|VMFSSPARSE|SESPARSE)", re.MULTILINE)
SKIP_VMDK = ("-flat.vmdk", "-delta.vmdk", "-ctk.vmdk", "-sesparse.vmdk", "-rdm.vmdk", "-rdmp.vmdk")


def escape(name: str) -> str:
    """A VM name as vSphere takes it: '%' escaped, so a name holding '%2f' is never read as an escape."""
    return name.replace("%", "%25")


def unescape(name: str) -> str:
    """A VM name as vSphere stores it ('%', '/', '\\' escaped) back as the user gave it."""
    return re.sub(r"%(25|2[fF]|5[cC])", lambda m: {"25": "%", "2f": "/", "5c": "\\"}[m.group(1).lower()], name)


def descriptor(name: str, capacity_bytes: int) -> bytes:
    sectors = capacity_bytes // 512
    return (
        '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="vmfs"\n\n'
        f'RW {sectors} VMFS "{name}-flat.vmdk"\n\n'
        'ddb.adapterType = "lsilogic"\nddb.virtualHWVersion = "13"\n'
    ).encode()


class VmwareSession:
    """One connection to a vCenter or ESXi: what every area function takes instead of the backend."""

    def __init__(self, options: ConnectOptions, capabilities: frozenset[Capability]) -> None:
        self.options = options
        self.capabilities = capabilities
        kind = options.url.kind
        self.kind = kind if kind in ("esxi", "vcenter") else "vcenter"
        if kind == "esxi":
            self.capabilities = self.capabilities - VCENTER_ONLY
        self.si: Any = None
        self.connected_content: Any = None
        self.collector: Collector | None = None
        self.page_size = options.int_option("page_size", 0, low=0, high=100_000) or None
        self.dc: Any = None
        self.dc_name = ""
        self.dc_folders: Props = {}
        self.file_transfer: FileTransfer | None = None
        self.counters: dict[str, int] | None = None
        self.lock = threading.Lock()
        self.soap_requests = 0  # SOAP calls sent on this connection (for benchmarks and diagnostics)

    def ssl_context(self) -> ssl.SSLContext:
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
        context = self.ssl_context()
        with translating():
            self.si = _pyvim.SmartConnect(
                host=url.host,
                port=port,
                user=self.options.username,
                pwd=self.options.password or "",
                sslContext=context,
                httpConnectionTimeout=self.options.timeout,
                disableSslCertValidation=not self.options.verify_tls,
            )
            self.count_requests(self.si._stub)
            self.connected_content = self.si.RetrieveContent()
            self.collector = Collector(self.connected_content, self.page_size)
            api_type = self.connected_content.about.apiType
            if api_type == "HostAgent":
                self.capabilities = self.capabilities - VCENTER_ONLY
                if self.kind == "vcenter":
                    log.info("%s is a standalone ESXi host; vCenter-only operations are off", url.host)
            self.pick_datacenter(url.path.strip("/"))
        self.file_transfer = FileTransfer(url.host, port, context, self.options.timeout, self.cookie)

    def count_requests(self, stub: Any) -> None:
        invoke = stub.InvokeMethod

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.soap_requests += 1
            return invoke(*args, **kwargs)

        stub.InvokeMethod = counted

    def cookie(self) -> str:
        return str(self.si._stub.cookie) if self.si is not None else ""

    def pick_datacenter(self, wanted: str) -> None:
        found = self.pc.collect(
            self.connected_content.rootFolder,
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
        self.dc, self.dc_name, self.dc_folders = obj, props["name"], props

    def close(self) -> None:
        si, self.si = self.si, None
        if si is None:
            return
        try:
            if self.collector is not None:
                self.collector.close()
            _pyvim.Disconnect(si)
        except Exception as exc:  # closing must not raise
            log.debug("disconnect failed: %s", exc)

    @property
    def version(self) -> str:
        about = self.content.about
        return f"{about.fullName}"

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return translating()

    @property
    def content(self) -> Any:
        if self.connected_content is None:
            raise BackendError("not connected")
        return self.connected_content

    @property
    def pc(self) -> Collector:
        if self.collector is None:
            raise BackendError("not connected")
        return self.collector

    @property
    def files(self) -> FileTransfer:
        if self.file_transfer is None:
            raise BackendError("not connected")
        return self.file_transfer

    @property
    def is_vcenter(self) -> bool:
        return bool(self.content.about.apiType == "VirtualCenter")

    def ref(self, kind: type, moid: str) -> Any:
        return kind(moid, self.si._stub)

    def task(self, task: Any, operation: str, target: str, convert: Callable[[Any], Any] | None = None) -> Task:
        def default(result: Any) -> Any:
            return result._moId if hasattr(result, "_moId") else result

        return task_of(
            self.pc, self.content, task, operation, target, convert or default, min(self.options.timeout / 2, 10.0)
        )

    def wait(self, task: Any, operation: str, target: str) -> Any:
        return self.task(task, operation, target).wait(float(self.options.option("task_timeout", 1800.0)))

    def names(self) -> tuple[dict[str, str], dict[str, str], dict[str, str], dict[str, str]]:
        """Names of hosts, datastores and networks, and portgroup keys -> names (one round trip)."""
        found = self.pc.collect(
            self.dc,
            {
                vim.HostSystem: ["name"],
                vim.Datastore: ["name"],
                vim.Network: ["name"],
                vim.dvs.DistributedVirtualPortgroup: ["name", "key"],
            },
        )
        return self.split_names(found)

    @staticmethod
    def split_names(
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

    def placement(self, host_ref: str | None) -> tuple[Any, Any]:
        """(resource pool, host or None) for a new VM: the host's compute resource, else the first one."""
        found = self.pc.collect(
            self.dc,
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

    def datastore(self, name: str) -> Any:
        for obj, props in self.pc.collect(self.dc, {vim.Datastore: ["name"]}):
            if name in (props.get("name"), obj._moId):
                return obj
        raise NotFound(f"no datastore {name!r}")

    def datastore_name(self, ref: str) -> str:
        for obj, props in self.pc.collect(self.dc, {vim.Datastore: ["name"]}):
            if ref in (props.get("name"), obj._moId):
                return str(props["name"])
        raise NotFound(f"no datastore {ref!r}")

    def network_backing(self) -> Callable[[str], Any]:
        found = self.pc.collect(
            self.dc,
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

    def volume_path(self, ref: str) -> str:
        try:
            split_datastore_path(ref)
        except ValueError as exc:
            raise InvalidSpec(str(exc)) from None
        return ref

    def folder_files(self, ds_name: str, folder: str) -> list[str]:
        found = self.pc.collect(self.dc, {vim.Datastore: ["name", "browser"]})
        browser = next((p.get("browser") for _, p in found if p.get("name") == ds_name), None)
        if browser is None:
            return []
        spec = vim.host.DatastoreBrowser.SearchSpec(matchPattern=["*"])
        result = self.wait(browser.SearchDatastore_Task(datastorePath=folder, searchSpec=spec), "vm.delete", folder)
        base = folder if folder.endswith("]") else folder.rstrip("/") + "/"
        sep = " " if folder.endswith("]") else ""
        return [f"{base}{sep}{f.path}" for f in getattr(result, "file", None) or []]

    def delete_file(self, path: str, target: str) -> None:
        manager = self.content.fileManager
        with contextlib.suppress(NotFound):
            self.wait(manager.DeleteDatastoreFile_Task(name=path, datacenter=self.dc), "vm.delete", target)

    @staticmethod
    def flat(volume: Volume) -> str:
        if not volume.id.endswith(".vmdk"):
            raise InvalidSpec(f"volume {volume.id!r} is not a .vmdk file")
        return volume.id[: -len(".vmdk")] + "-flat.vmdk"

    @contextlib.contextmanager
    def translating(self) -> Iterator[None]:
        with translating():
            yield


def snapshot_tree(vm_id: str, info: Any) -> list[Snapshot]:
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


def usage(values: dict[str, float]) -> tuple[float | None, int | None]:
    """CPU use (0..1) and memory in use (MiB) from ``cpu.usage.average`` (hundredths of a percent) and
    ``mem.consumed.average`` (KiB) samples; None where there is no sample."""
    cpu = values.get("cpu.usage.average")
    mem = values.get("mem.consumed.average")
    return (min(1.0, cpu / 10000.0) if cpu is not None else None, int(mem // 1024) if mem is not None else None)
