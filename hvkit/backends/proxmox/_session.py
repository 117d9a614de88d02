"""The Proxmox connection: the API client, lock retries, lookups, task following and error translation;
what the area modules take instead of the backend."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import urllib.parse
from collections.abc import Callable
from typing import IO, Any, TypeVar

import requests  # noqa: F401 - imported before proxmoxer, whose https module calls sys.exit without it
from proxmoxer import ProxmoxAPI

from ...driver import ConnectOptions, ProgressFn, Task, TaskInfo, ThreadSource, install_redaction
from ...errors import AlreadyExists, HvkitError, InvalidSpec
from ...models import (
    VM,
    DiskBus,
    GuestOS,
)
from ...models.enums import TaskState
from . import _names
from ._errors import from_message, translate
from ._locks import KeyedLocks, lock_retry, retry_locked

__all__ = ["ProxmoxSession"]

log = logging.getLogger("hvkit.proxmox")
T = TypeVar("T")
MiB = 1024 * 1024
GiB = 1024 * MiB
CLAIM_WAIT = 600.0  # seconds an undo waits for the task it undoes, and for its delete
PENDING_WAIT = 30.0  # seconds a finished create or clone waits for older ones still being made (name not known yet)
DISK_KEY = re.compile(r"^(ide|sata|scsi|virtio)(\d+)$")
PERCENT = re.compile(r"\((\d+(?:\.\d+)?)%\)")
FILE_STORAGES = {"dir", "nfs", "cifs", "glusterfs", "cephfs", "btrfs"}
BUS_LIMIT = {DiskBus.VIRTIO: 16, DiskBus.SCSI: 31, DiskBus.SATA: 6, DiskBus.IDE: 4}
OSTYPE = {GuestOS.LINUX: "l26", GuestOS.WINDOWS: "win11", GuestOS.BSD: "other", GuestOS.OTHER: "other"}


def guest_os(ostype: str | None) -> GuestOS | None:
    if ostype is None:
        return None
    if ostype in ("l24", "l26"):
        return GuestOS.LINUX
    if ostype.startswith("w"):
        return GuestOS.WINDOWS
    return GuestOS.OTHER


class ProxmoxTaskSource:
    """Follows one UPID: state from ``tasks/{upid}/status``, progress from the task log's last ``(NN%)``."""

    def __init__(self, backend: ProxmoxSession, node: str, upid: str, result: Any, what: str) -> None:
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
                    found = PERCENT.search(str(line.get("t", "")))
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


def retrying(
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


class ProxmoxSession:
    """One connection to a Proxmox VE cluster: what every area function takes instead of the backend."""

    kind = "proxmox"

    def __init__(self, options: ConnectOptions) -> None:
        self.options = options
        self._api: Any = None
        self._version = ""
        self.vm_locks = KeyedLocks()
        self.lock_retries = options.int_option("lock_retries", 8, low=1, high=100)

    def retry(self, fn: Callable[[], T], what: str) -> T:
        """Call ``fn``, retrying Proxmox lock errors with backoff (option ``lock_retries``, default 8)."""
        return retry_locked(fn, what, attempts=self.lock_retries)

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

    def follow_task(self, node: str, upid: str, operation: str, target: str, result: Any = None) -> Task:
        """A Task following PVE task ``upid`` on ``node`` (public: the disk helpers in _disks use it)."""
        return Task(
            id=upid,
            operation=operation,
            target=target,
            source=ProxmoxTaskSource(self, node, upid, result, f"{operation} on {target}"),
        )

    def qemu(self, vm: VM) -> Any:
        return self.api.nodes(vm.host).qemu(vm.id)

    def resources(self, kind: str) -> list[dict[str, Any]]:
        with translate():
            return list(self.api.cluster.resources.get(type=kind))

    def nextid(self) -> int:
        with translate():
            return int(self.api.cluster.nextid.get())

    def vendor_vm_name(self, name: str) -> str:
        """The DNS name a VM named ``name`` gets; AlreadyExists when another VM's name maps to it too
        (PVE itself would take duplicate names)."""
        from . import _vms  # the area reads a listing entry as a VM

        vendor_name = _names.vm_name(name)
        for entry in self.resources("vm"):
            if entry.get("type") == "qemu" and str(entry.get("name", "")) == vendor_name:
                other = _vms.vm_from_resource(self, entry).name
                raise AlreadyExists(
                    f"VM name {name!r} becomes the Proxmox name {vendor_name!r}, which VM {other!r} "
                    f"(vmid {entry['vmid']}) has already"
                )
        return vendor_name

    def pick_node(self) -> str:
        nodes = [e for e in self.resources("node") if e.get("status") == "online"]
        if not nodes:
            raise HvkitError("no Proxmox node is online")
        return str(max(nodes, key=lambda e: int(e.get("maxmem", 0)) - int(e.get("mem", 0)))["node"])

    def storage_types(self, node: str) -> dict[str, dict[str, Any]]:
        with translate():
            return {s["storage"]: s for s in self.api.nodes(node).storage.get()}

    def post_status(self, vm: VM, action: str, operation: str, **params: Any) -> Task:
        def call() -> str:
            with translate():
                return str(self.qemu(vm).status(action).post(**params))

        upid = self.retry(call, f"{operation} {vm.name}")
        return self.follow_task(str(vm.host), upid, operation, vm.name, vm.id)


class NamedStream(io.RawIOBase):
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
