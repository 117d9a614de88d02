"""libvirt clones (full and linked, on qcow2 overlays) and migration (to a peer host or another pool)."""

from __future__ import annotations

import uuid as uuidlib
import xml.etree.ElementTree as ET
from typing import Any

import libvirt

from ...driver import Rollback
from ...errors import InvalidSpec, InvalidState, Unsupported
from ...models import (
    VM,
    DiskFormat,
)
from . import _bases, _domxml, _migrate, _overlays
from ._session import (
    EXT,
    KvmSession,
    clone_lock,
    deleter,
    set_text,
    volume_format,
)


def clone_vm(session: KvmSession, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> VM:
    """Full or linked clone. Linked clones of one source run one at a time in this process (each gives
    the source a new overlay), so concurrent ``wait=False`` clones of a template are safe."""
    if not linked:
        return _clone_vm(session, vm, name, linked, host, pool)
    with clone_lock(session._uri, vm.id):
        return _clone_vm(session, vm, name, linked, host, pool)


def _clone_vm(session: KvmSession, vm: VM, name: str, linked: bool, host: str | None, pool: str | None) -> VM:
    if host is not None and host not in (session._host_id, session._host_name):
        raise InvalidSpec(
            f"the kvm backend clones on the source's host only ({session._host_name}); migrate the clone after"
        )
    src = session.domain(vm)
    running = bool(src.isActive())
    if src.hasManagedSaveImage(0) or (running and not linked):
        raise InvalidState(
            f"cannot clone VM {vm.name!r}: it is {vm.power_state.value}; stop it first"
            + ("" if src.hasManagedSaveImage(0) else " (or make a linked clone, which a running VM gives)")
        )
    if running and pool is not None:
        raise InvalidSpec("a linked clone of a running VM stays on its source's pools; stop it to pass pool")
    target_pool = session.conn.storagePoolLookupByName(pool) if pool is not None else None
    root = ET.fromstring(src.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
    _bases.forget_bases(root)  # the source's bases stay the source's
    # a running source moves onto new overlays first (live): the images the clone links to are then frozen
    # (on a failure later the source simply stays on its overlays, whose content is the same)
    if running:
        _overlays.freeze_running(session.conn, src, vm.name, lambda _undo, _what: None)

    new_uuid = str(uuidlib.uuid4())
    set_text(root, "name", name)
    set_text(root, "uuid", new_uuid)
    for iface in root.findall("devices/interface"):
        for mac in iface.findall("mac"):
            iface.remove(mac)
        for tap in iface.findall("target"):
            iface.remove(tap)
    for graphics in root.findall("devices/graphics"):
        if graphics.get("autoport") == "yes":
            graphics.attrib.pop("port", None)
    log_el = root.find("devices/serial/log")
    new_log = session.serial_log(new_uuid)
    if log_el is not None and new_log:
        log_el.set("file", new_log)
    seed_el = root.find(f"metadata/{{{_domxml.NS}}}vm/{{{_domxml.NS}}}seed")
    source_rebase: list[tuple[ET.Element, str]] = []
    with Rollback() as undo:
        for disk in root.findall("devices/disk"):
            source = disk.find("source")
            if source is None:
                continue
            path = source.get("file") or source.get("dev")
            if not path:
                continue
            vol = session.vol(path)
            vol_pool = target_pool or vol.storagePoolLookupByVolume()
            fmt = volume_format(vol) or DiskFormat.RAW
            target = disk.find("target")
            dev = target.get("dev", "disk") if target is not None else "disk"
            capacity = vol.info()[1]
            if seed_el is not None and seed_el.text == path:
                new_vol = vol_pool.createXMLFrom(_domxml.volume_xml(f"{name}-seed.iso", capacity, fmt), vol, 0)
                undo.push(deleter(new_vol), "delete the clone's seed")
                new_fmt = fmt
            elif linked and disk.get("device", "disk") == "disk":
                new_name = f"{name}-{dev}.qcow2"
                new_vol = vol_pool.createXML(_domxml.volume_xml(new_name, capacity, DiskFormat.QCOW2, (path, fmt)), 0)
                undo.push(deleter(new_vol), f"delete volume {new_name}")
                source_rebase.append((disk, path))
                new_fmt = DiskFormat.QCOW2
            else:
                new_name = f"{name}-{dev}{EXT.get(fmt, '.' + fmt.value)}"
                new_vol = vol_pool.createXMLFrom(_domxml.volume_xml(new_name, capacity, fmt), vol, 0)
                undo.push(deleter(new_vol), f"delete volume {new_name}")
                new_fmt = fmt
            new_path = new_vol.path()
            source.attrib.pop("file", None)
            source.attrib.pop("dev", None)
            source.set("file" if session.disk_kind(new_vol) == "file" else "dev", new_path)
            driver = disk.find("driver")
            if driver is not None:
                driver.set("type", new_fmt.value)
            for store in disk.findall("backingStore"):
                disk.remove(store)
            if seed_el is not None and seed_el.text == path:
                seed_el.text = new_path
        dom = session.conn.defineXML(ET.tostring(root, encoding="unicode"))
        undo.push(dom.undefine, f"undefine {name}")
        if source_rebase and not running:
            _rebase_source(session, src, vm.name, source_rebase, undo)
        elif source_rebase:  # it is on its new overlays already: its former images are now its bases
            src_root = ET.fromstring(src.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
            _bases.record_bases(src_root, [path for _, path in source_rebase])
            session.conn.defineXML(ET.tostring(src_root, encoding="unicode"))
        return session.vm_from_domain(dom)


def _rebase_source(
    session: KvmSession, src: libvirt.virDomain, src_name: str, disks: list[tuple[ET.Element, str]], undo: Rollback
) -> None:
    """After a linked clone: give the source its own overlay, so the shared base never changes again."""
    root = ET.fromstring(src.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
    original = ET.tostring(root, encoding="unicode")
    base_paths = {path for _, path in disks}
    token = uuidlib.uuid4().hex[:8]
    for disk in root.findall("devices/disk"):
        source = disk.find("source")
        path = source.get("file") if source is not None else None
        if source is None or path not in base_paths or path is None:
            continue
        vol = session.vol(path)
        fmt = volume_format(vol) or DiskFormat.RAW
        target = disk.find("target")
        dev = target.get("dev", "disk") if target is not None else "disk"
        pool = vol.storagePoolLookupByVolume()
        overlay = pool.createXML(
            _domxml.volume_xml(f"{src_name}-{dev}-{token}.qcow2", vol.info()[1], DiskFormat.QCOW2, (path, fmt)), 0
        )
        undo.push(deleter(overlay), "delete the source's new overlay")
        source.set("file", overlay.path())
        driver = disk.find("driver")
        if driver is not None:
            driver.set("type", "qcow2")
        for store in disk.findall("backingStore"):
            disk.remove(store)
    _bases.record_bases(root, base_paths)  # its former images, now the clones' bases, stay its own
    session.conn.defineXML(ET.tostring(root, encoding="unicode"))
    undo.push(lambda: session.conn.defineXML(original), "restore the source's disks")


def migrate_vm(session: KvmSession, vm: VM, host: str | None, pool: str | None, live: bool) -> Any:
    """To a peer host (live, disks copied unless shared) and/or disks to another pool: see ``_migrate``."""
    if session.driver == "test":
        raise Unsupported(session.kind, "vms.migrate", "libvirt's test driver does not migrate")
    if host is not None and host not in (session._host_id, session._host_name):
        return _migrate.migrate_to_host(session.backend, session.peers, vm, host, pool, live)
    if pool is None:
        raise InvalidSpec(f"VM {vm.name!r} is on host {session._host_name!r} already")
    return _migrate.migrate_storage(session.backend, vm, pool, live)
