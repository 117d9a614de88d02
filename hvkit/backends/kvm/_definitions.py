"""Kept domain definitions: a copy of each member daemon's persistent domain XML in a directory every
machine that runs hvkit for the cluster reaches (connection option ``definitions=DIR``, on shared storage),
so the VMs of a daemon that died can be listed and started on another member (see ``_recover``).

Layout, one directory per member host (its libvirt host UUID)::

    DIR/<host id>/member.json    host name, URIs and names it is known by, and per VM: name, fingerprint,
                                 last seen power state, the pool of each disk path
    DIR/<host id>/<vm uuid>.xml  the domain's persistent (inactive) XML
    DIR/<host id>/moved.json     VMs restarted elsewhere after this host failed: undefined here (by UUID)
                                 when this host answers again and the domain is not running

Kept while listing: per reachable member, one ``listAllDomains(PERSISTENT)`` call and one read of
``member.json``; a domain's XML (and its disks' pools) is read again only when it is new, or its name,
vCPUs, memory or disk paths in the bulk listing differ from the kept ones, or this connection changed it
(:func:`touched`). Files are written only for what changed, each replaced atomically.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import libvirt

from ...errors import HvkitError, InvalidSpec
from ...models import VM, Disk, Nic, PowerState
from . import _domxml

if TYPE_CHECKING:
    from ._peers import PeerSpec
    from .backend import KvmBackend

__all__ = ["Store", "store_of", "touched", "undefine"]

log = logging.getLogger("hvkit.kvm")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_KEPT_STATES = {PowerState.STOPPED.value, PowerState.SUSPENDED.value}  # what a dead member's VM still is
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def flag(name: str) -> int:
    value: int = getattr(libvirt, name, 0)
    return value


def undefine(dom: libvirt.virDomain) -> None:
    """Undefine ``dom``, keeping its NVRAM file (which may be on storage the host it moved to uses)."""
    from ._session import undefine as undefine_domain  # not at import: the session module imports this one

    undefine_domain(dom, keep_nvram=True)


def _identify(data: dict[str, Any], member: KvmBackend, alias: PeerSpec | None) -> None:
    """Set the member's host id and name, and the names and URIs it is known by, in its record ``data``."""
    names = set(data.get("names", [])) | {member.host_name}
    uris = set(data.get("uris", [])) | {member.uri}
    if alias is not None:
        uris.add(alias.uri)
        if alias.name:
            names.add(alias.name)
    data.update(id=member.host_id, name=member.host_name, names=sorted(names), uris=sorted(uris))


def _name(text: str, what: str) -> str:
    if not _SAFE.match(text):
        raise InvalidSpec(f"cannot keep definitions for {what} {text!r}: not a plain file name")
    return text


def _write(path: Path, text: str) -> None:
    """Replace ``path`` atomically (another reader sees the old or the new file, never half of one)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("kept definitions: cannot read %s: %s", path.name, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _fingerprint(vm: VM) -> list[Any]:
    return [vm.name, vm.cpus, vm.memory_mib, sorted(d.path or "" for d in vm.disks)]


def store_of(backend: KvmBackend) -> Store | None:
    """The store the connection option ``definitions`` names, or None without it."""
    root = backend.options.option("definitions")
    if not root:
        return None
    path = Path(str(root))
    if not path.is_dir():
        raise InvalidSpec(f"the kvm option definitions names {str(root)!r}, which is not a directory")
    return Store(path)


def touched(backend: KvmBackend, vm_id: str) -> None:
    """This connection made, changed, started, stopped or removed the domain ``vm_id`` of ``backend``'s daemon:
    keep its definition and state now (a VM started since the last listing is restarted after a failure).
    A failure here is logged, never raised: the change itself is done."""
    store = store_of(backend)
    if store is None:
        return
    try:
        store.keep_one(backend, vm_id)
    except (OSError, libvirt.libvirtError, HvkitError) as exc:
        log.warning("kept definitions: cannot keep VM %s: %s", vm_id, exc)


class Store:
    """The kept definitions under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def dir(self, host_id: str) -> Path:
        return self.root / _name(host_id, "host")

    def lock(self, host_id: str) -> threading.Lock:
        with _locks_guard:
            return _locks.setdefault(f"{self.root}/{host_id}", threading.Lock())

    def member(self, host_id: str) -> dict[str, Any]:
        return _read_json(self.dir(host_id) / "member.json")

    def save(self, host_id: str, data: dict[str, Any]) -> None:
        folder = self.dir(host_id)
        folder.mkdir(mode=0o700, exist_ok=True)
        _write(folder / "member.json", json.dumps(data, indent=1, sort_keys=True))

    def xml(self, host_id: str, uuid: str) -> str | None:
        try:
            return (self.dir(host_id) / f"{_name(uuid, 'VM')}.xml").read_text()
        except FileNotFoundError:
            return None

    # -- keeping, while a member answers ---------------------------------------------------------------------
    def keep(self, member: KvmBackend, vms: list[VM], alias: PeerSpec | None = None) -> list[VM]:
        """Bring the kept definitions of ``member`` (which answers) up to date with its listing ``vms``;
        undefine the VMs restarted elsewhere while it was down. Return ``vms`` without those."""
        host_id = member.host_id
        with self.lock(host_id):
            folder = self.dir(host_id)
            folder.mkdir(mode=0o700, exist_ok=True)
            gone = self._undefine_moved(member)
            vms = [vm for vm in vms if vm.id not in gone]
            data = self.member(host_id)
            before = json.dumps(data, sort_keys=True)
            _identify(data, member, alias)
            kept: dict[str, Any] = data.setdefault("vms", {})
            with member.errors():
                persistent = {
                    d.UUIDString(): d for d in member.conn.listAllDomains(flag("VIR_CONNECT_LIST_DOMAINS_PERSISTENT"))
                }
            listed = {vm.id: vm for vm in vms if vm.id in persistent}
            for uuid in [u for u in kept if u not in listed]:
                del kept[uuid]
                with contextlib.suppress(OSError):
                    (folder / f"{_name(uuid, 'VM')}.xml").unlink()
            for uuid, vm in listed.items():
                entry = kept.get(uuid)
                fp = _fingerprint(vm)
                if entry is None or entry.get("fingerprint") != fp or not (folder / f"{uuid}.xml").exists():
                    try:
                        entry = self._read_domain(member, persistent[uuid], folder, fp)
                    except libvirt.libvirtError as exc:  # removed meanwhile: the next listing sees it gone
                        log.info("kept definitions: cannot read domain %s: %s", uuid, exc)
                        continue
                    kept[uuid] = entry
                entry["state"] = vm.power_state.value
            if json.dumps(data, sort_keys=True) != before:
                self.save(host_id, data)
        return vms

    def keep_one(self, member: KvmBackend, uuid: str) -> None:
        """Keep the domain ``uuid`` of ``member`` as it is now (or forget it when it is gone or transient)."""
        from ._session import power_state  # not at import: the session module imports the peers, and they this

        with self.lock(member.host_id):
            folder = self.dir(member.host_id)
            folder.mkdir(mode=0o700, exist_ok=True)
            data = self.member(member.host_id)
            _identify(data, member, None)
            kept: dict[str, Any] = data.setdefault("vms", {})
            try:
                dom = member.conn.lookupByUUIDString(uuid)
                persistent = bool(dom.isPersistent())
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
                persistent = False
            if not persistent:
                kept.pop(uuid, None)
                with contextlib.suppress(OSError):
                    (folder / f"{_name(uuid, 'VM')}.xml").unlink()
            else:
                state, reason = dom.state(0)
                saved = state == libvirt.VIR_DOMAIN_SHUTOFF and bool(dom.hasManagedSaveImage(0))
                entry = self._read_domain(member, dom, folder, None)  # the next listing sets its fingerprint
                entry["state"] = power_state(state, reason, saved).value
                kept[uuid] = entry
            self.save(member.host_id, data)

    def alias(self, member: KvmBackend, spec: PeerSpec) -> None:
        """Remember the URI and name a ``peers`` entry gives ``member`` (to find its record when it is down)."""
        with self.lock(member.host_id):
            data = self.member(member.host_id)
            uris, names = set(data.get("uris", [])), set(data.get("names", []))
            if spec.uri in uris and (not spec.name or spec.name in names):
                return
            uris.add(spec.uri)
            if spec.name:
                names.add(spec.name)
            data.update(uris=sorted(uris), names=sorted(names))
            self.save(member.host_id, data)

    def _read_domain(
        self, member: KvmBackend, dom: libvirt.virDomain, folder: Path, fp: list[Any] | None
    ) -> dict[str, Any]:
        # with its secrets (a VNC password), as libvirt keeps it in its own root-only files: a VM restarted
        # without its password would offer an open console
        xml = dom.XMLDesc(flag("VIR_DOMAIN_XML_INACTIVE") | flag("VIR_DOMAIN_XML_SECURE"))
        info = _domxml.parse_domain(xml)
        pools: dict[str, str] = {}
        for dev in info.disks:
            if dev.device == "disk" and dev.path:
                vol = member.volume_at(dev.path)
                if vol is not None:
                    pools[dev.path] = vol.storagePoolLookupByVolume().name()
        _write(folder / f"{_name(info.uuid, 'VM')}.xml", xml)
        return {"name": info.name, "fingerprint": fp, "pools": pools}

    def _undefine_moved(self, member: KvmBackend) -> set[str]:
        """Undefine, by UUID, this member's domains that were restarted elsewhere while it was down; a
        running one is left running (it never was down: both copies write the same disks) and logged."""
        path = self.dir(member.host_id) / "moved.json"
        moved = _read_json(path)
        if not moved:
            return set()
        before = len(moved)
        done: set[str] = set()
        for uuid, where in list(moved.items()):
            try:
                dom = member.conn.lookupByUUIDString(uuid)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    log.warning("kept definitions: cannot look up moved domain %s: %s", uuid, exc)
                    continue
                del moved[uuid]
                continue
            try:
                if dom.isActive():
                    log.error(
                        "VM %s was restarted on host %s after host %s failed, yet it runs on %s too; "
                        "hvkit leaves it: stop one copy now",
                        uuid,
                        where.get("to"),
                        member.host_name,
                        member.host_name,
                    )
                    continue  # listed on both hosts, as it runs
                undefine(dom)
            except libvirt.libvirtError as exc:
                log.warning("kept definitions: cannot undefine moved domain %s: %s", uuid, exc)
                continue
            log.info("undefined VM %s on %s: it was restarted on host %s", uuid, member.host_name, where.get("to"))
            done.add(uuid)
            del moved[uuid]
        if done or len(moved) != before:
            _write(path, json.dumps(moved, indent=1, sort_keys=True))
        return done

    # -- reading, while a member is down ---------------------------------------------------------------------
    def find_member(self, spec: PeerSpec) -> dict[str, Any] | None:
        """The kept record of the member that ``spec`` (a peer that does not answer) names."""
        with contextlib.suppress(OSError):
            for folder in sorted(self.root.iterdir()):
                if not folder.is_dir() or not _SAFE.match(folder.name):
                    continue
                data = self.member(folder.name)
                if spec.uri in data.get("uris", []) or (spec.name and spec.name in data.get("names", [])):
                    return data
        return None

    def vms(self, data: dict[str, Any], uri: str) -> list[VM]:
        """The kept VMs of a member that does not answer: power state unknown (stopped or suspended if they
        were so at the last listing), host = that member."""
        out = []
        host_id = str(data.get("id", ""))
        for uuid, entry in sorted(data.get("vms", {}).items()):
            xml = self.xml(host_id, uuid)
            if xml is None:
                continue
            try:
                info = _domxml.parse_domain(xml)
            except Exception as exc:  # a damaged copy: listed without it, and said
                log.warning("kept definitions: cannot parse %s/%s.xml: %s", host_id, uuid, exc)
                continue
            pools = entry.get("pools", {})
            state = entry.get("state")
            power = PowerState(state) if state in _KEPT_STATES else PowerState.UNKNOWN
            disks = [
                Disk(d.target, 0, d.format, d.bus, pools.get(d.path), None, d.path or None)
                for d in info.disks
                if d.device == "disk"
            ]
            nics = [Nic(mac=n.mac or "", network=n.network, model=n.model) for n in info.nics]
            out.append(
                VM(
                    id=info.uuid,
                    name=info.name,
                    power_state=power,
                    cpus=info.cpus,
                    memory_mib=info.memory_kib // 1024,
                    uuid=info.uuid,
                    disks=disks,
                    nics=nics,
                    host=host_id,
                    firmware=info.firmware,
                    guest_os=info.guest_os,
                    notes=info.notes,
                    tags=info.tags,
                    extra={"detail": True, "kept": True, "uri": uri, "last_state": state},
                )
            )
        return out

    def moved(self, source: str, uuid: str, target: KvmBackend, xml: str) -> None:
        """Record that ``uuid`` of the failed host ``source`` now runs on ``target``: its kept copy moves
        there, and ``source`` undefines it when it answers again."""
        with self.lock(source):
            folder = self.dir(source)
            path = folder / "moved.json"
            moved = _read_json(path)
            moved[uuid] = {"to": target.host_id}
            _write(path, json.dumps(moved, indent=1, sort_keys=True))
            data = self.member(source)
            entry = data.get("vms", {}).pop(uuid, None)
            self.save(source, data)
            with contextlib.suppress(OSError):
                (folder / f"{_name(uuid, 'VM')}.xml").unlink()
        with self.lock(target.host_id):
            tfolder = self.dir(target.host_id)
            tfolder.mkdir(mode=0o700, exist_ok=True)
            _write(tfolder / f"{uuid}.xml", xml)
            tdata = self.member(target.host_id)
            if entry is not None:
                entry["fingerprint"] = None  # read again at the target's next listing
                entry["state"] = PowerState.RUNNING.value
                tdata.setdefault("vms", {})[uuid] = entry
                self.save(target.host_id, tdata)
