"""Domain, volume and snapshot XML: built and read with xml.etree only (no string formatting of XML).

Names and values with ``<``, ``&``, quotes or non-ASCII characters round-trip because ElementTree
escapes them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable

import attrs

from ...errors import InvalidSpec
from ...models import DiskBus, DiskFormat, Firmware, GuestOS, NicModel

__all__ = [
    "NS",
    "DiskDev",
    "DomainInfo",
    "NicDev",
    "build_domain",
    "next_target",
    "parse_domain",
    "set_sizing",
    "volume_xml",
]

NS = "https://hvkit.dev/xmlns/libvirt/1"  # our <metadata> namespace
ET.register_namespace("hvkit", NS)
_PREFIX = {DiskBus.VIRTIO: "vd", DiskBus.SCSI: "sd", DiskBus.SATA: "sd", DiskBus.IDE: "hd"}
SUPPORTED_BUSES = frozenset(_PREFIX)


@attrs.frozen
class DiskDev:
    path: str
    format: DiskFormat
    bus: DiskBus
    target: str
    device: str = "disk"  # disk | cdrom
    kind: str = "file"  # file | block
    readonly: bool = False


@attrs.frozen
class NicDev:
    network: str | None
    mac: str | None
    model: NicModel | None
    target: str | None = None  # the host-side tap device, for a running VM


@attrs.frozen
class DomainInfo:
    name: str
    uuid: str
    cpus: int
    max_cpus: int
    memory_kib: int
    max_memory_kib: int
    disks: tuple[DiskDev, ...]
    nics: tuple[NicDev, ...]
    notes: str
    tags: frozenset[str]
    guest_os: GuestOS | None
    seed: str | None  # path of the cloud-init seed ISO hvkit made for this VM
    serial_log: str | None
    vnc: tuple[str | None, int | None, str | None] | None  # listen, port, password
    domain_type: str
    firmware: Firmware = Firmware.BIOS


def next_target(bus: DiskBus, used: set[str]) -> str:
    if bus not in SUPPORTED_BUSES:
        raise InvalidSpec(
            f"the kvm backend has no {bus.value} disk bus (one of: {', '.join(b.value for b in _PREFIX)})"
        )
    prefix = _PREFIX[bus]
    for i in range(26 * 27):
        suffix = chr(97 + i) if i < 26 else chr(96 + i // 26) + chr(97 + i % 26)
        if prefix + suffix not in used:
            used.add(prefix + suffix)
            return prefix + suffix
    raise InvalidSpec("too many disks on one bus")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = text
    return el


def build_domain(
    *,
    name: str,
    uuid: str,
    domain_type: str,
    cpus: int,
    max_cpus: int,
    memory_kib: int,
    max_memory_kib: int,
    disks: Iterable[DiskDev],
    nics: Iterable[NicDev],
    notes: str = "",
    tags: Iterable[str] = (),
    guest_os: GuestOS | None = None,
    seed: str | None = None,
    serial_log: str | None = None,
    vnc_listen: str | None = "127.0.0.1",
    host_cpu: bool = False,
    firmware: Firmware = Firmware.BIOS,
) -> str:
    dom = ET.Element("domain", type=domain_type)
    _sub(dom, "name", name)
    _sub(dom, "uuid", uuid)
    if notes:
        _sub(dom, "description", notes)
    meta = _sub(_sub(dom, "metadata"), f"{{{NS}}}vm")
    for tag in sorted(tags):
        _sub(meta, f"{{{NS}}}tag", tag)
    if guest_os is not None:
        _sub(meta, f"{{{NS}}}guest-os", guest_os.value)
    if seed is not None:
        _sub(meta, f"{{{NS}}}seed", seed)
    _sub(dom, "memory", str(max_memory_kib), unit="KiB")
    _sub(dom, "currentMemory", str(memory_kib), unit="KiB")
    _sub(dom, "vcpu", str(max_cpus), placement="static", current=str(cpus))
    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch="x86_64")
    if firmware is Firmware.UEFI:  # libvirt picks the OVMF build from the host's firmware descriptors
        os_el.set("firmware", "efi")
        _sub(_sub(os_el, "firmware"), "feature", enabled="no", name="secure-boot")
    _sub(os_el, "boot", dev="hd")
    features = _sub(dom, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if host_cpu:
        _sub(dom, "cpu", mode="host-passthrough")
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")
    devices = _sub(dom, "devices")
    disk_list = list(disks)
    if any(d.bus is DiskBus.SCSI for d in disk_list):
        _sub(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    for disk in disk_list:
        el = _sub(devices, "disk", type=disk.kind, device=disk.device)
        _sub(el, "driver", name="qemu", type=disk.format.value)
        _sub(el, "source", **({"file": disk.path} if disk.kind == "file" else {"dev": disk.path}))
        _sub(el, "target", dev=disk.target, bus=disk.bus.value)
        if disk.readonly:
            _sub(el, "readonly")
    for nic in nics:
        el = _sub(devices, "interface", type="network")
        if nic.mac:
            _sub(el, "mac", address=nic.mac)
        _sub(el, "source", network=nic.network or "default")
        _sub(el, "model", type=(nic.model or NicModel.VIRTIO).value)
    serial = _sub(devices, "serial", type="pty")
    if serial_log:
        _sub(serial, "log", file=serial_log, append="off")
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    channel = _sub(devices, "channel", type="unix")
    _sub(channel, "target", type="virtio", name="org.qemu.guest_agent.0")
    if vnc_listen is not None:
        _sub(devices, "graphics", type="vnc", port="-1", autoport="yes", listen=vnc_listen)
        _sub(_sub(devices, "video"), "model", type="vga")
    _sub(devices, "memballoon", model="virtio")
    return ET.tostring(dom, encoding="unicode")


def _int(el: ET.Element | None, default: int = 0) -> int:
    try:
        return int((el.text or "").strip()) if el is not None else default
    except ValueError:
        return default


def _kib(el: ET.Element | None) -> int:
    if el is None:
        return 0
    value = _int(el)
    unit = (el.get("unit") or "KiB").lower()
    factor = {
        "b": 1 / 1024,
        "bytes": 1 / 1024,
        "k": 1,
        "kib": 1,
        "kb": 1000 / 1024,
        "m": 1024,
        "mib": 1024,
        "g": 1024**2,
        "gib": 1024**2,
    }
    return int(value * factor.get(unit, 1))


def parse_domain(xml: str) -> DomainInfo:
    root = ET.fromstring(xml)
    vcpu = root.find("vcpu")
    max_cpus = _int(vcpu, 1)
    cpus = int(vcpu.get("current", max_cpus)) if vcpu is not None else 1
    max_mem = _kib(root.find("memory"))
    cur_mem = _kib(root.find("currentMemory")) or max_mem
    disks: list[DiskDev] = []
    for el in root.findall("devices/disk"):
        source = el.find("source")
        path = None
        if source is not None:
            path = source.get("file") or source.get("dev") or source.get("volume")
        driver = el.find("driver")
        target = el.find("target")
        fmt_text = driver.get("type", "raw") if driver is not None else "raw"
        try:
            fmt = DiskFormat(fmt_text)
        except ValueError:
            fmt = DiskFormat.RAW
        bus_text = target.get("bus", "virtio") if target is not None else "virtio"
        try:
            bus = DiskBus(bus_text)
        except ValueError:
            bus = DiskBus.VIRTIO
        disks.append(
            DiskDev(
                path=path or "",
                format=fmt,
                bus=bus,
                target=target.get("dev", "") if target is not None else "",
                device=el.get("device", "disk"),
                kind=el.get("type", "file"),
                readonly=el.find("readonly") is not None,
            )
        )
    nics: list[NicDev] = []
    for el in root.findall("devices/interface"):
        mac = el.find("mac")
        source = el.find("source")
        model = el.find("model")
        target = el.find("target")
        try:
            nic_model: NicModel | None = NicModel(model.get("type", "")) if model is not None else None
        except ValueError:
            nic_model = None
        network = None
        if source is not None:
            network = source.get("network") or source.get("bridge") or source.get("dev")
        nics.append(
            NicDev(
                network=network,
                mac=mac.get("address") if mac is not None else None,
                model=nic_model,
                target=target.get("dev") if target is not None else None,
            )
        )
    meta = root.find(f"metadata/{{{NS}}}vm")
    tags: frozenset[str] = frozenset()
    guest_os = None
    seed = None
    if meta is not None:
        tags = frozenset(t.text or "" for t in meta.findall(f"{{{NS}}}tag"))
        os_el = meta.find(f"{{{NS}}}guest-os")
        if os_el is not None and os_el.text:
            try:
                guest_os = GuestOS(os_el.text)
            except ValueError:
                guest_os = None
        seed_el = meta.find(f"{{{NS}}}seed")
        seed = seed_el.text if seed_el is not None else None
    log_el = root.find("devices/serial/log")
    vnc = None
    graphics = root.find("devices/graphics[@type='vnc']")
    if graphics is not None:
        port_text = graphics.get("port", "-1")
        port = int(port_text) if port_text.lstrip("-").isdigit() and int(port_text) > 0 else None
        vnc = (graphics.get("listen"), port, graphics.get("passwd"))
    return DomainInfo(
        name=(root.findtext("name") or ""),
        uuid=(root.findtext("uuid") or ""),
        cpus=cpus,
        max_cpus=max_cpus,
        memory_kib=cur_mem,
        max_memory_kib=max_mem,
        disks=tuple(disks),
        nics=tuple(nics),
        notes=root.findtext("description") or "",
        tags=tags,
        guest_os=guest_os,
        seed=seed,
        serial_log=log_el.get("file") if log_el is not None else None,
        vnc=vnc,
        domain_type=root.get("type", ""),
        firmware=_firmware(root),
    )


def _firmware(root: ET.Element) -> Firmware:
    os_el = root.find("os")
    if os_el is None:
        return Firmware.BIOS
    loader = os_el.find("loader")
    efi = os_el.get("firmware") == "efi" or (loader is not None and loader.get("type") == "pflash")
    return Firmware.UEFI if efi else Firmware.BIOS


def set_sizing(xml: str, cpus: int | None, memory_kib: int | None) -> str:
    """Domain XML with new CPU count and/or memory (raising the maximums when needed)."""
    root = ET.fromstring(xml)
    if cpus is not None:
        vcpu = root.find("vcpu")
        if vcpu is None:
            vcpu = ET.SubElement(root, "vcpu")
        max_cpus = max(_int(vcpu, 1), cpus)
        vcpu.text = str(max_cpus)
        vcpu.set("current", str(cpus))
    if memory_kib is not None:
        for tag in ("memory", "currentMemory"):
            el = root.find(tag)
            if el is None:
                el = ET.SubElement(root, tag)
            el.text = str(memory_kib)
            el.set("unit", "KiB")
        for el in root.findall("maxMemory"):
            root.remove(el)
    return ET.tostring(root, encoding="unicode")


def volume_xml(name: str, capacity: int, fmt: DiskFormat | None, backing: tuple[str, DiskFormat] | None = None) -> str:
    vol = ET.Element("volume")
    _sub(vol, "name", name)
    _sub(vol, "capacity", str(capacity), unit="bytes")
    _sub(vol, "allocation", "0", unit="bytes")
    if fmt is not None:
        target = _sub(vol, "target")
        _sub(target, "format", type=fmt.value)
        if fmt is DiskFormat.QCOW2:
            _sub(target, "compat", "1.1")  # qcow2 v3 (zero clusters, extended features); libvirt's default is 0.10
    if backing is not None:
        store = _sub(vol, "backingStore")
        _sub(store, "path", backing[0])
        _sub(store, "format", type=backing[1].value)
    return ET.tostring(vol, encoding="unicode")


def snapshot_xml(name: str, description: str, disk_only_targets: Iterable[str] = ()) -> str:
    snap = ET.Element("domainsnapshot")
    _sub(snap, "name", name)
    if description:
        _sub(snap, "description", description)
    targets = list(disk_only_targets)
    if targets:
        disks = _sub(snap, "disks")
        for target in targets:
            _sub(disks, "disk", name=target, snapshot="internal")
    return ET.tostring(snap, encoding="unicode")
