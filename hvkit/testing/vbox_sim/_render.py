"""What the stand-in prints: the line formats of VBoxManage 6.1 and 7.0, key by key and in their order.

The formats follow the verbatim outputs of real VirtualBox (the golden tests compare them byte for
byte); where the two versions differ (``Encryption:`` and `` rec_screen0`` lines, escaped attachment
paths, per-attachment flags, ``virtvmsavevmload``/``iommu``) the emulated version decides.
"""

from __future__ import annotations

from typing import Any

from ._state import Sim

__all__ = ["OS_TYPES", "mr_string", "showvminfo_human", "showvminfo_mr"]

# id -> (description, family id); a subset of `list ostypes`
OS_TYPES: dict[str, tuple[str, str]] = {
    "Other": ("Other/Unknown", "Other"),
    "Other_64": ("Other/Unknown (64-bit)", "Other"),
    "Linux26_64": ("Linux 2.6 / 3.x / 4.x / 5.x (64-bit)", "Linux"),
    "ArchLinux_64": ("Arch Linux (64-bit)", "Linux"),
    "Debian_64": ("Debian (64-bit)", "Linux"),
    "Ubuntu_64": ("Ubuntu (64-bit)", "Linux"),
    "FreeBSD_64": ("FreeBSD (64-bit)", "BSD"),
    "Windows10_64": ("Windows 10 (64-bit)", "Windows"),
    "Windows2019_64": ("Windows 2019 (64-bit)", "Windows"),
}
NIC_KEY = {"nat": "natnet", "bridged": "bridgeadapter", "hostonly": "hostonlyadapter", "intnet": "intnet",
           "natnetwork": "nat-network"}  # fmt: skip
HUMAN_STATE = {"poweroff": "powered off", "saved": "saved", "aborted": "aborted", "running": "running",
               "paused": "paused", "gurumeditation": "guru meditation"}  # fmt: skip
HUMAN_ATTACH = {"nat": "NAT", "bridged": "Bridged Interface '{}'", "hostonly": "Host-only Interface '{}'",
                "intnet": "Internal Network '{}'", "natnetwork": "NAT Network '{}'"}  # fmt: skip
NICS_SHOWN = 8


def mr_string(value: str) -> str:
    """outputMachineReadableString: backslash and double quote escaped, newlines printed raw."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _controllers(sim: Sim, vm: dict[str, Any]) -> list[str]:
    lines = []
    for i, ctl in enumerate(vm["controllers"]):
        lines += [
            f"storagecontrollername{i}={mr_string(ctl['name'])}",
            f'storagecontrollertype{i}="{ctl["type"]}"',
            f'storagecontrollerinstance{i}="0"',
            f'storagecontrollermaxportcount{i}="{ctl["maxports"]}"',
            f'storagecontrollerportcount{i}="{ctl["portcount"]}"',
            f'storagecontrollerbootable{i}="on"',
        ]
    for ctl in vm["controllers"]:
        devices = 2 if ctl["bus"] == "ide" else 1
        for port in range(ctl["portcount"]):
            for device in range(devices):
                lines += _attachment_lines(sim, vm, ctl["name"], port, device)
    return lines


def _attachment_lines(sim: Sim, vm: dict[str, Any], ctl: str, port: int, device: int) -> list[str]:
    att = next((a for a in vm["attachments"] if (a["ctl"], a["port"], a["device"]) == (ctl, port, device)), None)
    slot = f"{ctl}-{port}-{device}"
    if att is None:
        return [f'"{slot}"="none"']
    if att["type"] == "dvddrive" and not att.get("medium"):
        lines = [f'"{slot}"="emptydrive"']
        if sim.v7:
            lines.append(f'"{ctl}-IsEjected-{port}-{device}"="off"')
        return lines
    medium = sim.find_medium(att["medium"]) or {"location": "", "uuid": att["medium"]}
    path = mr_string(medium["location"]) if sim.v7 else f'"{medium["location"]}"'  # 6.1 printed paths raw
    lines = [f'"{slot}"={path}', f'"{ctl}-ImageUUID-{port}-{device}"="{medium["uuid"]}"']
    if sim.v7 and att["type"] == "hdd":
        lines += [f'"{ctl}-hot-pluggable-{port}-{device}"="off"', f'"{ctl}-nonrotational-{port}-{device}"="off"',
                  f'"{ctl}-discard-{port}-{device}"="off"']  # fmt: skip
    return lines


def _nics(vm: dict[str, Any]) -> list[str]:
    lines = []
    nics = {n["index"]: n for n in vm["nics"]}
    for i in range(1, NICS_SHOWN + 1):
        nic = nics.get(i)
        if nic is None or nic["attach"] == "none":
            lines.append(f'nic{i}="none"')
            continue
        key = NIC_KEY[nic["attach"]]
        value = "nat" if nic["attach"] == "nat" else nic["net"]
        lines += [f"{key}{i}={mr_string(value)}", f'macaddress{i}="{nic["mac"]}"', f'cableconnected{i}="on"',
                  f'nic{i}="{nic["attach"]}"', f'nictype{i}="{nic["type"]}"', f'nicspeed{i}="0"']  # fmt: skip
        if nic["attach"] == "nat":
            lines += ['mtu="0"', 'sockSnd="64"', 'sockRcv="64"', 'tcpWndSnd="64"', 'tcpWndRcv="64"']
    return lines


def _vrde(vm: dict[str, Any]) -> list[str]:
    if not vm.get("vrde"):
        return ['vrde="off"']
    port = vm.get("vrde_active_port", -1) if vm["state"] in ("running", "paused") else -1
    address = vm.get("vrde_address", "")
    return ['vrde="on"', f"vrdeport={port}", f'vrdeports="{vm.get("vrde_ports", "3389")}"',
            f"vrdeaddress={mr_string(address)}", 'vrdeauthtype="null"', 'vrdemulticon="off"',
            'vrdereusecon="off"', 'vrdevideochannel="off"',
            f'vrdeproperty[TCP/Ports]="{vm.get("vrde_ports", "3389")}"',
            f"vrdeproperty[TCP/Address]={mr_string(address)}"]  # fmt: skip


def _recording(sim: Sim, vm: dict[str, Any]) -> list[str]:
    base = vm["cfgfile"].rsplit("/", 1)[0]
    lines = ['recording_enabled="off"', "recording_screens=1"]
    if sim.v7:
        lines.append(" rec_screen0")
    return [
        *lines,
        'rec_screen_enabled="on"',
        "rec_screen_id=0",
        'rec_screen_video_enabled="on"',
        'rec_screen_dest="File"',
        "rec_screen_dest_filename=" + mr_string(base + "/" + vm["name"] + "-screen0.webm"),
        'rec_screen_opts="vc_enabled=true,ac_enabled=false,ac_profile=med"',
        'rec_screen_video_res_xy="1024x768"',
        "rec_screen_video_rate_kbps=512",
        "rec_screen_video_fps=25",
    ]


def snapshot_lines(vm: dict[str, Any]) -> list[str]:
    """SnapshotName/UUID[/Description] depth-first, CurrentSnapshot* right after the current node."""
    lines: list[str] = []
    snaps = vm["snapshots"]

    def walk(snap: dict[str, Any], suffix: str) -> None:
        lines.append(f"SnapshotName{suffix}={mr_string(snap['name'])}")
        lines.append(f'SnapshotUUID{suffix}="{snap["uuid"]}"')
        if snap.get("description"):
            lines.append(f'SnapshotDescription{suffix}="{snap["description"]}"')
        if vm.get("current_snapshot") == snap["uuid"]:
            lines.extend([f"CurrentSnapshotName={mr_string(snap['name'])}", f'CurrentSnapshotUUID="{snap["uuid"]}"',
                          f'CurrentSnapshotNode="SnapshotName{suffix}"'])  # fmt: skip
        children = [s for s in snaps if s.get("parent") == snap["uuid"]]
        for index, child in enumerate(children, 1):
            walk(child, f"{suffix}-{index}")

    for root in (s for s in snaps if not s.get("parent")):  # VirtualBox keeps one root
        walk(root, "")
    return lines


def showvminfo_mr(sim: Sim, vm: dict[str, Any]) -> str:
    """``showvminfo --machinereadable`` of one VM."""
    ostype = OS_TYPES.get(vm["ostype"], (vm["ostype"], "Other"))[0]
    folder = vm["cfgfile"].rsplit("/", 1)[0]
    x = vm.get("settings", {})
    lines = [f"name={mr_string(vm['name'])}"]
    if sim.v7:
        lines.append("Encryption:     disabled")
    lines += [
        f"groups={mr_string(vm.get('groups', '/'))}",
        f"ostype={mr_string(ostype)}",
        f'UUID="{vm["uuid"]}"',
        f"CfgFile={mr_string(vm['cfgfile'])}",
        f"SnapFldr={mr_string(folder + '/Snapshots')}",
        f"LogFldr={mr_string(folder + '/Logs')}",
        f'hardwareuuid="{vm["uuid"]}"',
        f"memory={vm['memory']}",
        'pagefusion="off"',
        f"vram={x.get('vram', 16)}",
        "cpuexecutioncap=100",
        'hpet="off"',
        'cpu-profile="host"',
        'chipset="piix3"',
        f'firmware="{vm["firmware"]}"',
        f"cpus={vm['cpus']}",
        'pae="off"' if x.get("longmode", "on") == "on" else 'pae="on"',
        f'longmode="{x.get("longmode", "on")}"',
        'triplefaultreset="off"',
        'apic="on"',
        f'x2apic="{x.get("x2apic", "on")}"',
        'nested-hw-virt="off"',
        "cpuid-portability-level=0",
        'bootmenu="messageandmenu"',
        'boot1="dvd"',
        'boot2="disk"',
        'boot3="none"',
        'boot4="none"',
        'acpi="on"',
        'ioapic="on"',
        'biosapic="apic"',
        "biossystemtimeoffset=0",
    ]
    if sim.v7:
        lines.append("BIOS NVRAM File=" + mr_string(folder + "/" + vm["name"] + ".nvram"))
    lines += ['rtcuseutc="on"', 'hwvirtex="on"', 'nestedpaging="on"', 'largepages="on"', 'vtxvpid="on"', 'vtxux="on"']
    if sim.v7:
        lines += ['virtvmsavevmload="on"', 'iommu="none"']
    lines += [
        'paravirtprovider="default"',
        f'effparavirtprovider="{"kvm" if OS_TYPES.get(vm["ostype"], ("", ""))[1] == "Linux" else "none"}"',
        f'VMState="{vm["state"]}"',
        f'VMStateChangeTime="{vm["state_time"]}"',
    ]
    if vm["state"] == "saved" and vm.get("state_file"):
        lines.append(f"VMStateFile={mr_string(vm['state_file'])}")
    lines += [
        f'graphicscontroller="{x.get("graphicscontroller", "vmsvga")}"',
        "monitorcount=1",
        'accelerate3d="off"',
        'accelerate2dvideo="off"',
        'teleporterenabled="off"',
        "teleporterport=0",
        'teleporteraddress=""',
        'teleporterpassword=""',
        'tracing-enabled="off"',
        'tracing-allow-vm-access="off"',
        'tracing-config=""',
        'autostart-enabled="off"',
        "autostart-delay=0",
        'defaultfrontend=""',
        'vmprocpriority="default"',
    ]
    lines += _controllers(sim, vm)
    lines += _nics(vm)
    lines += [f'hidpointing="{x.get("hidpointing", "usbtablet")}"', 'hidkeyboard="ps2kbd"']
    lines += ['uart1="off"', 'uart2="off"', 'uart3="off"', 'uart4="off"', 'lpt1="off"', 'lpt2="off"']
    lines += ['audio="default"', 'audio_out="on"', 'audio_in="off"']
    lines += [f'clipboard="{x.get("clipboard", "disabled")}"', f'draganddrop="{x.get("draganddrop", "disabled")}"']
    lines += _vrde(vm)
    lines += [f'usb="{x.get("usb", "off")}"', f'ehci="{x.get("usb", "off")}"', 'xhci="off"']
    lines += _recording(sim, vm)
    if vm.get("description"):
        lines.append(f"description={mr_string(vm['description'])}")
    lines.append("GuestMemoryBalloon=0")
    lines += snapshot_lines(vm)
    return "\n".join(lines) + "\n"


def showvminfo_human(sim: Sim, vm: dict[str, Any]) -> str:
    """The human block of one VM, as ``list -l vms`` prints it for each VM."""
    ostype = OS_TYPES.get(vm["ostype"], (vm["ostype"], "Other"))[0]
    folder = vm["cfgfile"].rsplit("/", 1)[0]

    def row(label: str, value: object) -> str:
        return f"{label + ':':<28} {value}"

    lines = [row("Name", vm["name"])]
    if sim.v7:
        lines.append(row("Encryption", "disabled"))
    lines += [
        row("Groups", vm.get("groups", "/")),
        row("Guest OS", ostype),
        row("UUID", vm["uuid"]),
        row("Config file", vm["cfgfile"]),
        row("Snapshot folder", folder + "/Snapshots"),
        row("Log folder", folder + "/Logs"),
        row("Hardware UUID", vm["uuid"]),
        row("Memory size", f"{vm['memory']}MB"),
        row("Page Fusion", "disabled"),
        row("VRAM size", f"{vm.get('settings', {}).get('vram', 16)}MB"),
        row("CPU exec cap", "100%"),
        row("HPET", "disabled"),
        row("CPUProfile", "host"),
        row("Chipset", "piix3"),
        row("Firmware", vm["firmware"]),
        row("Number of CPUs", vm["cpus"]),
        row("PAE", "disabled"),
        row("Long Mode", "enabled"),
        row("State", f"{HUMAN_STATE.get(vm['state'], vm['state'])} (since {vm['state_time']})"),
    ]
    if sim.v7:
        lines.append("Storage Controllers:")
        for i, ctl in enumerate(vm["controllers"]):
            lines.append(f"#{i}: '{ctl['name']}', Type: {ctl['type']}, Instance: 0, Ports: {ctl['portcount']} "
                         f"(max {ctl['maxports']}), Bootable")  # fmt: skip
            for att in (a for a in vm["attachments"] if a["ctl"] == ctl["name"]):
                medium = sim.find_medium(att.get("medium") or "")
                where = f'UUID: {medium["uuid"]}, Location: "{medium["location"]}"' if medium else "Empty"
                lines.append(f"  Port {att['port']}, Unit {att['device']}: {where}")
    else:
        for i, ctl in enumerate(vm["controllers"]):
            lines += [row(f"Storage Controller Name ({i})", ctl["name"]),
                      row(f"Storage Controller Type ({i})", ctl["type"])]  # fmt: skip
        for att in vm["attachments"]:
            medium = sim.find_medium(att.get("medium") or "")
            if medium:
                lines.append(f"{att['ctl']} ({att['port']}, {att['device']}): {medium['location']} "
                             f"(UUID: {medium['uuid']})")  # fmt: skip
            else:
                lines.append(f"{att['ctl']} ({att['port']}, {att['device']}): Empty")
    nics = {n["index"]: n for n in vm["nics"]}
    for i in range(1, NICS_SHOWN + 1):
        nic = nics.get(i)
        if nic is None or nic["attach"] == "none":
            lines.append(row(f"NIC {i}", "disabled"))
            continue
        attach = HUMAN_ATTACH[nic["attach"]].format(nic.get("net", ""))
        lines.append(row(f"NIC {i}", f"MAC: {nic['mac']}, Attachment: {attach}, Cable connected: on, "
                         f"Trace: off (file: none), Type: {nic['type']}, Reported speed: 0 Mbps, "
                         "Boot priority: 0, Promisc Policy: deny, Bandwidth group: none"))  # fmt: skip
    lines.append(row("VRDE", "enabled (Address 0.0.0.0, Ports 3389, MultiConn: off)" if vm.get("vrde") else "disabled"))
    if vm.get("description"):
        lines += ["Description:", vm["description"]]
    return "\n".join(lines) + "\n"
