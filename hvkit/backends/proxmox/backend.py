"""Proxmox VE driver: proxmoxer's HTTPS backend, UPID tasks, lock retries, one-call inventory."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
import re
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import IO, Any, TypeVar

import attrs
import requests  # noqa: F401 - imported before proxmoxer, whose https module calls sys.exit without it
from proxmoxer import ProxmoxAPI

from ..._secrets import install_redaction
from ...backend import Backend, DiskImage, ProgressFn
from ...capabilities import Capability
from ...driver import Limits, ThreadSource, Traits
from ...errors import AlreadyExists, HvkitError, InvalidSpec, InvalidState, NotFound, Unsupported
from ...models import (
    VM,
    Console,
    Disk,
    DiskBus,
    DiskFormat,
    Firmware,
    GuestOS,
    Host,
    HostMetrics,
    Network,
    Nic,
    NicModel,
    PowerState,
    Snapshot,
    StoragePool,
    VMMetrics,
    VMSpec,
    Volume,
)
from ...models.enums import TaskState
from ...tasks import Task, TaskInfo
from . import _disks, _names
from . import _property_strings as ps
from ._errors import from_message, is_lock_error, translate
from ._locks import KeyedLocks, lock_retry, retry_locked

from ._portability import PORTABILITY_NOTES
__all__ = ["ProxmoxBackend"]

log = logging.getLogger("hvkit.proxmox")
T = TypeVar("T")
MiB = 1024 * 1024
GiB = 1024 * MiB
CLAIM_WAIT = 600.0  # seconds an undo waits for the task it undoes, and for its delete
PENDING_WAIT = 30.0  # seconds a finished create or clone waits for older ones still being made (name not known yet)
_DISK_KEY = re.compile(r"^(ide|sata|scsi|virtio)(\d+)$")
_PERCENT = re.compile(r"\((\d+(?:\.\d+)?)%\)")
_FILE_STORAGES = {"dir", "nfs", "cifs", "glusterfs", "cephfs", "btrfs"}
_BUS_LIMIT = {DiskBus.VIRTIO: 16, DiskBus.SCSI: 31, DiskBus.SATA: 6, DiskBus.IDE: 4}
_OSTYPE = {GuestOS.LINUX: "l26", GuestOS.WINDOWS: "win11", GuestOS.BSD: "other", GuestOS.OTHER: "other"}


def _guest_os(ostype: str | None) -> GuestOS | None:
    if ostype is None:
        return None
    if ostype in ("l24", "l26"):
        return GuestOS.LINUX
    if ostype.startswith("w"):
        return GuestOS.WINDOWS
    return GuestOS.OTHER


class ProxmoxTaskSource:
    """Follows one UPID: state from ``tasks/{upid}/status``, progress from the task log's last ``(NN%)``."""

    def __init__(self, backend: ProxmoxBackend, node: str, upid: str, result: Any, what: str) -> None:
        self._b = backend
        self.node = node
        self.upid = upid
        self._result = result
        self._what = what
        self._log_lines = 0
        self._progress = 0

    def poll(self) -> TaskInfo:
        api = self._b.api.nodes(self.node).tasks(urllib.parse.quote(self.upid, safe=":@"))  # an id may hold '/'
        with translate():
            status = api.status.get()
            if status.get("status") == "running":
                lines = api.log.get(start=self._log_lines, limit=500) or []
                for line in lines:
                    found = _PERCENT.search(str(line.get("t", "")))
                    if found:
                        self._progress = min(99, int(float(found.group(1))))
                self._log_lines += sum(1 for line in lines if line.get("t") != "no content")
                return TaskInfo(TaskState.RUNNING, self._progress, self._what)
        exit_status = str(status.get("exitstatus", ""))
        if exit_status == "OK" or exit_status.startswith("WARNINGS"):
            return TaskInfo(TaskState.SUCCESS, 100, exit_status, result=self._result)
        error = from_message(exit_status, context=self._what)
        return TaskInfo(TaskState.ERROR, self._progress, exit_status, error=error)

    def cancel(self) -> None:
        """Stop the PVE task (``DELETE /nodes/{node}/tasks/{upid}``); PVE's worker then undoes its work."""
        with translate():
            self._b.api.nodes(self.node).tasks(urllib.parse.quote(self.upid, safe=":@")).delete()


def _retrying(
    what: str,
    attempt: Callable[[], ProxmoxTaskSource],
    *,
    retry_exists: bool,
    attempts: int,
    finish: Callable[[Any], Any] | None = None,
    undo: Callable[[ProxmoxTaskSource], None] | None = None,
) -> ThreadSource:
    """Submit one PVE task and follow it, in a thread, submitting again after lock errors (the kit's ThreadSource).

    ``finish(result)`` runs once the PVE task succeeded (e.g. the one-name check of a create). If the whole
    operation fails or is cancelled, ``undo(source)`` runs for every task it submitted: it removes what that
    task made and is still there, known by the vmid the task was given (never by a name).
    """
    return ThreadSource(
        what,
        lambda control: control.follow(attempt()),
        retry=lock_retry(what, attempts=attempts, retry_exists=retry_exists),
        finish=finish,
        undo=undo,
        kind="proxmox",
    )


class ProxmoxBackend(Backend):
    """Proxmox VE through its REST API (``proxmox://user@realm@host:8006``)."""

    kind = "proxmox"
    create_copies_volumes = True  # DiskSpec(volume=...) is created with import-from
    portability_notes = PORTABILITY_NOTES
    capabilities = frozenset(
        {
            Capability.VM_CREATE,
            Capability.VM_DELETE,
            Capability.VM_POWER,
            Capability.VM_PAUSE,
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
            Capability.CLOUD_INIT,
            Capability.SNAPSHOT,
            Capability.SNAPSHOT_MEMORY,
            Capability.HOST_METRICS,
            Capability.VOLUME_DELETE,
        }
    )

    traits = Traits(
        disk_buses=frozenset(_BUS_LIMIT),
        default_disk_bus=DiskBus.SCSI,
        disk_export=True,  # an SSH copy (ssh_node) or a vzdump-free read through the storage
        disk_import=True,  # import-from, after a convert where the storage wants one
        uefi_note=(
            "UEFI on Proxmox: the VM gets an OVMF firmware and an EFI vars disk (efidisk0); "
            "boot entries kept in the source's NVRAM are not carried over"
        ),
        limits=Limits(
            disks_per_bus=_BUS_LIMIT,  # VM names PVE refuses (not DNS names) are mapped: see _names
        ),
    )

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        self._api: Any = None
        self._version = ""
        self._vm_locks = KeyedLocks()
        self._lock_retries = options.int_option("lock_retries", 8, low=1, high=100)

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        """Call ``fn``, retrying Proxmox lock errors with backoff (option ``lock_retries``, default 8)."""
        return retry_locked(fn, what, attempts=self._lock_retries)

    # -- connection ------------------------------------------------------------------------------
    @property
    def api(self) -> Any:
        if self._api is None:
            raise HvkitError("the Proxmox backend is not connected")
        return self._api

    def connect(self) -> None:
        opts = self.options
        url = opts.url
        if not url.host:
            raise InvalidSpec("a proxmox URL needs a host: proxmox://root@pam@pve1:8006")
        host = f"{url.host}:{url.port or 8006}"
        verify: bool | str = False if not opts.verify_tls else (opts.ca_file or True)
        kwargs: dict[str, Any] = {"verify_ssl": verify, "timeout": opts.timeout, "backend": "https", "service": "PVE"}
        user = opts.username or url.username
        if opts.token:
            ident, sep, secret = opts.token.partition("=")
            if not sep or not secret:
                raise InvalidSpec(
                    "a Proxmox API token looks like USER@REALM!TOKENID=SECRET "
                    "(or TOKENID=SECRET with the user in the URL)"
                )
            if "!" in ident:
                user, _, token_name = ident.partition("!")
            else:
                token_name = ident
            if not user or "@" not in user:
                raise InvalidSpec("a Proxmox API token needs a user with a realm, like root@pam!hvkit=SECRET")
            kwargs.update(user=user, token_name=token_name, token_value=secret)
        elif opts.password:
            if not user:
                raise InvalidSpec("password authentication needs a user: proxmox://root@pam@host")
            kwargs.update(user=user if "@" in user else f"{user}@pam", password=opts.password)
        else:
            raise InvalidSpec("Proxmox needs token= (USER@REALM!TOKENID=SECRET) or a password")
        with translate():
            install_redaction("proxmoxer", "urllib3", "requests")  # bodies and tickets never reach a log
            self._api = ProxmoxAPI(host, **kwargs)
            self._version = str(self._api.version.get().get("version", ""))

    def close(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            with contextlib.suppress(Exception):
                api._store["session"].close()

    @property
    def version(self) -> str:
        return self._version

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return translate()

    # -- helpers ----------------------------------------------------------------------------------
    def follow_task(self, node: str, upid: str, operation: str, target: str, result: Any = None) -> Task:
        """A Task following PVE task ``upid`` on ``node`` (public: the disk helpers in _disks use it)."""
        return Task(
            id=upid,
            operation=operation,
            target=target,
            source=ProxmoxTaskSource(self, node, upid, result, f"{operation} on {target}"),
        )

    def _qemu(self, vm: VM) -> Any:
        return self.api.nodes(vm.host).qemu(vm.id)

    def _resources(self, kind: str) -> list[dict[str, Any]]:
        with translate():
            return list(self.api.cluster.resources.get(type=kind))

    def _nextid(self) -> int:
        with translate():
            return int(self.api.cluster.nextid.get())

    # -- inventory ----------------------------------------------------------------------------------
    def list_hosts(self) -> list[Host]:
        hosts = []
        for entry in self._resources("node"):
            node = entry["node"]
            online = entry.get("status") == "online"
            info: dict[str, Any] = {}
            if online:
                with translate():
                    info = self.api.nodes(node).status.get()
            cpu = info.get("cpuinfo", {})
            hosts.append(
                Host(
                    id=node,
                    name=node,
                    cpu_sockets=int(cpu.get("sockets", 1)),
                    cpu_cores=int(cpu.get("cores", entry.get("maxcpu", 0))),
                    cpu_threads=int(cpu.get("cpus", entry.get("maxcpu", 0))),
                    memory_mib=int(entry.get("maxmem", 0)) // MiB,
                    hypervisor_kind="proxmox",
                    hypervisor_version=str(info.get("pveversion", self._version)),
                    cpu_model=str(cpu.get("model", "")),
                    cpu_mhz=int(float(cpu["mhz"])) if cpu.get("mhz") else None,
                    cpu_usage=float(entry.get("cpu", 0)),
                    memory_used_mib=int(entry.get("mem", 0)) // MiB,
                    connected=online,
                    extra={"level": entry.get("level", ""), "uptime": entry.get("uptime")},
                )
            )
        return hosts

    def list_pools(self) -> list[StoragePool]:
        pools: dict[str, StoragePool] = {}
        nodes: dict[str, set[str]] = {}  # a shared storage is listed once per node that has it
        for entry in self._resources("storage"):
            content = set(str(entry.get("content", "")).split(","))
            if "images" not in content:
                continue
            shared = bool(entry.get("shared"))
            sid = entry["storage"]
            pool_id = sid if shared else f"{entry['node']}/{sid}"
            nodes.setdefault(pool_id, set()).add(str(entry["node"]))
            if pool_id in pools:
                continue
            kind = str(entry.get("plugintype", ""))
            formats = (
                {DiskFormat.QCOW2, DiskFormat.RAW, DiskFormat.VMDK} if kind in _FILE_STORAGES else {DiskFormat.RAW}
            )
            total = int(entry.get("maxdisk", 0))
            pools[pool_id] = StoragePool(
                id=pool_id,
                name=sid,
                capacity_bytes=total,
                free_bytes=max(0, total - int(entry.get("disk", 0))),
                shared=shared,
                formats=frozenset(formats),  # type: ignore[arg-type]  # attrs plugin vs. generic converter
                type=kind,
                host=None if shared else entry["node"],
                active=entry.get("status") == "available",
                extra={"content": sorted(c for c in content if c), "node": entry["node"]},
            )
        return [attrs.evolve(p, hosts=nodes[p.id]) if p.shared else p for p in pools.values()]

    def list_networks(self) -> list[Network]:
        nets = []
        for entry in self._resources("node"):
            if entry.get("status") != "online":
                continue
            node = entry["node"]
            with translate():
                ifaces = self.api.nodes(node).network.get(type="any_bridge")
            for iface in ifaces:
                name = iface["iface"]
                nets.append(
                    Network(
                        id=f"{node}/{name}",
                        name=name,
                        type="bridge",
                        bridge=name,
                        active=bool(iface.get("active", 1)),
                        host=node,
                    )
                )
        return nets

    def _vm_from_resource(self, entry: dict[str, Any]) -> VM:
        state = PowerState.RUNNING if entry.get("status") == "running" else PowerState.STOPPED
        lock = entry.get("lock")
        if lock == "suspended" and state is PowerState.STOPPED:
            state = PowerState.SUSPENDED
        elif lock == "migrate":
            state = PowerState.MIGRATING
        user_name, tags = _names.name_from_tags(frozenset(t for t in str(entry.get("tags", "")).split(";") if t))
        return VM(
            id=str(entry["vmid"]),
            name=user_name or str(entry.get("name", "")),
            power_state=state,
            cpus=int(entry.get("maxcpu", 0)),
            memory_mib=int(entry.get("maxmem", 0)) // MiB,
            host=entry.get("node"),
            tags=tags,
            template=bool(entry.get("template")),
            guest_os=None,
            extra={"vmid": int(entry["vmid"]), "node": entry.get("node"), "lock": lock, "detail": False},
        )

    def list_vms(self, detail: bool = False) -> list[VM]:
        """Every VM of the cluster from one ``/cluster/resources`` call; ``detail=True`` adds each VM's
        config and status (disks, NICs, notes: two calls per VM, PVE has no bulk read of them)."""
        entries = [e for e in self._resources("vm") if e.get("type") == "qemu"]
        if not detail:
            return [self._vm_from_resource(e) for e in entries]
        out = []
        for e in entries:
            with translate():
                config = self.api.nodes(e["node"]).qemu(e["vmid"]).config.get()
                status = self.api.nodes(e["node"]).qemu(e["vmid"]).status.current.get()
            out.append(self._vm_from_config(e, config, status))
        return out

    def get_vm(self, ref: str) -> VM:
        entries = [e for e in self._resources("vm") if e.get("type") == "qemu"]
        found = next((e for e in entries if str(e["vmid"]) == ref), None) or next(
            (e for e in entries if self._vm_from_resource(e).name == ref), None
        )
        if found is None:
            raise NotFound(f"no VM {ref!r} on this Proxmox cluster")
        node, vmid = found["node"], found["vmid"]
        with translate():
            config = self.api.nodes(node).qemu(vmid).config.get()
            status = self.api.nodes(node).qemu(vmid).status.current.get()
        return self._vm_from_config(found, config, status)

    def _vm_from_config(self, entry: dict[str, Any], config: dict[str, Any], status: dict[str, Any]) -> VM:
        base = self._vm_from_resource({**entry, "lock": status.get("lock", config.get("lock"))})
        state = base.power_state
        if status.get("status") == "running":
            state = PowerState.PAUSED if status.get("qmpstatus") == "paused" else PowerState.RUNNING
            if status.get("lock") == "migrate":
                state = PowerState.MIGRATING
        disks = []
        for key, value in config.items():
            m = _DISK_KEY.match(key)
            if not m and key != "efidisk0":
                continue
            drive = ps.parse_drive(str(value))
            if drive.get("media") == "cdrom":
                continue
            volid = drive.get("file", "")
            storage = volid.split(":", 1)[0] if ":" in volid else None
            fmt = drive.get("format") or (
                volid.rsplit(".", 1)[1] if re.search(r"\.(qcow2|raw|vmdk)$", volid) else "raw"
            )
            disks.append(
                Disk(
                    name=key,
                    size_bytes=ps.size_bytes(drive.get("size", "0")),
                    format=DiskFormat(fmt) if fmt in ("raw", "qcow2", "vmdk") else None,
                    bus=DiskBus(m.group(1)) if m else None,
                    pool=storage,
                    volume=volid or None,
                )
            )
        nics = []
        for key in sorted((k for k in config if re.fullmatch(r"net\d+", k)), key=lambda k: int(k[3:])):
            net = ps.parse_net(str(config[key]))
            model = net.get("model", "")
            nics.append(
                Nic(
                    mac=net.get("macaddr", "").lower(),
                    network=net.get("bridge"),
                    model=NicModel(model) if model in {m.value for m in NicModel} else None,
                    name=key,
                )
            )
        uuid = ps.parse(str(config.get("smbios1", "")), "uuid").get("uuid")
        memory = str(config.get("memory", "512")).split(",")[0].replace("current=", "")
        cores = int(config.get("cores", 1)) * int(config.get("sockets", 1))
        extra = dict(base.extra)
        extra.update(
            detail=True,
            config={k: v for k, v in config.items() if k not in ("cipassword", "digest")},
            qmpstatus=status.get("qmpstatus"),
        )
        return VM(
            id=base.id,
            name=base.name or str(config.get("name", "")),
            power_state=state,
            cpus=cores,
            memory_mib=int(memory),
            uuid=uuid,
            disks=tuple(disks),  # type: ignore[arg-type]
            nics=tuple(nics),  # type: ignore[arg-type]
            host=base.host,
            firmware=Firmware.UEFI if config.get("bios") == "ovmf" else Firmware.BIOS,
            guest_os=_guest_os(config.get("ostype")),
            notes=str(config.get("description", "")),
            tags=_names.name_from_tags(frozenset(t for t in str(config.get("tags", "")).split(";") if t))[1],
            template=bool(config.get("template")),
            extra=extra,
        )

    def _vendor_vm_name(self, name: str) -> str:
        """The DNS name a VM named ``name`` gets; AlreadyExists when another VM's name maps to it too
        (PVE itself would take duplicate names)."""
        vendor_name = _names.vm_name(name)
        for entry in self._resources("vm"):
            if entry.get("type") == "qemu" and str(entry.get("name", "")) == vendor_name:
                other = self._vm_from_resource(entry).name
                raise AlreadyExists(
                    f"VM name {name!r} becomes the Proxmox name {vendor_name!r}, which VM {other!r} "
                    f"(vmid {entry['vmid']}) has already"
                )
        return vendor_name

    # -- create / delete --------------------------------------------------------------------------------
    def _pick_node(self) -> str:
        nodes = [e for e in self._resources("node") if e.get("status") == "online"]
        if not nodes:
            raise HvkitError("no Proxmox node is online")
        return str(max(nodes, key=lambda e: int(e.get("maxmem", 0)) - int(e.get("mem", 0)))["node"])

    def _storage_types(self, node: str) -> dict[str, dict[str, Any]]:
        with translate():
            return {s["storage"]: s for s in self.api.nodes(node).storage.get()}

    def _create_params(self, spec: VMSpec, node: str) -> dict[str, Any]:
        """Proxmox parameters for ``spec``; raises InvalidSpec before anything is sent."""
        bad_tags = [t for t in spec.tags if not ps.TAG.fullmatch(t)]
        if bad_tags:
            raise InvalidSpec(f"Proxmox tags take letters, digits, '_', '-', '+', '.'; not {bad_tags[0]!r}")
        vendor_name = self._vendor_vm_name(spec.name)
        tags = set(spec.tags) | ({tag} if (tag := _names.name_tag(spec.name, vendor_name)) else set())
        storages = self._storage_types(node)
        params: dict[str, Any] = {
            "name": vendor_name,
            "cores": spec.cpus,
            "sockets": 1,
            "memory": spec.memory_mib,
            "ostype": _OSTYPE[spec.guest_os],
            "agent": "1",
            "scsihw": "virtio-scsi-single",
        }
        if spec.notes:
            params["description"] = spec.notes
        if tags:
            params["tags"] = ";".join(sorted(tags))
        counters = dict.fromkeys(_BUS_LIMIT, 0)
        first_pool: str | None = None
        for disk in spec.disks:
            if disk.bus not in _BUS_LIMIT:
                raise InvalidSpec(f"Proxmox has no {disk.bus.value} disk bus (use virtio, scsi, sata or ide)")
            index = counters[disk.bus] + (
                2 if disk.bus is DiskBus.IDE and spec.cloud_init is not None and counters[disk.bus] >= 2 else 0
            )
            counters[disk.bus] += 1
            if index >= _BUS_LIMIT[disk.bus]:
                raise InvalidSpec(f"too many {disk.bus.value} disks for Proxmox (at most {_BUS_LIMIT[disk.bus]})")
            key = f"{disk.bus.value}{index}"
            if disk.volume is not None:
                target = (
                    disk.pool
                    or first_pool
                    or next((s for s, e in storages.items() if "images" in str(e.get("content", ""))), None)
                )
                if target is None:
                    raise InvalidSpec("no storage with content 'images' to import the volume into")
                params[key] = f"{target}:0,import-from={disk.volume}"
                if disk.format is not None and storages.get(target, {}).get("type") in _FILE_STORAGES:
                    params[key] += f",format={disk.format.value}"
                first_pool = first_pool or target
                continue
            pool = str(disk.pool)
            if pool not in storages:
                raise InvalidSpec(f"storage {pool!r} is not available on node {node!r}")
            first_pool = first_pool or pool
            size = disk.size_bytes / GiB
            value = f"{pool}:{size:.6g}"
            if storages[pool].get("type") in _FILE_STORAGES and disk.format is not None:
                value += f",format={disk.format.value}"
            elif disk.format not in (None, DiskFormat.RAW):
                raise InvalidSpec(f"storage {pool!r} ({storages[pool].get('type')}) takes raw disks only")
            params[key] = value
        if "scsi0" in params or "virtio0" in params:
            params["boot"] = "order=" + ("virtio0" if "virtio0" in params else "scsi0")
        default_pool = first_pool or next(
            (s for s, e in storages.items() if "images" in str(e.get("content", ""))), None
        )
        for i, nic in enumerate(spec.nics):
            bridge = nic.network.split("/")[-1]
            value = f"{nic.model.value}={nic.mac.upper()}" if nic.mac else nic.model.value
            params[f"net{i}"] = f"{value},bridge={bridge}"
        if spec.firmware is Firmware.UEFI:
            if default_pool is None:
                raise InvalidSpec("UEFI needs a storage for the EFI vars disk")
            params.update(bios="ovmf", machine="q35", efidisk0=f"{default_pool}:1,efitype=4m,pre-enrolled-keys=0")
        ci = spec.cloud_init
        if ci is not None:
            if ci.user_data is not None:
                raise InvalidSpec(
                    "cloud-init user_data needs a snippets storage (cicustom), which this backend does not manage; "
                    "use username/password/ssh_keys"
                )
            if ci.hostname is not None and ci.hostname != vendor_name:
                raise InvalidSpec(
                    "on Proxmox the cloud-init hostname is the VM name; leave hostname unset or equal to the name"
                )
            if default_pool is None:
                raise InvalidSpec("cloud-init needs a storage for its drive")
            params["ide2"] = f"{default_pool}:cloudinit"
            if ci.username:
                params["ciuser"] = ci.username
            if ci.password:
                params["cipassword"] = ci.password
            if ci.ssh_keys:
                params["sshkeys"] = urllib.parse.quote("\n".join(ci.ssh_keys), safe="")
            network = (ci.network_config or "ip=dhcp").strip()
            if not re.fullmatch(r"((ip|gw|ip6|gw6)=[^,\s]+)(,(ip|gw|ip6|gw6)=[^,\s]+)*", network):
                raise InvalidSpec(
                    "on Proxmox cloud-init network_config is an ipconfig string "
                    "such as 'ip=10.0.0.5/24,gw=10.0.0.1' or 'ip=dhcp'"
                )
            params["ipconfig0"] = network
        return params

    def create_vm(self, spec: VMSpec) -> Any:
        node = spec.host or self._pick_node()
        params = self._create_params(spec, node)

        # The creation token: the SMBIOS UUID of the new VM, written into its own config. Clean-up after a
        # failure removes a vmid only while it still carries this token.
        token = str(uuid.uuid4())
        params.setdefault("smbios1", f"uuid={token}")

        def attempt() -> ProxmoxTaskSource:
            vmid = self._nextid()
            with translate():
                upid = self.api.nodes(node).qemu.post(vmid=vmid, **params)
            return ProxmoxTaskSource(self, node, upid, str(vmid), f"vms.create {spec.name}")

        source = _retrying(
            f"vms.create {spec.name}",
            attempt,
            retry_exists=True,
            attempts=self._lock_retries,
            finish=lambda vmid: self._claim_name(node, int(vmid), params["name"], token),
            undo=lambda made: self._undo_task(made, params["name"], token),
        )
        return Task(id=f"create-{spec.name}", operation="vms.create", target=spec.name, source=source)

    # One name, one VM: PVE lets several VMs share a name. A create or clone that finished checks, by vmid,
    # that it is the only VM of its name; among VMs of one name the lowest vmid wins (vmids are handed out
    # in order, so it is the one submitted first); VMs with a lower vmid still being made are waited for.
    # The loser destroys its own vmid (and nothing else) and raises AlreadyExists.
    def _claim_name(self, node: str, vmid: int, name: str, token: str | None) -> str:
        deadline = time.monotonic() + PENDING_WAIT  # racing requests start together: a long-running older
        pause = 0.05  # clone of another name must not hold this one up for its whole copy
        while True:
            entries = [e for e in self._resources("vm") if e.get("type") == "qemu" and int(e["vmid"]) < vmid]
            making = [
                e
                for e in entries
                if e.get("lock") in ("create", "clone") and e.get("name") in (None, "", name, f"VM {e['vmid']}")
            ]
            rivals = [e for e in entries if e.get("name") == name and e not in making]
            if rivals:
                self._undo_new_vm(node, vmid, name, token)
                raise AlreadyExists(
                    f"a VM named {name!r} exists already (VM {rivals[0]['vmid']}); "
                    f"VM {vmid}, made for this request at the same time, was removed again"
                )
            if not making or time.monotonic() > deadline:
                return str(vmid)
            time.sleep(pause)
            pause = min(pause * 1.5, 1.0)

    def _undo_task(self, made: ProxmoxTaskSource, name: str, token: str | None) -> None:
        """Undo a create or clone task of a request that failed: wait until PVE's task has ended (it may still
        run when only our reading of it failed), then destroy the VM it made if that is still there."""
        deadline = time.monotonic() + CLAIM_WAIT
        while time.monotonic() < deadline:
            try:
                if made.poll().state.done:
                    break
            except HvkitError as exc:
                log.info("reading task %s again after: %s", made.upid, exc)
            time.sleep(0.2)
        self._undo_new_vm(made.node, int(made._result), name, token)

    def _undo_new_vm(self, node: str, vmid: int, name: str, token: str | None) -> None:
        """Destroy VM ``vmid`` that this backend's create or clone made, if it is still there and still that VM.

        Identity: the vmid the task was given, and its creation token (the SMBIOS UUID a create wrote) or,
        for a clone, the name it was given. A vmid now holding any other VM is left alone.
        """
        entry = next((e for e in self._resources("vm") if int(e.get("vmid", -1)) == vmid), None)
        if entry is None:
            return
        with translate():
            config = self.api.nodes(entry["node"]).qemu(vmid).config.get()
        mine = (
            ps.parse(str(config.get("smbios1", "")), "uuid").get("uuid") == token
            if token is not None
            else config.get("name", name) == name
        )
        if not mine:
            log.warning("VM %s is no longer the one this request made; left alone", vmid)
            return
        for _ in range(3):
            try:
                with translate():
                    api = self.api.nodes(entry["node"]).qemu(vmid)
                    upid = api.delete(purge=1, skiplock=1, **{"destroy-unreferenced-disks": 1})
                self.follow_task(str(entry["node"]), str(upid), "vms.delete", str(vmid)).wait(CLAIM_WAIT)
                log.warning("removed VM %s, made by this request, again", vmid)
                return
            except NotFound:
                return
            except HvkitError as exc:
                if not is_lock_error(exc):
                    raise
                time.sleep(0.5)

    def delete_vm(self, vm: VM, keep_disks: bool) -> Any:
        if keep_disks:
            raise Unsupported("proxmox", "vms.delete(keep_disks=True)", "Proxmox destroys a VM's disks with it")
        clones = self._linked_clones(vm, [d.name for d in vm.disks]) if vm.template else []
        if clones:  # PVE would destroy the template and keep their base, owned by no VM any more
            raise InvalidState(
                f"template {vm.name!r} is the base of linked clones ({', '.join(clones)}); delete them first"
            )
        with translate():
            upid = self._qemu(vm).delete(purge=1, **{"destroy-unreferenced-disks": 1})
        return self.follow_task(str(vm.host), upid, "vms.delete", vm.name)

    # -- power -------------------------------------------------------------------------------------------
    def _post_status(self, vm: VM, action: str, operation: str, **params: Any) -> Task:
        def call() -> str:
            with translate():
                return str(self._qemu(vm).status(action).post(**params))

        upid = self._retry(call, f"{operation} {vm.name}")
        return self.follow_task(str(vm.host), upid, operation, vm.name, vm.id)

    def start_vm(self, vm: VM) -> Any:
        return self._post_status(vm, "start", "vms.start")

    def stop_vm(self, vm: VM, force: bool, timeout: float) -> Any:
        if force:
            return self._post_status(vm, "stop", "vms.stop")
        return self._post_status(vm, "shutdown", "vms.stop", timeout=max(1, int(timeout)), forceStop=0)

    def reboot_vm(self, vm: VM, force: bool) -> Any:
        return self._post_status(vm, "reset" if force else "reboot", "vms.reboot")

    def pause_vm(self, vm: VM) -> Any:
        return self._post_status(vm, "suspend", "vms.pause")

    def resume_vm(self, vm: VM) -> Any:
        return self._post_status(vm, "resume", "vms.resume")

    def suspend_vm(self, vm: VM) -> Any:
        return self._post_status(vm, "suspend", "vms.suspend", todisk=1)

    def reconfigure_vm(self, vm: VM, cpus: int | None, memory_mib: int | None) -> Any:
        params: dict[str, Any] = {}
        if cpus is not None:
            params.update(cores=cpus, sockets=1)
        if memory_mib is not None:
            params["memory"] = memory_mib

        def call() -> str:
            with translate():
                return str(self._qemu(vm).config.post(**params))

        upid = self._retry(call, f"vms.reconfigure {vm.name}")
        return self.follow_task(str(vm.host), upid, "vms.reconfigure", vm.name, vm.id)

    # -- clone / migrate -------------------------------------------------------------------------------------
    def clone_vm(self, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> Any:
        # PVE links clones to templates only: a linked clone of any other VM (running, with snapshots) is a full
        # copy of its current state, the one way PVE clones it (see docs/portability.md)
        linked = linked and vm.template
        if linked and pool is not None:
            raise InvalidSpec("a linked clone stays on its template's storage; pass pool only for a full clone")
        vendor_name = self._vendor_vm_name(name)
        node = str(vm.host)
        params: dict[str, Any] = {"name": vendor_name, "full": 0 if linked else 1}
        # PVE copies the source's tags: the clone's keep the user's name of the clone, not of its source
        name_tag = _names.name_tag(name, vendor_name)
        retag = name_tag is not None or _names.vm_name(vm.name) != vm.name
        tags = ";".join(sorted({*vm.tags, *([name_tag] if name_tag else [])}))

        if host is not None and host != node:
            params["target"] = host
        if pool is not None:
            params["storage"] = pool
        # A non-template source is locked ("clone") for the whole copy: clones of it go one at a time here.
        # Clones of a template run in parallel; their short lock collisions are retried.
        serial = self._vm_locks.get(vm.id) if not vm.template else None

        def attempt() -> ProxmoxTaskSource:
            with self._vm_locks.get(f"submit-{vm.id}"):
                newid = self._nextid()
                with translate():
                    upid = self.api.nodes(node).qemu(vm.id).clone.post(newid=newid, **params)
            return ProxmoxTaskSource(self, node, upid, str(newid), f"vms.clone {vm.name} -> {name}")

        def run() -> ProxmoxTaskSource:
            return attempt()

        target = host or node
        if serial is not None:
            serial.acquire()
        try:
            source = _retrying(
                f"vms.clone {name}",
                run,
                retry_exists=True,
                attempts=self._lock_retries,
                finish=lambda newid: self._claim_name(target, int(newid), params["name"], None),
                undo=lambda made: self._undo_task(made, params["name"], None),
            )
            if serial is not None:
                source.join()
        finally:
            if serial is not None:
                serial.release()
        task = Task(id=f"clone-{name}", operation="vms.clone", target=name, source=source)
        if not retag:
            return task

        def set_tags(newid: Any) -> Any:
            target = host if host is not None else node
            with translate():
                self.api.nodes(target).qemu(newid).config.put(**({"tags": tags} if tags else {"delete": "tags"}))
            return newid

        return Task.in_thread("vms.clone", name, lambda: task, lambda t: set_tags(t.wait()))

    def mark_template(self, vm: VM) -> Task:
        """Convert a stopped VM into a template (linked clones on Proxmox come from templates only)."""
        with translate():
            upid = self._qemu(vm).template.post()
        return self.follow_task(str(vm.host), upid, "vms.template", vm.name, vm.id)

    def migrate_vm(self, vm: VM, host: str | None, pool: str | None, live: bool) -> Any:
        if host is None:
            return self._move_disks(vm, str(pool))
        running = vm.power_state is not PowerState.STOPPED
        if running and not live:
            raise InvalidSpec(
                f"VM {vm.name!r} is running; Proxmox moves a running VM live only (pass live=True or stop it)"
            )
        params: dict[str, Any] = {"target": host, "online": 1 if running else 0, "with-local-disks": 1}
        if pool is not None:
            params["targetstorage"] = pool

        def call() -> str:
            with translate():
                return str(self._qemu(vm).migrate.post(**params))

        upid = self._retry(call, f"vms.migrate {vm.name}")
        return self.follow_task(str(vm.host), upid, "vms.migrate", vm.name, vm.id)

    def _move_disks(self, vm: VM, pool: str) -> Task:
        """Move every disk of ``vm`` to storage ``pool`` on its node, one PVE task per disk.

        A template's disks that linked clones are based on are not moved (PVE would keep the old base for
        the clones, owned by no VM any more): InvalidState names the clones.
        """
        full = self.get_vm(vm.id)
        keys = [d.name for d in full.disks if d.pool != pool and d.name != "efidisk0"]
        clones = self._linked_clones(full, keys)
        if clones:
            raise InvalidState(
                f"VM {vm.name!r} is the base of linked clones ({', '.join(clones)}); moving its disks would "
                "leave their base behind: delete them or make full clones first"
            )

        def run() -> str:
            for key in keys:

                def call(key: str = key) -> str:
                    with translate():
                        return str(self._qemu(vm).move_disk.post(disk=key, storage=pool, delete=1))

                upid = self._retry(call, f"vms.migrate {vm.name} {key}")
                self.follow_task(str(vm.host), upid, "vms.migrate", vm.name).wait()
            return vm.id

        return Task.in_thread("vms.migrate", vm.name, run)

    def _linked_clones(self, vm: VM, keys: list[str]) -> list[str]:
        """VM ids of the linked clones based on disks ``keys`` of ``vm`` (their volids name the base:
        ``local:100/base-100-disk-0.qcow2/101/vm-101-disk-0.qcow2``, ``local-lvm:base-100-disk-0/vm-101-disk-0``)."""
        bases = [str(d.volume) for d in vm.disks if d.name in keys and ":base-" in str(d.volume).replace("/", ":")]
        found: set[str] = set()
        for storage in {b.split(":", 1)[0] for b in bases}:
            with translate():
                content = self.api.nodes(vm.host).storage(storage).content.get(content="images")
            for entry in content:
                volid = str(entry.get("volid", ""))
                if any(volid.startswith(base + "/") for base in bases):
                    found.add(str(entry.get("vmid", volid)))
        return sorted(found)

    # -- observe ------------------------------------------------------------------------------------------
    def console(self, vm: VM) -> Console:
        with translate():
            data = self._qemu(vm).vncproxy.post(websocket=1)
        port = int(data["port"])
        host = self.options.url.host
        query = urllib.parse.urlencode({"port": port, "vncticket": data["ticket"]})
        url = (
            f"wss://{host}:{self.options.url.port or 8006}/api2/json/nodes/{vm.host}/qemu/{vm.id}/vncwebsocket?{query}"
        )
        return Console(protocol="vnc", host=host, port=port, url=url, password=str(data["ticket"]))

    def guest_ips(self, vm: VM) -> list[str]:
        with translate():
            data = self._qemu(vm).agent("network-get-interfaces").get()
        ips = []
        for iface in data.get("result", []):
            if iface.get("name") == "lo":
                continue
            for addr in iface.get("ip-addresses", []):
                ip = str(addr.get("ip-address", ""))
                if ip and not ip.startswith(("127.", "fe80:")) and ip != "::1":
                    ips.append(ip)
        return ips

    def vm_metrics(self, vms: list[VM]) -> list[VMMetrics]:
        """Counters of every asked VM from one ``/cluster/resources`` call."""
        now = dt.datetime.now(dt.UTC)
        wanted = {vm.id for vm in vms}
        out = []
        for e in self._resources("vm"):
            if str(e.get("vmid")) not in wanted:
                continue
            out.append(
                VMMetrics(
                    vm=str(e["vmid"]),
                    timestamp=now,
                    cpu_usage=float(e.get("cpu", 0)),
                    memory_used_mib=int(e.get("mem", 0)) // MiB,
                    disk_read_bytes=int(e.get("diskread", 0)),
                    disk_write_bytes=int(e.get("diskwrite", 0)),
                    net_rx_bytes=int(e.get("netin", 0)),
                    net_tx_bytes=int(e.get("netout", 0)),
                )
            )
        return out

    def host_metrics(self, hosts: list[Host]) -> list[HostMetrics]:
        now = dt.datetime.now(dt.UTC)
        wanted = {h.id for h in hosts}
        return [
            HostMetrics(
                host=e["node"],
                timestamp=now,
                cpu_usage=float(e.get("cpu", 0)),
                memory_used_mib=int(e.get("mem", 0)) // MiB,
            )
            for e in self._resources("node")
            if e["node"] in wanted
        ]

    def rrddata(self, vm: VM, timeframe: str = "hour") -> list[dict[str, Any]]:
        """Proxmox-only: the VM's RRD series (cpu, mem, netin/out and disk rates per interval)."""
        with translate():
            return list(self._qemu(vm).rrddata.get(timeframe=timeframe))

    # -- snapshots ------------------------------------------------------------------------------------------
    def list_snapshots(self, vm: VM) -> list[Snapshot]:
        with translate():
            entries = self._qemu(vm).snapshot.get()
        current_parent = next((e.get("parent") for e in entries if e.get("name") == "current"), None)
        return [
            Snapshot(
                id=e["name"],
                name=_names.split_description(e["name"], str(e.get("description", "")))[0],
                vm=vm.id,
                parent=e.get("parent"),
                created=dt.datetime.fromtimestamp(int(e["snaptime"]), dt.UTC) if e.get("snaptime") else None,
                description=_names.split_description(e["name"], str(e.get("description", "")))[1],
                memory=bool(e.get("vmstate")),
                current=e["name"] == current_parent,
            )
            for e in entries
            if e.get("name") != "current"
        ]

    def create_snapshot(self, vm: VM, name: str, description: str, memory: bool, quiesce: bool) -> Any:
        snap_id = _names.snapshot_id(name)
        taken = next((s for s in self.list_snapshots(vm) if s.id == snap_id), None)
        if taken is not None:
            raise AlreadyExists(
                f"snapshot name {name!r} becomes the Proxmox snapshot id {snap_id!r}, which snapshot {taken.name!r} "
                f"of VM {vm.name!r} has already"
            )
        params: dict[str, Any] = {"snapname": snap_id}
        if stored := _names.join_description(name, snap_id, description):
            params["description"] = stored

        if memory:
            params["vmstate"] = 1

        def call() -> str:
            with translate():
                return str(self._qemu(vm).snapshot.post(**params))

        upid = self._retry(call, f"snapshots.create {vm.name}")
        # the result: the snapshot's id (a PVE snapshot is known by its name)
        return self.follow_task(str(vm.host), upid, "snapshots.create", vm.name, params["snapname"])

    def revert_snapshot(self, vm: VM, snapshot: Snapshot) -> Any:
        def call() -> str:
            with translate():
                return str(self._qemu(vm).snapshot(snapshot.id).rollback.post())

        upid = self._retry(call, f"snapshots.revert {vm.name}")
        return self.follow_task(str(vm.host), upid, "snapshots.revert", vm.name)

    def delete_snapshot(self, vm: VM, snapshot: Snapshot, children: bool) -> Any:
        order = [snapshot.id]
        if children:
            snaps = self.list_snapshots(vm)
            kids: dict[str | None, list[str]] = {}
            for s in snaps:
                kids.setdefault(s.parent, []).append(s.id)
            todo, order = [snapshot.id], []
            while todo:
                sid = todo.pop()
                order.append(sid)
                todo.extend(kids.get(sid, []))
            order.reverse()  # leaves first

        def run() -> None:
            for sid in order:

                def call(sid: str = sid) -> str:
                    with translate():
                        return str(self._qemu(vm).snapshot(sid).delete())

                upid = self._retry(call, f"snapshots.delete {vm.name}")
                self.follow_task(str(vm.host), upid, "snapshots.delete", vm.name).wait()

        if len(order) == 1:

            def one() -> str:
                with translate():
                    return str(self._qemu(vm).snapshot(snapshot.id).delete())

            return self.follow_task(
                str(vm.host), retry_locked(one, f"snapshots.delete {vm.name}"), "snapshots.delete", vm.name
            )
        return Task.in_thread("snapshots.delete", vm.name, run)

    # -- volumes -----------------------------------------------------------------------------------------------
    def list_volumes(self, pool: StoragePool) -> list[Volume]:
        node = pool.host or str(pool.extra.get("node"))
        with translate():
            items = self.api.nodes(node).storage(pool.name).content.get()
        out = []
        for item in items:
            fmt = str(item.get("format", ""))
            volid = str(item["volid"])
            out.append(
                Volume(
                    id=volid,
                    name=volid.split(":", 1)[1],
                    pool=pool.name,
                    capacity_bytes=int(item.get("size", 0)),
                    allocation_bytes=int(item["used"]) if item.get("used") is not None else None,
                    format=DiskFormat(fmt) if fmt in ("raw", "qcow2", "vmdk") else None,
                    backing=item.get("parent"),
                    extra={"content": item.get("content"), "vmid": item.get("vmid"), "node": node},
                )
            )
        return out

    def delete_volume(self, volume: Volume) -> Task:
        return _disks.delete_volume(self, volume)

    # -- disk export / import (migration; see _disks) ----------------------------------------------------------
    def export_disk(
        self, volume: Volume, workdir: str, progress: ProgressFn, snapshot: Snapshot | None = None
    ) -> DiskImage:
        """The volume's image file copied from its node over SSH (options ``ssh_*``; see ``_disks``)."""
        return _disks.export_disk(self, volume, workdir, progress, snapshot)

    def import_disk(
        self, pool: StoragePool, name: str, image: DiskImage, fmt: DiskFormat, workdir: str, progress: ProgressFn
    ) -> Volume:
        """Upload with ``content=import`` + sha256; the VM is then created with ``import-from`` it."""
        return _disks.import_disk(self, pool, name, image, fmt, workdir, progress)

    def upload_image(
        self,
        node: str,
        storage: str,
        filename: str,
        source: IO[bytes],
        *,
        content: str = "import",
        checksum: tuple[str, str] | None = None,
        progress: ProgressFn | None = None,
    ) -> Task:
        """Proxmox-only: upload a disk image (content ``import``) or an ISO; the Task yields its volume id.

        ``checksum`` is (algorithm, hex digest); Proxmox verifies it. The volume id then serves as
        ``DiskSpec(volume=...)`` in a VMSpec, which the backend creates with ``import-from``.
        """
        if not re.fullmatch(r"[\w.\-]+\.(qcow2|raw|vmdk|img|iso|ova)", filename):
            raise InvalidSpec(
                f"upload filename {filename!r} must be a plain name ending in .qcow2, .raw, .vmdk, .img, .iso or .ova"
            )
        data: dict[str, Any] = {"content": content}
        if checksum is not None:
            data.update({"checksum": checksum[1], "checksum-algorithm": checksum[0]})
        wrapped = _NamedStream(source, filename, progress)
        data["filename"] = wrapped
        with translate():
            upid = self.api.nodes(node).storage(storage).upload.post(**data)
        return self.follow_task(node, upid, "volumes.upload", filename, f"{storage}:{content}/{filename}")


class _NamedStream(io.RawIOBase):
    """A read-only stream that proxmoxer sends as a multipart file under a chosen name."""

    def __init__(self, source: IO[bytes], name: str, progress: ProgressFn | None) -> None:
        super().__init__()
        self._src = source
        self.name = name
        self._progress = progress
        self._done = 0
        here = source.tell()
        self._total = source.seek(0, io.SEEK_END) - here
        source.seek(here)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._src.read(size)
        self._done += len(chunk)
        if self._progress is not None:
            self._progress(self._done, self._total)
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def tell(self) -> int:
        return self._src.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._src.seek(offset, whence)
