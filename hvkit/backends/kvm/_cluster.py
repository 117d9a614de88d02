"""A kvm connection with ``peers`` acts as one cluster: VMs of every daemon, each call sent to the VM's daemon.

Without the option ``peers`` nothing here changes a call. With it, like a vCenter over its hosts:

* ``hv.vms.list()``: the VMs of this connection's daemon, then those of each reachable peer, read
  with one bulk ``getAllDomainStats`` per daemon (no per-domain round trip); ``vm.host`` is the host
  id of the daemon that holds the VM, and a VM on a peer has ``vm.extra["uri"]`` = the peer's URI.
  An unreachable peer adds no VMs (``hv.hosts.list()`` shows it with ``connected=False``), unless the
  option ``definitions`` keeps copies of the members' domains: then its kept VMs are listed (``_definitions``).
* ``hv.vms.get(ref)``: this daemon first, then the peers in the order of the option (a name that
  exists on two daemons gives this daemon's VM).
* Every operation on one VM (power, reconfigure, clone, delete, snapshots, console, guest IPs,
  serial) goes to the daemon that holds it (found by ``vm.host``); ``vms.metrics`` asks each daemon
  once in bulk for its VMs; ``hosts.metrics`` asks each host's daemon; ``vms.watch`` watches all.
* ``hv.vms.migrate(vm, host=...)`` from any member to any other member: the target's entry in
  ``peers`` says how to reach it (``migrate_uri``, ``disks_uri``, ``p2p``); for moves *to this
  daemon* (a VM coming back from a peer), an entry of ``peers`` whose host is this daemon's host
  (the same ``peers`` list may be given to every connection of the cluster) gives those settings,
  else the move is client-driven with the defaults of this daemon.
* New VMs, pools, volumes and networks are this daemon's: storage pool names, volume keys and paths
  are per daemon and repeat across hosts (``default``, ``/var/lib/libvirt/images/x.qcow2``), so a
  merged list could not be addressed by name or key. A peer's storage is reached by migrating to it
  (``pool=`` names the pool on the target) or through a connection to that peer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import libvirt

from ...errors import HvkitError, NotFound
from ...models import VM, Host, HostMetrics, VMMetrics
from . import _definitions, _migrate, _peers

if TYPE_CHECKING:
    from .backend import KvmBackend

__all__ = ["clustered"]

log = logging.getLogger("hvkit.kvm")
B = TypeVar("B")

# Backend methods whose first argument is one VM: they run on the daemon that holds it.
ROUTED = (
    "delete_vm",
    "start_vm",
    "stop_vm",
    "reboot_vm",
    "pause_vm",
    "resume_vm",
    "suspend_vm",
    "reconfigure_vm",
    "clone_vm",
    "console",
    "guest_ips",
    "read_serial",
    "list_snapshots",
    "create_snapshot",
    "revert_snapshot",
    "delete_snapshot",
)


def _active(backend: KvmBackend) -> bool:
    return bool(backend.peers.specs)


def peer_members(backend: KvmBackend) -> list[KvmBackend]:
    """The connected peers, one per host (an entry naming this daemon's own host is left out)."""
    out: list[KvmBackend] = []
    seen = {backend.host_id}
    for spec in backend.peers.specs:
        try:
            peer = backend.peers.backend(spec)
        except (HvkitError, libvirt.libvirtError) as exc:
            log.warning("kvm peer %s is unreachable: %s", spec.name or spec.uri, exc)
            continue
        if peer.host_id not in seen:
            seen.add(peer.host_id)
            out.append(peer)
    return out


def owner(backend: KvmBackend, vm: VM) -> KvmBackend:
    """The daemon that holds ``vm`` (by ``vm.host``); this one when the host is its own or unknown."""
    if vm.host in (None, backend.host_id) or not _active(backend):
        return backend
    for peer in peer_members(backend):
        if vm.host == peer.host_id:
            return peer
    raise NotFound(f"VM {vm.name!r} is on host {vm.host!r}, which is not this connection's host or a reachable peer")


def _on_peer(peer: KvmBackend, vm: VM) -> VM:
    return attrs.evolve(vm, extra={**vm.extra, "uri": peer.uri})


class _Targets:
    """Migration targets seen from any member: ``find(host)`` -> (how to reach it, its backend)."""

    def __init__(self, backend: KvmBackend) -> None:
        self._backend = backend

    def find(self, host: str) -> tuple[_peers.PeerSpec, KvmBackend]:
        local = self._backend
        if host in (local.host_id, local.host_name):
            return self._local_spec(), local
        spec, peer = local.peers.find(host)
        if peer.host_id == local.host_id:
            return spec, local
        return spec, peer

    def _local_spec(self) -> _peers.PeerSpec:
        local = self._backend
        for spec in local.peers.specs:
            with contextlib.suppress(HvkitError, libvirt.libvirtError):
                if local.peers.backend(spec).host_id == local.host_id:
                    return spec
        return _peers.PeerSpec(uri=local.uri)


# -- the wrappers ------------------------------------------------------------------------------------------
def _route(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def routed(self: KvmBackend, vm: VM, *args: Any, **kwargs: Any) -> Any:
        where = owner(self, vm)
        if where is self:
            return method(self, vm, *args, **kwargs)
        return getattr(where, name)(vm, *args, **kwargs)

    return routed


def _list_vms(method: Callable[[KvmBackend, bool], list[VM]]) -> Callable[[KvmBackend, bool], list[VM]]:
    @functools.wraps(method)
    def list_vms(self: KvmBackend, detail: bool = False) -> list[VM]:
        result = method(self, detail)
        store = _definitions.store_of(self)
        if store is not None:
            result = store.keep(self, result)
        if _active(self):
            seen = {self.host_id}
            down: list[_peers.PeerSpec] = []
            for spec in self.peers.specs:
                try:
                    peer = self.peers.backend(spec)
                    if peer.host_id in seen:
                        continue
                    vms = peer.list_vms(detail)
                    if store is not None:  # the peer kept its own definitions while listing
                        store.alias(peer, spec)
                except (HvkitError, libvirt.libvirtError) as exc:
                    log.warning("cannot list the VMs of kvm peer %s: %s", spec.name or spec.uri, exc)
                    down.append(spec)
                    continue
                seen.add(peer.host_id)
                result.extend(_on_peer(peer, vm) for vm in vms)
            if store is not None:
                result.extend(_kept_vms(store, down, seen))
        return result

    return list_vms


def _kept_vms(store: _definitions.Store, down: list[_peers.PeerSpec], seen: set[str]) -> list[VM]:
    """The kept VMs of the peers in ``down`` (daemons that do not answer), once per host."""
    out: list[VM] = []
    for spec in down:
        data = store.find_member(spec)
        if data is not None and data.get("id") not in seen:
            seen.add(str(data.get("id")))
            out.extend(store.vms(data, spec.uri))
    return out


def _down_peers(backend: KvmBackend) -> list[_peers.PeerSpec]:
    down = []
    for spec in backend.peers.specs:
        try:
            backend.peers.backend(spec)
        except (HvkitError, libvirt.libvirtError):
            down.append(spec)
    return down


def _get_vm(method: Callable[[KvmBackend, str], VM]) -> Callable[[KvmBackend, str], VM]:
    @functools.wraps(method)
    def get_vm(self: KvmBackend, ref: str) -> VM:
        try:
            return method(self, ref)
        except NotFound:
            if not _active(self):
                raise
        for peer in peer_members(self):
            with contextlib.suppress(NotFound):
                return _on_peer(peer, peer.get_vm(ref))
        store = _definitions.store_of(self)
        if store is not None:  # a VM of a daemon that does not answer, from its kept definition
            for vm in _kept_vms(store, _down_peers(self), {self.host_id}):
                if ref in (vm.id, vm.name):
                    return vm
        raise NotFound(f"no VM {ref!r} on {self.uri} or its peers")

    return get_vm


def _migrate_vm(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def migrate_vm(self: KvmBackend, vm: VM, host: str | None, pool: str | None, live: bool) -> Any:
        source = owner(self, vm)
        if source is self:
            return method(self, vm, host, pool, live)
        if host is None or host in (source.host_id, source.host_name):
            return source.migrate_vm(vm, None, pool, live)  # disks to another pool of the peer
        return _migrate.migrate_to_host(source, _Targets(self), vm, host, pool, live)  # type: ignore[arg-type]

    return migrate_vm


def _vm_metrics(method: Callable[[KvmBackend, list[VM]], list[VMMetrics]]) -> Callable[..., list[VMMetrics]]:
    @functools.wraps(method)
    def vm_metrics(self: KvmBackend, vms: list[VM]) -> list[VMMetrics]:
        groups: dict[int, tuple[KvmBackend, list[VM]]] = {}
        by_id: dict[str, VMMetrics] = {}
        for vm in vms:
            if vm.extra.get("kept"):  # a VM of a daemon that does not answer: nothing measured
                by_id[vm.id] = VMMetrics(vm=vm.id, timestamp=dt.datetime.now(dt.UTC))
                continue
            where = owner(self, vm)
            groups.setdefault(id(where), (where, []))[1].append(vm)
        for where, mine in groups.values():
            got = method(self, mine) if where is self else where.vm_metrics(mine)
            by_id.update((m.vm, m) for m in got)
        return [by_id[vm.id] for vm in vms]

    return vm_metrics


def _host_metrics(method: Callable[[KvmBackend, list[Host]], list[HostMetrics]]) -> Callable[..., list[HostMetrics]]:
    @functools.wraps(method)
    def host_metrics(self: KvmBackend, hosts: list[Host]) -> list[HostMetrics]:
        if not _active(self):
            return method(self, hosts)
        peers = {p.host_id: p for p in peer_members(self)}
        out = []
        for h in hosts:
            if h.id == self.host_id:
                out.extend(method(self, [h]))
            elif h.id in peers:
                out.extend(peers[h.id].host_metrics([h]))
            else:  # an unreachable peer: nothing measured
                out.append(HostMetrics(host=h.id, timestamp=dt.datetime.now(dt.UTC)))
        return out

    return host_metrics


def _subscribe(method: Callable[..., Callable[[], None]]) -> Callable[..., Callable[[], None]]:
    @functools.wraps(method)
    def subscribe(self: KvmBackend, callback: Callable[[Any], None]) -> Callable[[], None]:
        stops = [method(self, callback)]
        if _active(self):
            stops.extend(peer.subscribe(callback) for peer in peer_members(self))

        def stop() -> None:
            for each in stops:
                each()

        return stop

    return subscribe


def clustered(cls: type[B]) -> type[B]:
    """Class decorator for KvmBackend: route VM calls across the connection's peers (see the module doc)."""
    for name in ROUTED:
        setattr(cls, name, _route(name, getattr(cls, name)))
    special: dict[str, Callable[[Any], Callable[..., Any]]] = {
        "list_vms": _list_vms,
        "get_vm": _get_vm,
        "migrate_vm": _migrate_vm,
        "vm_metrics": _vm_metrics,
        "host_metrics": _host_metrics,
        "subscribe": _subscribe,
    }
    for name, wrap in special.items():
        setattr(cls, name, wrap(getattr(cls, name)))
    return cls
