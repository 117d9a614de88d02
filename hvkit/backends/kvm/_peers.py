"""The peers of a kvm connection: other libvirt hosts named by the connection option ``peers`` (see
``_migrate``), connected on first use."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import libvirt

from ...errors import HvkitError, InvalidSpec, NotFound
from ...models import Host
from . import _definitions
from ._errors import translate

if TYPE_CHECKING:
    from .backend import KvmBackend

__all__ = ["PeerSpec", "Peers", "parse_peers"]

_PEER_KEYS = {"uri", "name", "migrate_uri", "disks_uri", "p2p", "dest_uri"}


@attrs.frozen
class PeerSpec:
    """Another libvirt host this connection may migrate VMs to.

    ``uri``: how hvkit reaches the peer. ``migrate_uri`` / ``disks_uri``: where the source QEMU sends
    memory / disk data (``tcp://ADDR[:PORT]`` or ``unix:///PATH``; ``{vm}`` becomes the VM's UUID);
    default: what the peer's libvirtd chooses. ``p2p``: the source libvirtd drives the migration itself,
    connecting to ``dest_uri`` (default ``uri``), which must be valid from the source daemon.
    """

    uri: str
    name: str | None = None
    migrate_uri: str | None = None
    disks_uri: str | None = None
    p2p: bool = False
    dest_uri: str | None = None


def parse_peers(value: object) -> list[PeerSpec]:
    if value is None or value == "":
        return []
    items: list[Any] = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
    specs = []
    for item in items:
        if isinstance(item, PeerSpec):
            specs.append(item)
        elif isinstance(item, Mapping):
            unknown = set(item) - _PEER_KEYS
            if unknown or "uri" not in item:
                raise InvalidSpec(f"a peer needs 'uri' and takes {sorted(_PEER_KEYS)}; got {sorted(item)}")
            fields: dict[str, Any] = {k: (bool(v) if k == "p2p" else v) for k, v in item.items()}
            specs.append(PeerSpec(**fields))
        elif isinstance(item, str) and item.strip():
            text = item.strip()
            head, sep, rest = text.partition("=")
            if sep and "://" not in head:
                specs.append(PeerSpec(uri=rest.strip(), name=head.strip()))
            else:
                specs.append(PeerSpec(uri=text))
        else:
            raise InvalidSpec(f"cannot read the peer {item!r}: give '[NAME=]URI' or a mapping")
    return specs


def _alive(peer: KvmBackend) -> bool:
    try:
        return bool(peer.conn.isAlive())
    except (HvkitError, libvirt.libvirtError):
        return False


class Peers:
    """The peers of one KvmBackend: connected on first use, closed with it."""

    def __init__(self, backend: KvmBackend) -> None:
        self._backend = backend
        self.specs = parse_peers(backend.options.option("peers"))
        self._open: dict[str, KvmBackend] = {}
        self._lock = threading.Lock()

    def backend(self, spec: PeerSpec) -> KvmBackend:
        with self._lock:
            peer = self._open.get(spec.uri)
            if peer is not None and not _alive(peer):  # its daemon went away: connect again (or fail)
                self._open.pop(spec.uri)
                with contextlib.suppress(Exception):
                    peer.close()
                peer = None
            if peer is None:
                opts = dict(self._backend.options.options)
                opts.pop("peers", None)
                opts["uri"] = spec.uri
                opts.setdefault("virt_type", self._backend.virt_type)
                peer = type(self._backend)(attrs.evolve(self._backend.options, options=opts))
                peer.connect()
                self._open[spec.uri] = peer
            return peer

    def hosts(self, local_id: str) -> list[Host]:
        hosts: list[Host] = []
        seen = {local_id}
        for spec in self.specs:
            try:
                with translate():
                    host = self.backend(spec).list_hosts()[0]
            except HvkitError as exc:
                host = self._down_host(spec, exc)
            if host.id in seen:
                continue
            seen.add(host.id)
            hosts.append(attrs.evolve(host, extra={**host.extra, "peer": spec.name or spec.uri}))
        return hosts

    def _down_host(self, spec: PeerSpec, exc: HvkitError) -> Host:
        """A peer that does not answer: known by its kept record (option ``definitions``) when there is one."""
        label = spec.name or spec.uri
        extra = {"uri": spec.uri, "error": str(exc)}
        store = _definitions.store_of(self._backend)
        kept = store.find_member(spec) if store is not None else None
        if kept is not None and kept.get("id"):
            name = str(kept.get("name") or label)
            return Host(str(kept["id"]), name, 0, 0, 0, 0, "kvm", connected=False, extra=extra)
        return Host(label, label, 0, 0, 0, 0, "kvm", connected=False, extra=extra)

    def find(self, host: str) -> tuple[PeerSpec, KvmBackend]:
        for spec in self.specs:
            if host in (spec.name, spec.uri):
                return spec, self.backend(spec)
        for spec in self.specs:
            with contextlib.suppress(HvkitError, libvirt.libvirtError):
                peer = self.backend(spec)
                if host in (peer.host_id, peer.host_name):
                    return spec, peer
        raise NotFound(f"no peer host {host!r} (the connection option 'peers' names the hosts to migrate to)")

    def close(self) -> None:
        with self._lock:
            for peer in self._open.values():
                peer.close()
            self._open.clear()
