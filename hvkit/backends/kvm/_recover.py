"""Restart a VM of a member daemon that died on another member, from its kept definition (``_definitions``).

The VM's host must not answer (else InvalidState: migrate it instead). The kept XML is defined on the
target member and started there; its disks stay where they are, so they must be on storage the target
reaches at the same path (a pool the option ``shared_pools`` names, or a network pool type). Then the
move is recorded: the failed host undefines the domain (by UUID) at the first listing after it answers
again, unless it runs there.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import attrs
import libvirt

from ...errors import AlreadyExists, HvkitError, InvalidSpec, InvalidState, NotFound
from ...models import VM, StoragePool
from . import _definitions, _domxml
from ._cluster import peer_members
from ._session import flag, refresh_pool

if TYPE_CHECKING:
    from .backend import KvmBackend

__all__ = ["recover_vm"]


def _target(backend: KvmBackend, host: str) -> KvmBackend:
    if host in (backend.host_id, backend.host_name):
        return backend
    _, peer = backend.peers.find(host)
    return backend if peer.host_id == backend.host_id else peer


def _reaches(target: KvmBackend, path: str) -> bool:
    """Whether a pool of ``target`` holds ``path`` (its pool refreshed first when the volume is new to it)."""
    if target.volume_at(path) is not None:
        return True
    folder = str(PurePosixPath(path).parent)
    for pool in target.conn.listAllStoragePools(flag("VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE")):
        if ET.fromstring(pool.XMLDesc(0)).findtext("target/path") == folder:
            refresh_pool(pool)
    return target.volume_at(path) is not None


def recover_vm(backend: KvmBackend, vm: VM, host: str) -> VM:
    """Start ``vm`` of a member that does not answer on the member ``host``, from its kept definition."""
    store = _definitions.store_of(backend)
    if store is None:
        raise InvalidSpec(
            "restarting a VM of a failed kvm host needs its kept definition: connect with the option "
            "definitions=DIR (a directory on shared storage) and list the VMs while the host is up"
        )
    if vm.host in (None, backend.host_id) or any(p.host_id == vm.host for p in peer_members(backend)):
        raise InvalidState(f"VM {vm.name!r}: its host {vm.host!r} answers; migrate it instead")
    xml = store.xml(vm.host, vm.id)
    if xml is None:
        raise NotFound(f"VM {vm.name!r}: no kept definition of it from host {vm.host!r}")
    target = _target(backend, host)
    if target.host_id == vm.host:
        raise InvalidSpec(f"VM {vm.name!r}: the target {host!r} is its failed host")
    info = _domxml.parse_domain(xml)
    with target.errors():
        with contextlib.suppress(NotFound):
            found = target.domain(info.uuid)
            if found.isActive():
                raise InvalidState(f"VM {vm.name!r} already runs on {target.host_name}")
            raise AlreadyExists(f"VM {vm.name!r} is defined on {target.host_name} already; start it there")
        with contextlib.suppress(libvirt.libvirtError):
            target.conn.lookupByName(info.name)
            raise AlreadyExists(f"{target.host_name} has another VM named {info.name!r}")
        for dev in info.disks:
            if dev.path and dev.device == "disk" and not _reaches(target, dev.path):
                raise InvalidState(
                    f"VM {vm.name!r}: {target.host_name} has no volume at {dev.path} (its disk is not on "
                    "storage this host reaches at the same path)"
                )
        dom = target.conn.defineXML(xml)
        try:
            dom.create()
        except BaseException:
            with contextlib.suppress(libvirt.libvirtError):  # only what this call defined, by its UUID
                _definitions.undefine(target.conn.lookupByUUIDString(info.uuid))
            raise
    try:
        store.moved(vm.host, info.uuid, target, xml)
    except (OSError, HvkitError) as exc:  # it runs: say what the failed host must not do
        raise InvalidState(
            f"VM {vm.name!r} runs on {target.host_name}, but the move could not be recorded ({exc}): "
            f"undefine it on {vm.host} before that host starts again"
        ) from exc
    with target.errors():
        started = target.session.vm_from_domain(dom)
    return started if target is backend else attrs.evolve(started, extra={**started.extra, "uri": target.uri})


def mark_shared(backend: KvmBackend, pools: list[StoragePool]) -> list[StoragePool]:
    """Pools the option ``shared_pools`` names (NAME,NAME...: the same storage at the same path on every
    member, such as a dir pool on an NFS mount) are listed shared, reached by every host."""
    names = backend.options.option("shared_pools")
    if not names:
        return pools
    wanted = {n.strip() for n in names.split(",")} if isinstance(names, str) else {str(n) for n in names}
    return [attrs.evolve(p, shared=True, host=None) if p.name in wanted else p for p in pools]
