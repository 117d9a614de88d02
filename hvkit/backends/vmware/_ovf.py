"""OVF / OVA import through an HttpNfcLease (``VmwareSession.import_ovf``).

The descriptor goes to the OvfManager (``CreateImportSpec``), the resource pool starts the import
(``ImportVApp``), and each disk named in the import spec is streamed to the lease's device URL. A
lease URL may carry ``*`` for its host (ESXi and vcsim do): it is replaced with the host this
connection uses. Any failure aborts the lease, which makes the server remove the half-made VM.
"""

from __future__ import annotations

import contextlib
import tarfile
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from xml.etree import ElementTree

from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

from ...driver import TaskInfo, wait_for
from ...errors import BackendError, InvalidSpec, NotFound
from ...models.enums import TaskState
from ...models.spec import check_name

if TYPE_CHECKING:
    from ._session import VmwareSession

vim: Any = _vim
vmodl: Any = _vmodl

__all__ = ["import_ovf"]


@contextlib.contextmanager
def _package(source: str) -> Iterator[tuple[str, Any]]:
    """(descriptor text, opener(name) -> (stream, size)) for an .ovf file or an .ova archive."""
    path = Path(source)
    if not path.is_file():
        raise InvalidSpec(f"{source} is not a file")
    if path.suffix.lower() == ".ova" or tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            ovf = [n for n in members if n.lower().endswith(".ovf")]
            if not ovf:
                raise InvalidSpec(f"{source} holds no .ovf descriptor")
            reader = tar.extractfile(members[ovf[0]])
            assert reader is not None
            text = reader.read().decode("utf-8")

            def open_ova(name: str) -> tuple[IO[bytes], int]:
                member = members.get(name)
                if member is None:
                    raise InvalidSpec(f"{source} lacks the file {name!r} its descriptor names")
                stream = tar.extractfile(member)
                assert stream is not None
                return stream, member.size

            yield text, open_ova
        return
    text = path.read_text(encoding="utf-8")
    opened: list[IO[bytes]] = []

    def open_file(name: str) -> tuple[IO[bytes], int]:
        target = path.parent / name
        if not target.is_file():
            raise InvalidSpec(f"the OVF names {name!r}, which is not beside it")
        stream = target.open("rb")
        opened.append(stream)
        return stream, target.stat().st_size

    try:
        yield text, open_file
    finally:
        for stream in opened:
            stream.close()


def import_ovf(
    session: VmwareSession, source: str, name: str, *, pool: str | None, network: str | None, host: str | None
) -> str:
    from . import _inventory, _vms

    check_name("VM name", name)
    if any(vm.name == name for vm in _vms.list_vms(session)):
        from ...errors import AlreadyExists

        raise AlreadyExists(f"a VM named {name!r} exists already")
    with _package(source) as (descriptor, opener):
        rpool, host_obj = session.placement(host)
        stores = _inventory.list_pools(session)
        chosen = (
            next((p for p in stores if pool in (p.name, p.id)), None)
            if pool
            else max(stores, key=lambda p: p.free_bytes, default=None)
        )
        if chosen is None:
            raise NotFound(f"no datastore {pool!r}" if pool else "no datastore to import into")
        datastore = session.ref(vim.Datastore, chosen.id)
        params = vim.OvfManager.CreateImportSpecParams(entityName=name, diskProvisioning="thin")
        if network is not None:
            net = next((n for n in _inventory.list_networks(session) if network in (n.name, n.id)), None)
            if net is None:
                raise NotFound(f"no network {network!r}")
            kind = vim.dvs.DistributedVirtualPortgroup if net.type == "dvportgroup" else vim.Network
            params.networkMapping = [
                vim.OvfManager.NetworkMapping(name=n, network=session.ref(kind, net.id)) for n in _networks(descriptor)
            ]
        result = session.content.ovfManager.CreateImportSpec(descriptor, rpool, datastore, params)
        if result.error:
            raise InvalidSpec(
                "the OVF cannot be imported: " + "; ".join(str(e.localizedMessage or e) for e in result.error)
            )
        lease = rpool.ImportVApp(spec=result.importSpec, folder=session.dc_folders["vmFolder"], host=host_obj)
        entity = None
        try:
            _wait_ready(session, lease)
            info = session.pc.read(lease, ["info"])["info"]
            entity = info.entity
            _upload_disks(session, lease, info, result.fileItem or [], opener)
            lease.HttpNfcLeaseComplete()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                lease.HttpNfcLeaseAbort(vmodl.fault.SystemError(reason=str(exc)[:200]))
            if entity is not None:  # vCenter drops the half-made VM on abort; make sure of it
                with contextlib.suppress(Exception):
                    session.wait(entity.Destroy_Task(), "vm.import clean-up", name)
            raise
        if entity is None:
            raise BackendError("the import finished but the server named no VM")
        vm_id: str = entity._moId
        return vm_id


def _networks(descriptor: str) -> list[str]:
    """The network names an OVF's NetworkSection declares."""
    try:
        root = ElementTree.fromstring(descriptor)
    except ElementTree.ParseError as exc:
        raise InvalidSpec(f"the OVF descriptor is not valid XML: {exc}") from None
    names = []
    for element in root.iter():
        if element.tag.endswith("}Network") or element.tag == "Network":
            for key, value in element.attrib.items():
                if key.endswith("}name") or key == "name":
                    names.append(value)
    return names


def _wait_ready(session: VmwareSession, lease: Any) -> None:
    def read() -> TaskInfo:
        props = session.pc.read(lease, ["state", "error"])
        state = str(props.get("state"))
        if state == "error":
            err = props.get("error")
            raise BackendError(f"the import lease failed: {getattr(err, 'localizedMessage', '') or err}")
        return TaskInfo(TaskState.SUCCESS if state == "ready" else TaskState.RUNNING)

    wait_for(read, timeout=session.options.timeout * 4, what="the import lease", max_interval=0.5)


def _fix_host(url: str, host: str, port: int | None) -> str:
    """A lease URL with ``*`` for its host points at the server we connected to (and its port)."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname != "*" and not parts.netloc.startswith("*"):
        return url
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    elif port is not None:
        netloc += f":{port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _upload_disks(session: VmwareSession, lease: Any, info: Any, items: list[Any], opener: Any) -> None:
    by_key = {u.importKey: u for u in info.deviceUrl or []}
    total = sum(int(i.size or 0) for i in items) or 1
    done = 0
    stop = threading.Event()

    def keep_alive() -> None:  # a lease times out unless progress is reported
        while not stop.wait(20):
            with contextlib.suppress(Exception):
                lease.HttpNfcLeaseProgress(min(99, done * 100 // total))

    ticker = threading.Thread(target=keep_alive, daemon=True, name="hvkit-nfc-lease")
    ticker.start()
    try:
        for item in items:
            device = by_key.get(item.deviceId)
            if device is None:
                raise BackendError(f"the lease has no upload URL for {item.path}")
            url = urllib.parse.urlsplit(_fix_host(device.url, session.options.url.host or "", session.options.url.port))
            stream, size = opener(item.path)
            target = url.path + (f"?{url.query}" if url.query else "")
            content_type = (
                "application/x-vnd.vmware-streamVmdk"
                if item.path.lower().endswith(".vmdk")
                else "application/octet-stream"
            )
            session.files.send(
                "PUT" if item.create else "POST",
                target,
                stream,
                size,
                None,
                what=item.path,
                host=url.hostname,
                port=url.port or (443 if url.scheme == "https" else 80),
                scheme=url.scheme,
                content_type=content_type,
            )
            done += size
            lease.HttpNfcLeaseProgress(min(99, done * 100 // total))
    finally:
        stop.set()
