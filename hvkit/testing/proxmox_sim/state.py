"""The simulated cluster: nodes, storages with real image files, QEMU VMs, locks, snapshots."""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from ._values import (
    PVEError,
    drive,
    entries,
    fmt_size,
    image_info,
    is_size,
    join_drive,
    qemu_img,
)
from .schema import parse_property_string, schema
from .tasks import TaskContext, TaskRunner

__all__ = ["Cluster", "PVEError", "Storage"]

GiB = 1024**3
DISK_KEYS = tuple(f"{bus}{i}" for bus, n in (("ide", 4), ("sata", 6), ("scsi", 31), ("virtio", 16)) for i in range(n))
DISK_KEYS_ALL = (*DISK_KEYS, "efidisk0", "tpmstate0")
STORAGE_LOCK_TIMEOUT = 10.0  # PVE's storage lock (lock_file's default), whatever the config lock timeout


@attrs.define
class Storage:
    id: str
    type: str  # dir, lvmthin, nfs
    content: frozenset[str]
    shared: bool
    capacity: int
    formats: tuple[str, ...]  # first is the default
    nodes: frozenset[str] | None = None  # storage.cfg "nodes": where it is available (None: every node)

    def on(self, node: str) -> bool:
        return self.nodes is None or node in self.nodes

    @property
    def file_based(self) -> bool:
        return self.type in ("dir", "nfs")


@attrs.define
class VMState:
    vmid: int
    node: str
    config: dict[str, str]
    status: str = "stopped"  # stopped, running
    qmpstatus: str = "stopped"  # running, paused, stopped
    started: float = 0.0
    snapshots: dict[str, dict[str, Any]] = attrs.Factory(dict)
    ignore_acpi: bool = False
    netin: int = 0
    netout: int = 0
    diskread: int = 0
    diskwrite: int = 0


class Cluster:
    """All state of one simulated cluster. Thread-safe: ``mu`` guards the tables, per-VM locks the configs."""

    def __init__(self, root: Path, nodes: list[str], *, task_delay: float, lock_timeout: float, capacity: int) -> None:
        self.root = root
        self.nodes = list(nodes)
        self.mu = threading.RLock()
        self.runner = TaskRunner(task_delay)
        self.lock_timeout = lock_timeout
        self.vms: dict[int, VMState] = {}
        self.node_offline: set[str] = set()
        self.ha_resources: dict[str, dict[str, Any]] = {}  # HA manager resources by sid ("vm:100")
        self.ha_rules: dict[str, dict[str, Any]] = {}  # HA rules by id (/etc/pve/ha/rules.cfg)
        self.ha_services: dict[str, dict[str, Any]] = {}  # the CRM's service status by sid (see _ha_manager)
        self.ha_offline_since: dict[str, float] = {}  # node -> when the CRM first saw it offline (monotonic)
        self.ha_fence_delay = 60.0  # seconds offline before the CRM fences a node (as PVE; tests set less)
        # seconds an offline node's last VM figures stay in /cluster/resources (pmxcfs drops RRD entries
        # older than 5 minutes); after that its VMs are listed with status "unknown" and no name or sizes
        self.stats_expire = 300.0
        self.stats_offline_since: dict[str, float] = {}  # node -> when resources() first saw it offline
        self._config_locks: dict[int, threading.Lock] = {}
        self._storage_locks: dict[str, threading.Lock] = {}
        self._info_cache: dict[tuple[str, int, int, int], dict[str, Any]] = {}
        self.storages = {
            s.id: s
            for s in (
                Storage(
                    "local",
                    "dir",
                    frozenset({"iso", "vztmpl", "backup", "import", "images", "snippets"}),
                    False,
                    capacity,
                    ("qcow2", "raw", "vmdk"),
                ),
                Storage("local-lvm", "lvmthin", frozenset({"images", "rootdir"}), False, capacity, ("raw",)),
                Storage(
                    "shared",
                    "nfs",
                    frozenset({"images", "iso", "import"}),
                    True,
                    capacity * 4,
                    ("qcow2", "raw", "vmdk"),
                ),
            )
        }
        self.bridges = ["vmbr0", "vmbr1"]

    # -- helpers -----------------------------------------------------------------------------------
    def storage_dir(self, storage: Storage, node: str) -> Path:
        path = self.root / ("shared" if storage.shared else node) / storage.id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def check_node(self, node: str) -> None:
        if node not in self.nodes:
            raise PVEError(
                500,
                f"hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known",
            )
        if node in self.node_offline:
            raise PVEError(595, f"no route to host ({node})")

    def vm(self, node: str, vmid: int) -> VMState:
        self.check_node(node)
        with self.mu:
            vm = self.vms.get(vmid)
        if vm is None or vm.node != node:
            raise PVEError(500, f"Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist")
        return vm

    def storage(self, node: str, sid: str) -> Storage:
        self.check_node(node)
        st = self.storages.get(sid)
        if st is None:
            raise PVEError(500, f"storage '{sid}' does not exist")
        if not st.on(node):
            raise PVEError(500, f"storage '{sid}' is not available on node '{node}'")
        return st

    @contextlib.contextmanager
    def config_lock(self, vmid: int, timeout: float | None = None) -> Iterator[None]:
        """flock on /var/lock/qemu-server/lock-<vmid>.conf with PVE's timeout message."""
        with self.mu:
            lock = self._config_locks.setdefault(vmid, threading.Lock())
        if not lock.acquire(timeout=self.lock_timeout if timeout is None else timeout):
            raise PVEError(500, f"can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout")
        try:
            yield
        finally:
            lock.release()

    @contextlib.contextmanager
    def storage_lock(self, sid: str) -> Iterator[None]:
        with self.mu:
            lock = self._storage_locks.setdefault(sid, threading.Lock())
        if not lock.acquire(timeout=max(self.lock_timeout, STORAGE_LOCK_TIMEOUT)):
            raise PVEError(500, f"can't lock file '/var/lock/pve-manager/pve-storage-{sid}' - got timeout")
        try:
            yield
        finally:
            lock.release()

    @staticmethod
    def check_lock(vm: VMState, skiplock: bool = False) -> None:
        lock = vm.config.get("lock")
        if lock and not skiplock:
            raise PVEError(500, f"VM is locked ({lock})")

    def nextid(self) -> int:
        with self.mu:
            vmid = 100
            while vmid in self.vms:
                vmid += 1
            return vmid

    # -- volumes -----------------------------------------------------------------------------------
    def parse_volid(self, volid: str) -> tuple[Storage, str]:
        sid, _, name = volid.partition(":")
        st = self.storages.get(sid)
        if st is None or not name:
            raise PVEError(
                500, f"storage '{sid}' does not exist" if st is None else f"unable to parse volume ID '{volid}'"
            )
        return st, name

    def volume_path(self, node: str, volid: str) -> Path:
        st, name = self.parse_volid(volid)
        base = self.storage_dir(st, node)
        if st.file_based:
            if name.startswith(("iso/", "import/", "snippets/")):
                return base / name
            parts = name.split("/")  # 100/vm-100-disk-0.qcow2 or 100/base-100-disk-0.qcow2/101/vm-101-disk-0.qcow2
            return base / "images" / parts[-2] / parts[-1]
        return base / name.split("/")[-1]

    def volumes(self, node: str, st: Storage) -> list[dict[str, Any]]:
        base = self.storage_dir(st, node)
        out: list[dict[str, Any]] = []
        if st.file_based:
            for sub, content in (("iso", "iso"), ("import", "import")):
                for f in sorted((base / sub).glob("*")) if (base / sub).is_dir() else []:
                    try:
                        size = f.stat().st_size
                    except FileNotFoundError:
                        continue
                    out.append(
                        {
                            "volid": f"{st.id}:{sub}/{f.name}",
                            "content": content,
                            "format": f.suffix.lstrip(".") or "raw",
                            "size": size,
                            "used": size,
                            "ctime": int(f.stat().st_mtime),
                        }
                    )
            files = sorted(f for d in entries(base / "images") for f in entries(d))
            names = [f"{f.parent.name}/{f.name}" for f in files]
        else:
            files = sorted(p for p in base.glob("*") if p.is_file())
            names = [f.name for f in files]
        with self.mu:
            linked = {d.get("file", ""): d for vm in self.vms.values() for d in self._disks(vm).values()}
        for f, name in zip(files, names, strict=True):
            volid = f"{st.id}:{name}"
            for full in linked:  # a linked clone's volid names its base
                if full.endswith("/" + name) and full.startswith(st.id + ":"):
                    volid = full
            try:
                info = self._listed_info(f)
                ctime = int(f.stat().st_mtime)
            except (PVEError, OSError):
                if f.exists():
                    raise
                continue  # freed while the storage was being listed: PVE lists what the directory holds
            vmid = int(name.split("/")[0]) if st.file_based else int(name.split("-")[1])
            out.append(
                {
                    "volid": volid,
                    "content": "images",
                    "format": info["format"],
                    "size": info["virtual-size"],
                    "used": info.get("actual-size", 0),
                    "vmid": vmid,
                    "ctime": ctime,
                    **({"parent": info["parent"]} if info.get("parent") else {}),
                }
            )
        return out

    def _listed_info(self, path: Path) -> dict[str, Any]:
        """qemu-img info of a listed image, read again only when the file changed (listings are frequent)."""
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)
        with self.mu:
            info = self._info_cache.get(key)
        if info is None:
            info = image_info(path)
            with self.mu:
                if len(self._info_cache) > 4096:
                    self._info_cache.clear()
                self._info_cache[key] = info
        return info

    def used_bytes(self, node: str, st: Storage) -> int:
        return sum(int(v["size"]) for v in self.volumes(node, st))

    def _disks(self, vm: VMState) -> dict[str, dict[str, str]]:
        return {k: drive(v) for k, v in vm.config.items() if (k in DISK_KEYS_ALL or k.startswith("unused")) and v}

    def alloc(
        self, node: str, sid: str, vmid: int, size: int, fmt: str | None, *, base: bool = False, name: str | None = None
    ) -> str:
        st = self.storage(node, sid)
        if "images" not in st.content:
            raise PVEError(500, f"storage '{sid}' does not support content-type 'images'")
        fmt = fmt or st.formats[0]
        if fmt not in st.formats:
            raise PVEError(500, f"unsupported format '{fmt}'")
        with self.storage_lock(sid):
            if size + self.used_bytes(node, st) > st.capacity:
                raise PVEError(500, f"no space left on storage '{sid}'")
            if name is None:
                n = 0
                while True:
                    stem = f"{'base' if base else 'vm'}-{vmid}-disk-{n}"
                    volid = f"{sid}:{vmid}/{stem}.{fmt}" if st.file_based else f"{sid}:{stem}"
                    if not self.volume_path(node, volid).exists():
                        break
                    n += 1
            else:
                volid = f"{sid}:{vmid}/{name}" if st.file_based else f"{sid}:{name}"
                if self.volume_path(node, volid).exists():
                    raise PVEError(500, f"volume '{volid}' already exists")
            path = self.volume_path(node, volid)
            path.parent.mkdir(parents=True, exist_ok=True)
            qemu_img("create", "-q", "-f", fmt, str(path), str(size))
        return volid

    def free_volume(self, node: str, volid: str) -> None:
        """Remove a volume's image (and its VM's image folder once empty) under the storage's lock, as PVE
        does: an allocation in the same folder never sees it vanish under it."""
        st, _ = self.parse_volid(volid)
        path = self.volume_path(node, volid)
        with self.mu:
            clones = [vm.vmid for vm in self.vms.values() for d in self._disks(vm).values()
                      if d.get("file", "").startswith(volid + "/")]  # fmt: skip
        if clones:  # PVE's free_image of a base volume
            raise PVEError(500, f"base volume '{volid}' is still in use by linked cloned VM {clones[0]}")
        with self.storage_lock(st.id):
            path.unlink(missing_ok=True)
            if st.file_based and path.parent.parent.name == "images":
                with contextlib.suppress(OSError):
                    path.parent.rmdir()

    # -- inventory ---------------------------------------------------------------------------------
    def resources(self, rtype: str | None) -> list[dict[str, Any]]:
        """``GET /cluster/resources``: nodes, VMs and storages as PVE lists them."""
        from ._resources import cluster_resources

        return cluster_resources(self, rtype)

    def expired_nodes(self) -> set[str]:
        """The offline nodes whose last figures are older than ``stats_expire`` (PVE: the RRD cache's 5 min)."""
        now = time.monotonic()
        with self.mu:
            for node in self.nodes:
                if node in self.node_offline:
                    self.stats_offline_since.setdefault(node, now)
                else:
                    self.stats_offline_since.pop(node, None)
            return {n for n, t in self.stats_offline_since.items() if now - t >= self.stats_expire}

    # -- VM config changes ---------------------------------------------------------------------------
    def apply_config(self, ctx: TaskContext | None, vm: VMState, params: dict[str, str], *, creating: bool) -> None:
        """Set config keys; allocate volumes for ``STORAGE:SIZE`` drives and ``import-from``."""
        allocated: list[str] = []
        try:
            for key, value in params.items():
                if key in DISK_KEYS_ALL and value:
                    value = self._drive_value(ctx, vm, key, value, allocated)
                elif key == "sshkeys":
                    value = urllib.parse.quote(urllib.parse.unquote(value), safe="")
                vm.config[key] = value
        except BaseException:
            for volid in allocated:
                self.free_volume(vm.node, volid)
            raise

    def _drive_value(self, ctx: TaskContext | None, vm: VMState, key: str, value: str, allocated: list[str]) -> str:
        fmt_schema = schema()["paths"]["/nodes/{node}/qemu"]["POST"]["properties"]
        fmt = fmt_schema["efidisk0" if key == "efidisk0" else "tpmstate0" if key == "tpmstate0" else "virtio[n]"][
            "format"
        ]
        values, _ = parse_property_string(fmt, value)
        file = values.get("file", "")
        sid, _, rest = file.partition(":")
        if rest == "cloudinit":
            volid = self.alloc(
                vm.node,
                sid,
                vm.vmid,
                4 * 1024 * 1024,
                "raw" if not self.storages[sid].file_based else "qcow2",
                name=f"vm-{vm.vmid}-cloudinit" + (".qcow2" if self.storages[sid].file_based else ""),
            )
            allocated.append(volid)
            return f"{volid},media=cdrom"
        if sid in self.storages and is_size(rest):
            source = values.pop("import-from", None)
            size = int(float(rest) * GiB)
            if key == "efidisk0":
                size = 540672 if values.get("efitype") == "4m" else 131072
            if source is not None:
                src_path = self._import_source(vm.node, source)
                info = image_info(src_path)
                size = int(info["virtual-size"])
            volid = self.alloc(vm.node, sid, vm.vmid, size, values.pop("format", None))
            allocated.append(volid)
            if source is not None:
                if ctx:
                    ctx.log(f"importing disk '{source}' to VM {vm.vmid} ...")
                target = self.volume_path(vm.node, volid)
                qemu_img(
                    "convert",
                    "-q",
                    "-O",
                    image_info(target)["format"],
                    str(self._import_source(vm.node, source)),
                    str(target),
                )
                if ctx:
                    ctx.progress("transferred", size, size)
            values["file"] = volid
            values["size"] = fmt_size(size)
            return join_drive(values)
        if file not in ("none", "cdrom") and not file.startswith("/"):
            _st, _ = self.parse_volid(file)
            if not self.volume_path(vm.node, file).exists():
                raise PVEError(500, f"volume '{file}' does not exist")
        return value

    def _import_source(self, node: str, source: str) -> Path:
        path = Path(source) if source.startswith("/") else self.volume_path(node, source)
        if not path.exists():
            raise PVEError(500, f"volume '{source}' does not exist")
        return path

    def destroy_disks(self, vm: VMState) -> None:
        for disk in self._disks(vm).values():
            file = disk.get("file", "")
            if (":" in file and disk.get("media") != "cdrom") or "cloudinit" in file:
                with contextlib.suppress(PVEError):
                    self.free_volume(vm.node, file)

    def vm_disks(self, vm: VMState) -> dict[str, dict[str, str]]:
        return self._disks(vm)


__all__ += ["DISK_KEYS", "DISK_KEYS_ALL", "VMState"]
