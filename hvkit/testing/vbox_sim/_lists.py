"""``list ...``, ``showmediuminfo``, ``guestproperty enumerate`` and ``metrics query`` output."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._render import OS_TYPES, showvminfo_human
from ._state import Sim

__all__ = ["LISTS", "guestproperties", "list_vms", "mediuminfo", "metrics_query"]

_RUNNING = {"running", "paused", "teleporting", "livesnapshotting", "teleportingpausedvm"}


def list_vms(sim: Sim, *, running: bool = False, long: bool = False, sort: bool = False) -> str:
    vms = [vm for vm in sim.state["vms"] if not running or vm["state"] in _RUNNING]
    if sort:
        vms = sorted(vms, key=lambda vm: vm["name"].lower())
    if long:
        return "".join(showvminfo_human(sim, vm) + "\n" for vm in vms)
    return "".join(f'"{vm["name"]}" {{{vm["uuid"]}}}\n' for vm in vms)


def _interfaces(items: list[dict[str, Any]], wireless: bool = True) -> str:
    out = []
    for itf in items:
        lines = [
            f"Name:            {itf['name']}",
            f"GUID:            {itf['guid']}",
            "DHCP:            Disabled",
            f"IPAddress:       {itf['ip']}",
            f"NetworkMask:     {itf['mask']}",
            f"IPV6Address:     {itf['ipv6']}".rstrip(),
            f"IPV6NetworkMaskPrefixLength: {itf['ipv6len']}",
            f"HardwareAddress: {itf['mac']}",
            "MediumType:      Ethernet",
        ]
        if wireless:
            lines.append("Wireless:        No")
        lines += [f"Status:          {itf['status']}", f"VBoxNetworkName: HostInterfaceNetworking-{itf['name']}", ""]
        out.append("\n".join(lines) + "\n")
    return "".join(out)


def _natnets(sim: Sim) -> str:
    out = []
    for net in sim.state["natnets"]:
        lines = [
            f"NetworkName:    {net['name']}",
            f"IP:             {net['ip']}",
            f"Network:        {net['network']}",
            f"IPv6 Enabled:   {net['ipv6']}",
            f"IPv6 Prefix:    {net['prefix']}",
            f"DHCP Enabled:   {net['dhcp']}",
            f"Enabled:        {net['enabled']}",
        ]
        if net.get("loopback"):
            lines.append("loopback mappings (ipv4)")
            lines += [f"        {m}" for m in net["loopback"]]
        out.append("\n".join(lines) + "\n\n")
    return "".join(out)


def _hostinfo(sim: Sim) -> str:
    h = sim.state["host"]
    t = time.gmtime()
    lines = [
        "Host Information:",
        "",
        f"Host time: {time.strftime('%Y-%m-%dT%H:%M:%S', t)}.000000000Z",
        f"Processor online count: {h['cpus']}",
        f"Processor count: {h['cpus']}",
        f"Processor online core count: {h['cores']}",
        f"Processor core count: {h['cores']}",
        "Processor supports HW virtualization: yes",
        "Processor supports PAE: yes",
        "Processor supports long mode: yes",
        "Processor supports nested paging: yes",
        "Processor supports unrestricted guest: yes",
        "Processor supports nested HW virtualization: yes",
    ]
    if sim.v7:
        lines.append("Processor supports virt. vmsave/vmload: yes")
    for i in range(h["cpus"]):
        lines += [f"Processor#{i} speed: {h['mhz']} MHz", f"Processor#{i} description: {h['model']}"]
    lines += [
        f"Memory size: {h['memory']} MByte",
        f"Memory available: {h['available']} MByte",
        f"Operating system: {h['os']}",
        f"Operating system version: {h['os_version']}",
    ]
    return "\n".join(lines) + "\n"


def _hdds(sim: Sim) -> str:
    out = []
    for m in sim.ordered_media():
        state = (
            "locked write"
            if _in_running_vm(sim, m)
            else ("created" if Path(m["location"]).exists() else "inaccessible")
        )
        state = m.get("state") or state  # a state written into the raw state (golden outputs) wins
        kind = "normal (differencing)" if m.get("parent") else "normal (base)"
        out.append(
            f"UUID:           {m['uuid']}\n"
            f"Parent UUID:    {m.get('parent') or 'base'}\n"
            f"State:          {state}\n"
            f"Type:           {kind}\n"
            f"Location:       {m['location']}\n"
            f"Storage format: {m['format']}\n"
            f"Capacity:       {m['capacity'] >> 20} MBytes\n"
            "Encryption:     disabled\n\n"
        )
    return "".join(out)


def _in_running_vm(sim: Sim, medium: dict[str, Any]) -> bool:
    return any(vm["state"] in _RUNNING for vm in sim.users_of(medium["uuid"]))


def _ostypes(sim: Sim) -> str:
    out = []
    for os_id, (desc, family) in OS_TYPES.items():
        out.append(f"ID:          {os_id}\nDescription: {desc}\nFamily ID:   {family}\nFamily Desc: {family}\n"
                   f"64 bit:      {'true' if os_id.endswith('_64') else 'false'}\n\n")  # fmt: skip
    return "".join(out)


def _systemproperties(sim: Sim) -> str:
    return (
        "API version:                     " + ("7_0" if sim.v7 else "6_1") + "\n"
        "Minimum guest RAM size:          4 Megabytes\n"
        "Maximum guest RAM size:          2097152 Megabytes\n"
        "Minimum guest CPU count:         1\n"
        "Maximum guest CPU count:         32\n"
        "Virtual disk limit (info):       2199022206976 Bytes\n"
        "Maximum guest monitor count:     64\n"
        "Maximum Serial Port count:       4\n"
        "Maximum Parallel Port count:     2\n"
        "Maximum Boot Position:           4\n"
        "Maximum PIIX3 Network Adapter count:   8\n"
        "Maximum ICH9 Network Adapter count:   36\n"
        f"Default machine folder:          {sim.state['machine_folder']}\n"
        "Default hard disk format:        VDI\n"
    )


def mediuminfo(sim: Sim, m: dict[str, Any]) -> str:
    path = Path(m["location"])
    size = path.stat().st_blocks * 512 if path.exists() else 0
    lines = [
        f"UUID:           {m['uuid']}",
        f"Parent UUID:    {m.get('parent') or 'base'}",
        f"State:          {'locked write' if _in_running_vm(sim, m) else 'created'}",
        f"Type:           {'normal (differencing)' if m.get('parent') else 'normal (base)'}",
    ]
    if m.get("parent"):
        lines.append("Auto-Reset:     off")
    lines += [
        f"Location:       {m['location']}",
        f"Storage format: {m['format']}",
        f"Format variant: {'differencing' if m.get('parent') else 'dynamic'} default",
        f"Capacity:       {m['capacity'] >> 20} MBytes",
        f"Size on disk:   {size >> 20} MBytes",
        "Encryption:     disabled",
    ]
    users = sim.users_of(m["uuid"])
    for i, vm in enumerate(users):
        lines.append(("In use by VMs:  " if i == 0 else " " * 16) + f"{vm['name']} (UUID: {vm['uuid']})")
    for i, child in enumerate(sim.children_of(m["uuid"])):
        lines.append(("Child UUIDs:    " if i == 0 else " " * 16) + child["uuid"])
    return "\n".join(lines) + "\n"


def guestproperties(sim: Sim, vm: dict[str, Any], patterns: list[str]) -> str:
    """6.1: ``Name: <n>, value: <v>, timestamp: <ns>, flags: <f>``; 7.0: ``<n> = '<v>' @ <time>``."""
    import fnmatch

    out = []
    for name, (value, stamp) in sorted(vm.get("guestprops", {}).items()):
        if patterns and not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        if sim.v7:
            when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp / 1e9)) + ".000000000Z"
            out.append(f"{name:<40} = '{value}' @ {when}\n")
        else:
            out.append(f"Name: {name}, value: {value}, timestamp: {stamp}, flags: \n")
    return "".join(out)


def metrics_query(sim: Sim, objects: list[str], metrics: list[str]) -> str:
    """``metrics query``: a header, then one row per object and metric (CPU in %, RAM in kB)."""
    rows = []
    for vm in sim.state["vms"]:
        if vm["state"] not in _RUNNING or (objects and vm["name"] not in objects and vm["uuid"] not in objects):
            continue
        load = 1.5 + (vm["cpus"] % 4)
        values = {
            "CPU/Load/User": f"{load:.2f}%",
            "CPU/Load/Kernel": "0.50%",
            "RAM/Usage/Used": f"{vm['memory'] * 1024 // 2} kB",
            "Net/Rate/Rx": "0 B/s",
            "Net/Rate/Tx": "0 B/s",
        }
        rows += [(vm["name"], key, val) for key, val in values.items() if _wanted(key, metrics)]
    if not objects or "host" in objects:
        h = sim.state["host"]
        host = {"CPU/Load/User": "12.00%", "CPU/Load/Kernel": "3.00%",
                "RAM/Usage/Used": f"{(h['memory'] - h['available']) * 1024} kB"}  # fmt: skip
        rows += [("host", key, val) for key, val in host.items() if _wanted(key, metrics)]
    text = f"{'Object':<15} {'Metric':<40} Values\n{'-' * 15} {'-' * 40} {'-' * 44}\n"
    return text + "".join(f"{o:<15} {m:<40} {v}\n" for o, m, v in rows)


def _wanted(key: str, metrics: list[str]) -> bool:
    names = [part for m in metrics for part in m.split(",") if part]
    return not names or any(key == n or key.startswith(n.rstrip("*").rstrip("/") + "/") for n in names)


LISTS: dict[str, Callable[[Sim], str]] = {
    "hostinfo": _hostinfo,
    "hdds": _hdds,
    "bridgedifs": lambda sim: _interfaces(sim.state["bridgedifs"]),
    "hostonlyifs": lambda sim: _interfaces(sim.state["hostonlyifs"]),
    "natnets": _natnets,
    "natnetworks": _natnets,
    "ostypes": _ostypes,
    "systemproperties": _systemproperties,
    "dvds": lambda sim: "",
    "floppies": lambda sim: "",
}
