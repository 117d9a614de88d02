"""libvirt VMs: list (one bulk stats call), create from domain XML, delete, power, reconfigure."""

from __future__ import annotations

import contextlib
import functools
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET

import libvirt

from ...driver import Rollback, TaskInfo, wait_for
from ...errors import AlreadyExists, InvalidSpec, InvalidState, NotFound, Timeout
from ...models import (
    VM,
    DiskBus,
    DiskFormat,
    Firmware,
    VMSpec,
)
from ...models.enums import TaskState
from . import _bases, _cloudinit, _domxml, _streams
from ._session import (
    EXT,
    SHUTDOWN_REPEAT,
    KvmSession,
    deleter,
    flag,
    undefine,
    volume_format,
)


def list_vms(session: KvmSession, detail: bool = False) -> list[VM]:
    """Every domain from one bulk getAllDomainStats call (plus one call for managed-save images).

    Name, UUID, power state, CPUs, memory and disks come from the bulk call; notes, tags and NICs
    need each domain's XML, read with ``detail=True`` or ``hv.vms.get()`` (``vm.extra["detail"]`` says which).
    """
    if detail:
        return [vm for dom in session.conn.listAllDomains(0) if (vm := _detailed(session, dom)) is not None]

    stats = (
        libvirt.VIR_DOMAIN_STATS_STATE
        | libvirt.VIR_DOMAIN_STATS_VCPU
        | libvirt.VIR_DOMAIN_STATS_BALLOON
        | libvirt.VIR_DOMAIN_STATS_BLOCK
    )
    records = session.conn.getAllDomainStats(stats, 0)
    saved = {d.UUIDString() for d in session.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE)}
    # VMs are immutable values: one whose stats did not change since the last listing is reused
    previous, cache = session.list_cache, {}
    result = []
    for dom, st in records:
        uuid = dom.UUIDString()
        is_saved = uuid in saved
        hit = previous.get(uuid)
        vm = (
            hit[2]
            if hit is not None and hit[0] == st and hit[1] == is_saved and "vcpu.current" in st
            else session.vm_from_stats(dom, uuid, st, is_saved)
        )
        cache[uuid] = (st, is_saved, vm)
        result.append(vm)
    session.list_cache = cache
    return result


def _detailed(session: KvmSession, dom: libvirt.virDomain) -> VM | None:
    """``dom`` read in full, or None when another client removed it (or a volume it names) meanwhile."""
    for attempt in range(2):
        try:
            return session.vm_from_domain(dom)
        except (libvirt.libvirtError, NotFound) as exc:
            if isinstance(exc, libvirt.libvirtError) and exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
            try:
                dom = session.conn.lookupByUUIDString(dom.UUIDString())
            except libvirt.libvirtError as gone:
                if gone.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return None
                raise
            if attempt:
                raise
    return None


def get_vm(session: KvmSession, ref: str) -> VM:
    return session.vm_from_domain(session.domain(ref))


def create_vm(session: KvmSession, spec: VMSpec) -> VM:
    if spec.host is not None and spec.host not in (session._host_id, session._host_name):
        raise InvalidSpec(f"the kvm backend creates VMs on its own host ({session._host_name}); connect to the peer")
    extra = dict(spec.extra)
    # room to hot-add CPUs up to the host's logical CPUs, unless the spec says otherwise
    host_cpus = session.host_cpus()
    max_cpus = int(extra.get("max_cpus", max(spec.cpus, host_cpus)))
    max_memory = int(extra.get("max_memory_mib", spec.memory_mib))
    if max_cpus < spec.cpus or max_memory < spec.memory_mib:
        raise InvalidSpec("extra max_cpus / max_memory_mib must not be below cpus / memory_mib")
    used: set[str] = set()
    targets = [_domxml.next_target(d.bus, used) for d in spec.disks]  # validates buses before any call
    seed_target = _domxml.next_target(DiskBus.SATA, used) if spec.cloud_init is not None else None
    files = _cloudinit.seed_files(spec.name, spec.cloud_init) if spec.cloud_init is not None else None
    vm_uuid = str(uuidlib.uuid4())
    names = [
        (d.pool or "default", f"{d.name or spec.name + '-' + t}{EXT.get(d.format or DiskFormat.QCOW2, '.')}")
        for d, t in zip(spec.disks, targets, strict=True)
        if d.volume is None
    ]
    for pool_name, vol_name in names:  # refuse taken names before creating anything
        with contextlib.suppress(libvirt.libvirtError):
            session.conn.storagePoolLookupByName(pool_name).storageVolLookupByName(vol_name)
            raise AlreadyExists(f"volume {vol_name!r} exists already in pool {pool_name!r}")
    devs: list[_domxml.DiskDev] = []
    seed_path = None
    with Rollback() as undo:
        for disk, target in zip(spec.disks, targets, strict=True):
            if disk.volume is not None:
                vol = session.vol(disk.volume)
                fmt = volume_format(vol) or DiskFormat.RAW
            else:
                pool = session.conn.storagePoolLookupByName(disk.pool or "default")
                fmt = disk.format or DiskFormat.QCOW2
                name = f"{disk.name or spec.name + '-' + target}{EXT.get(fmt, '.')}"
                vol = pool.createXML(_domxml.volume_xml(name, disk.size_bytes, fmt), 0)
                undo.push(deleter(vol), f"delete volume {name}")
            devs.append(_domxml.DiskDev(vol.path(), fmt, disk.bus, target, kind=session.disk_kind(vol)))
        if files is not None and seed_target is not None:
            pool = _seed_pool(session, spec)
            data = _cloudinit.seed_iso(files)
            vol = pool.createXML(_domxml.volume_xml(f"{spec.name}-seed.iso", len(data), DiskFormat.RAW), 0)
            undo.push(deleter(vol), "delete the cloud-init seed")
            _streams.upload_bytes(session.conn, vol, data)
            seed_path = vol.path()
            devs.append(_domxml.DiskDev(seed_path, DiskFormat.RAW, DiskBus.SATA, seed_target, "cdrom", readonly=True))
        xml = _domxml.build_domain(
            name=spec.name,
            uuid=vm_uuid,
            domain_type=session._virt_type,
            cpus=spec.cpus,
            max_cpus=max_cpus,
            memory_kib=spec.memory_mib * 1024,
            max_memory_kib=max_memory * 1024,
            disks=devs,
            nics=[_domxml.NicDev(n.network, n.mac, n.model) for n in spec.nics],
            notes=spec.notes,
            tags=spec.tags,
            guest_os=spec.guest_os,
            seed=seed_path,
            serial_log=session.serial_log(vm_uuid),
            vnc_listen=None
            if session.driver == "test"
            else str(extra.get("vnc_listen", session.options.option("vnc_listen", "127.0.0.1"))),
            host_cpu=session._virt_type == "kvm",
            firmware=spec.firmware,
        )
        dom = session.conn.defineXML(xml)
        if spec.firmware is Firmware.UEFI:
            undo.push(functools.partial(dom.undefineFlags, flag("VIR_DOMAIN_UNDEFINE_NVRAM")), "undefine it")
        else:
            undo.push(dom.undefine, "undefine the domain")
        return session.vm_from_domain(dom)


def _seed_pool(session: KvmSession, spec: VMSpec) -> libvirt.virStoragePool:
    for disk in spec.disks:
        if disk.pool:
            return session.conn.storagePoolLookupByName(disk.pool)
    return session.conn.storagePoolLookupByName("default")


def delete_vm(session: KvmSession, vm: VM, keep_disks: bool) -> None:
    """Undefine the VM and delete its disks; a base it moved off at a linked clone goes once unused."""
    dom = session.domain(vm)
    inactive = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    info = _domxml.parse_domain(inactive)
    bases = _bases.recorded_bases(ET.fromstring(inactive))
    if dom.isActive():
        dom.destroy()
    undefine(dom, keep_nvram=False)
    paths = [] if keep_disks else [d.path for d in info.disks if d.device == "disk" and d.path]
    if info.seed:
        paths.append(info.seed)
    for path in paths:
        vol = session.volume_at(path)
        if vol is not None:
            vol.delete(0)
    if bases and not keep_disks:
        _bases.release_bases(session.conn, bases)


def start_vm(session: KvmSession, vm: VM) -> None:
    session.domain(vm).create()


def stop_vm(session: KvmSession, vm: VM, force: bool, timeout: float) -> None:
    dom = session.domain(vm)
    if force:
        if dom.isActive():
            dom.destroy()
        elif dom.hasManagedSaveImage(0):
            dom.managedSaveRemove(0)
        return
    if dom.state(0)[0] == libvirt.VIR_DOMAIN_PAUSED:
        dom.resume()
    dom.shutdown()
    pressed = [time.monotonic()]

    def read() -> TaskInfo:
        done = not dom.isActive()
        if not done and time.monotonic() - pressed[0] >= SHUTDOWN_REPEAT:
            # a guest still booting may miss one press of the power button: press it again
            with contextlib.suppress(libvirt.libvirtError):
                dom.shutdown()
            pressed[0] = time.monotonic()
        return TaskInfo(TaskState.SUCCESS if done else TaskState.RUNNING)

    try:
        wait_for(read, timeout=timeout, what=f"shutdown of VM {vm.name!r}", max_interval=0.5)
    except Timeout:
        raise Timeout(
            f"VM {vm.name!r} did not shut down within {timeout:g} s (use force=True to power it off)"
        ) from None


def reboot_vm(session: KvmSession, vm: VM, force: bool) -> None:
    dom = session.domain(vm)
    if force:
        dom.reset(0)
    else:
        dom.reboot(0)


def pause_vm(session: KvmSession, vm: VM) -> None:
    session.domain(vm).suspend()


def resume_vm(session: KvmSession, vm: VM) -> None:
    session.domain(vm).resume()


def suspend_vm(session: KvmSession, vm: VM) -> None:
    session.domain(vm).managedSave(0)


def reconfigure_vm(session: KvmSession, vm: VM, cpus: int | None, memory_mib: int | None) -> None:
    dom = session.domain(vm)
    flags = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE
    config = dom.XMLDesc(flags)
    kib = None if memory_mib is None else memory_mib * 1024
    if not dom.isActive():
        session.conn.defineXML(_domxml.set_sizing(config, cpus, kib))
        return
    info = _domxml.parse_domain(config)
    if cpus is not None and cpus > info.max_cpus:
        raise InvalidState(f"VM {vm.name!r} is running with at most {info.max_cpus} CPUs; stop it to give it {cpus}")
    if kib is not None and kib > info.max_memory_kib:
        raise InvalidState(
            f"VM {vm.name!r} is running with at most {info.max_memory_kib // 1024} MiB; "
            f"stop it to give it {memory_mib} MiB"
        )
    both = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
    if cpus is not None and cpus != info.cpus:
        dom.setVcpusFlags(cpus, both)
    if kib is not None:
        dom.setMemoryFlags(kib, both)
