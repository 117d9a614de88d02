"""VM commands: createvm, modifyvm, storagectl, storageattach, startvm, controlvm, unregistervm, showvminfo,
guestproperty, getextradata, setextradata, metrics."""

from __future__ import annotations

import ipaddress
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from ._cli import Args, SimExit, api_error, lock_error, not_found, syntax_error
from ._lists import guestproperties, metrics_query
from ._render import OS_TYPES, showvminfo_human, showvminfo_mr
from ._state import Sim, now_text

__all__ = ["VM_COMMANDS", "need_vm"]

RUNNING = {"running", "paused"}
CONTROLLERS = {"ide": ("PIIX4", 2, 2), "sata": ("IntelAhci", 30, 1), "scsi": ("LsiLogic", 16, 16),
               "sas": ("LsiLogicSas", 255, 8), "pcie": ("NVMe", 255, 1), "virtio": ("VirtioSCSI", 255, 1)}  # fmt: skip
MAX_CPUS = 32
HOST_ONLY_RANGE = ipaddress.ip_network("192.168.56.0/21")


def need_vm(sim: Sim, ref: str | None) -> dict[str, Any]:
    if not ref:
        raise SimExit(2, "VBoxManage: error: Missing the VM name or UUID\n")
    vm = sim.find_vm(ref)
    if vm is None:
        raise not_found(ref)
    return vm


def lock_fault(sim: Sim, sub: str, vm: dict[str, Any]) -> None:
    """Injected 'already locked' errors: ``faults.lock[<subcommand>|"*"]`` counts down."""
    locks = sim.faults().get("lock", {})
    for key in (sub, "*"):
        if locks.get(key, 0) > 0:
            locks[key] -= 1
            raise lock_error(vm["name"], launching=sub == "startvm")


def not_mutable(vm: dict[str, Any]) -> SimExit:
    state = {"running": "Running", "paused": "Paused", "saved": "Saved"}.get(vm["state"], vm["state"])
    return api_error(f"The machine is not mutable (state is {state})", "VBOX_E_INVALID_VM_STATE", "0x80bb0002",
                     "SessionMachine", "IMachine", "LockMachine(a->session, LockType_Write)")  # fmt: skip


def set_state(vm: dict[str, Any], state: str) -> None:
    vm["state"] = state
    vm["state_time"] = now_text()


def createvm(sim: Sim, args: Args) -> str:
    name = args.get("--name", "-name")
    if not name:
        raise SimExit(2, "VBoxManage: error: Parameter --name is required\n")
    base = args.get("--basefolder", "-basefolder") or sim.state["machine_folder"]
    cfg = f"{base}/{name}/{name}.vbox"
    if Path(cfg).exists() or any(vm["cfgfile"] == cfg for vm in sim.state["vms"]):
        raise api_error(f"Machine settings file '{cfg}' already exists", "VBOX_E_FILE_ERROR", "0x80bb0004",
                        "MachineWrap", "IMachine", "CreateMachine(bstrSettingsFile.raw(), ...)")  # fmt: skip
    ostype = args.get("--ostype", "-ostype") or "Other"
    if ostype not in OS_TYPES:
        raise api_error(f"Guest OS type '{ostype}' is invalid", "E_INVALIDARG", "0x80070057", "VirtualBoxWrap",
                        "IVirtualBox", "CreateMachine(...)")  # fmt: skip
    vm_uuid = (args.get("--uuid", "-uuid") or str(uuid.uuid4())).strip("{}")
    Path(cfg).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg).write_text(
        f'<?xml version="1.0"?>\n<VirtualBox><Machine uuid="{{{vm_uuid}}}" name="{name}"/></VirtualBox>\n'
    )
    vm = {"name": name, "uuid": vm_uuid, "ostype": ostype, "cfgfile": cfg, "memory": 128, "cpus": 1,
          "firmware": "BIOS", "description": "", "state": "poweroff", "state_time": now_text(), "controllers": [],
          "attachments": [], "nics": [{"index": 1, "attach": "nat", "type": "82540EM", "mac": sim.new_mac()}],
          "snapshots": [], "current_snapshot": None, "guestprops": {}, "vrde": False}  # fmt: skip
    registered = args.has("--register", "-register")
    if registered:
        sim.state["vms"].append(vm)
    done = "created and registered" if registered else "created"
    return f"Virtual machine '{name}' is {done}.\nUUID: {vm_uuid}\nSettings file: '{cfg}'\n"


_NIC_NET = {"--bridgeadapter": "bridged", "--bridge-adapter": "bridged", "--hostonlyadapter": "hostonly",
            "--host-only-adapter": "hostonly", "--intnet": "intnet", "--natnetwork": "natnetwork",
            "--nat-network": "natnetwork"}  # fmt: skip


def modifyvm(sim: Sim, args: Args) -> str:
    vm = need_vm(sim, args.positional[0] if args.positional else None)
    lock_fault(sim, "modifyvm", vm)
    if vm["state"] in RUNNING or vm["state"] == "saved":
        raise not_mutable(vm)
    cpus = args.get("--cpus")
    if cpus is not None and not 1 <= int(cpus) <= MAX_CPUS:
        raise api_error(f"Invalid virtual CPU count: {cpus} (must be in range [1, {MAX_CPUS}])", "E_INVALIDARG",
                        "0x80070057", "MachineWrap", "IMachine", "COMSETTER(CPUCount)(ValueUnion.u32)")  # fmt: skip
    for key, field in (("--memory", "memory"), ("--cpus", "cpus")):
        value = args.get(key)
        if value is not None:
            vm[field] = int(value)
    for option, field in (("--name", "name"), ("--description", "description"), ("--groups", "groups")):
        value = args.get(option)
        if value is not None:
            vm[field] = value
    ostype = args.get("--ostype", "--os-type")
    if ostype is not None:
        vm["ostype"] = ostype
    firmware = args.get("--firmware")
    if firmware is not None:
        vm["firmware"] = "BIOS" if firmware.lower() == "bios" else "EFI"
    nics = {n["index"]: n for n in vm["nics"]}
    for index, kind in args.indexed("--nic").items():
        nic = nics.setdefault(index, {"index": index, "type": "82540EM", "mac": sim.new_mac()})
        nic["attach"] = kind
    for index, model in args.indexed("--nictype", "--nic-type").items():
        nics.setdefault(index, {"index": index, "attach": "none", "mac": sim.new_mac()})["type"] = model
    for index, mac in args.indexed("--macaddress", "--mac-address").items():
        nics.setdefault(index, {"index": index, "attach": "none", "type": "82540EM"})["mac"] = (
            sim.new_mac() if mac == "auto" else mac.upper()
        )
    for option, kind in _NIC_NET.items():
        for index, net in args.indexed(option).items():
            nics.setdefault(index, {"index": index, "attach": kind, "type": "82540EM", "mac": sim.new_mac()})
            nics[index]["net"] = net
    vm["nics"] = [nics[i] for i in sorted(nics)]
    vrde = args.get("--vrde")
    if vrde is not None:
        vm["vrde"] = vrde == "on"
    for names, field in ((("--vrdeport", "--vrde-port"), "vrde_ports"), (("--vrdeaddress", "--vrde-address"),
                                                                          "vrde_address")):  # fmt: skip
        value = args.get(*names)
        if value is not None:
            vm[field] = value
    return ""


def storagectl(sim: Sim, args: Args) -> str:
    vm = need_vm(sim, args.positional[0] if args.positional else None)
    lock_fault(sim, "storagectl", vm)
    if vm["state"] in RUNNING:
        raise not_mutable(vm)
    name = args.get("--name") or ""
    if args.has("--remove"):
        vm["controllers"] = [c for c in vm["controllers"] if c["name"] != name]
        vm["attachments"] = [a for a in vm["attachments"] if a["ctl"] != name]
        return ""
    bus = (args.get("--add") or "").lower()
    if bus not in CONTROLLERS:
        raise SimExit(1, f"VBoxManage: error: Invalid --add argument '{bus}'\n")
    if any(c["name"] == name for c in vm["controllers"]):
        raise api_error(f"Storage controller named '{name}' already exists", "VBOX_E_OBJECT_IN_USE", "0x80bb000c",
                        "SessionMachine", "IMachine", "AddStorageController(...)")  # fmt: skip
    kind, maxports, ports = CONTROLLERS[bus]
    kind = args.get("--controller") or kind
    ports = int(args.get("--portcount") or ports)
    vm["controllers"].append({"name": name, "bus": bus, "type": kind, "maxports": maxports, "portcount": ports})
    return ""


def storageattach(sim: Sim, args: Args) -> str:
    from ._diskcmds import open_medium

    vm = need_vm(sim, args.positional[0] if args.positional else None)
    lock_fault(sim, "storageattach", vm)
    if vm["state"] in RUNNING:
        raise not_mutable(vm)
    ctl_name = args.get("--storagectl") or ""
    ctl = next((c for c in vm["controllers"] if c["name"] == ctl_name), None)
    if ctl is None:
        raise api_error(f"Could not find a storage controller named '{ctl_name}'", "VBOX_E_OBJECT_NOT_FOUND",
                        "0x80bb0001", "SessionMachine", "IMachine", "GetStorageControllerByName(...)")  # fmt: skip
    port, device = int(args.get("--port") or 0), int(args.get("--device") or 0)
    medium_ref = args.get("--medium") or "none"
    vm["attachments"] = [a for a in vm["attachments"] if (a["ctl"], a["port"], a["device"]) != (ctl_name, port, device)]
    if medium_ref == "none":
        return ""
    kind = args.get("--type") or "hdd"
    medium_uuid = None if medium_ref == "emptydrive" else open_medium(sim, medium_ref)["uuid"]
    if ctl["bus"] in ("sata", "pcie", "virtio") and port >= ctl["portcount"]:
        ctl["portcount"] = port + 1
    vm["attachments"].append({"ctl": ctl_name, "port": port, "device": device, "type": kind, "medium": medium_uuid})
    vm["attachments"].sort(
        key=lambda a: ([c["name"] for c in vm["controllers"]].index(a["ctl"]), a["port"], a["device"])
    )
    return ""


def _host_only_allowed(sim: Sim, vm: dict[str, Any]) -> None:
    for nic in vm["nics"]:
        if nic.get("attach") != "hostonly":
            continue
        itf = next((i for i in sim.state["hostonlyifs"] if i["name"] == nic.get("net")), None)
        if itf is not None and ipaddress.ip_address(itf["ip"]) not in HOST_ONLY_RANGE:
            raise api_error(f"Failed to open a session for the virtual machine {vm['name']}.\n"
                            f"VBoxManage: error: The host-only adapter '{itf['name']}' has the address {itf['ip']}, "
                            "outside the ranges allowed by /etc/vbox/networks.conf", "E_ACCESSDENIED", "0x80070005",
                            "ConsoleWrap", "IConsole", "LaunchVMProcess(...)")  # fmt: skip


def startvm(sim: Sim, args: Args) -> str:
    vm = need_vm(sim, args.positional[0] if args.positional else None)
    if vm["state"] in RUNNING:
        raise lock_error(vm["name"], launching=True)
    lock_fault(sim, "startvm", vm)
    _host_only_allowed(sim, vm)
    set_state(vm, "running")
    vm.pop("state_file", None)
    vm["vrde_active_port"] = int(str(vm.get("vrde_ports", "3389")).split(",")[0].split("-")[0])
    stamp = time.time_ns()
    props = {"/VirtualBox/GuestInfo/OS/Product": ["Linux", stamp]}
    nets = [n for n in vm["nics"] if n.get("attach", "none") != "none"]
    props["/VirtualBox/GuestInfo/Net/Count"] = [str(len(nets)), stamp]
    for i, nic in enumerate(nets):
        address = "10.0.2.15" if nic["attach"] == "nat" else f"192.168.56.{100 + i}"
        props[f"/VirtualBox/GuestInfo/Net/{i}/V4/IP"] = [address, stamp]
        props[f"/VirtualBox/GuestInfo/Net/{i}/MAC"] = [nic["mac"], stamp]
        props[f"/VirtualBox/GuestInfo/Net/{i}/Status"] = ["Up", stamp]
    vm["guestprops"] = props
    return f'Waiting for VM "{vm["name"]}" to power on...\nVM "{vm["name"]}" has been successfully started.\n'


def _stopped(vm: dict[str, Any], state: str = "poweroff") -> None:
    set_state(vm, state)
    vm["guestprops"] = {}
    vm.pop("vrde_active_port", None)


def controlvm(sim: Sim, args: Args) -> str:
    if len(args.positional) < 2:
        raise syntax_error(sim.version, "controlvm", "Not enough parameters")
    vm = need_vm(sim, args.positional[0])
    action = args.positional[1]
    if action not in set(_table_keywords(sim)):
        raise syntax_error(sim.version, "controlvm", f"Invalid parameter '{action}'")
    if vm["state"] not in RUNNING:
        raise SimExit(1, f"VBoxManage: error: Machine '{vm['name']}' is not currently running\n")
    lock_fault(sim, "controlvm", vm)
    if action == "poweroff":
        _stopped(vm)
    elif action in ("acpipowerbutton", "shutdown"):
        paused = vm["state"] == "paused"  # a paused guest does not see the button
        if (not paused and not sim.faults().get("acpi_ignored")) or "--force" in args.positional:
            _stopped(vm)
    elif action == "pause":
        set_state(vm, "paused")
    elif action == "resume" or action in ("reset", "reboot"):
        set_state(vm, "running")
    elif action == "savestate":
        folder = vm["cfgfile"].rsplit("/", 1)[0] + "/Snapshots"
        Path(folder).mkdir(parents=True, exist_ok=True)
        vm["state_file"] = f"{folder}/{now_text().replace(':', '-')}Z.sav"
        Path(vm["state_file"]).write_bytes(b"saved state\n")
        _stopped(vm, "saved")
    elif action == "vrde":
        vm["vrde"] = args.positional[2:3] == ["on"]
    else:
        raise SimExit(1, f"VBoxManage: error: '{action}' is not emulated by this stand-in\n")
    return "0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\n" if action != "pause" else ""


def _table_keywords(sim: Sim) -> list[str]:
    from ._cli import table

    keywords: list[str] = table()[sim.version]["controlvm"].get("keywords", [])
    return keywords


def discardstate(sim: Sim, args: Args) -> str:
    vm = need_vm(sim, args.positional[0] if args.positional else None)
    if vm["state"] != "saved":
        raise api_error("Machine in invalid state to discard its saved state", "VBOX_E_INVALID_VM_STATE",
                        "0x80bb0002", "SessionMachine", "IMachine", "DiscardSavedState(true)")  # fmt: skip
    if vm.get("state_file"):
        Path(vm.pop("state_file")).unlink(missing_ok=True)
    set_state(vm, "poweroff")
    return ""


def unregistervm(sim: Sim, args: Args) -> str:
    vm = need_vm(sim, args.positional[0] if args.positional else None)
    lock_fault(sim, "unregistervm", vm)
    if vm["state"] in RUNNING:
        raise api_error(f"Cannot unregister the machine '{vm['name']}' while it is locked",
                        "VBOX_E_INVALID_OBJECT_STATE", "0x80bb0007", "MachineWrap", "IMachine",
                        "Unregister(CleanupMode_DetachAllReturnHardDisksOnly, ...)")  # fmt: skip
    delete = args.has("--delete", "-delete", "--delete-all", "-delete-all")
    mine = {a["medium"] for a in vm["attachments"] if a.get("medium") and a["type"] == "hdd"}
    if delete:
        for medium_uuid in mine:
            others = [c for c in sim.children_of(medium_uuid) if c["uuid"] not in mine]
            if others:
                medium = sim.find_medium(medium_uuid) or {"location": medium_uuid}
                raise api_error(f"Medium '{medium['location']}' has {len(others)} child media; cannot delete it",
                                "VBOX_E_OBJECT_IN_USE", "0x80bb000c", "MediumWrap", "IMedium",
                                "DeleteConfig(ComSafeArrayAsInParam(aMedia), pProgress.asOutParam())")  # fmt: skip
    sim.state["vms"].remove(vm)
    if delete:
        for medium in [m for m in sim.state["media"] if m["uuid"] in mine]:
            Path(medium["location"]).unlink(missing_ok=True)
            sim.state["media"].remove(medium)
        shutil.rmtree(Path(vm["cfgfile"]).parent, ignore_errors=True)
        return "0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\n"
    return ""


def showvminfo(sim: Sim, args: Args) -> str:
    vm = need_vm(sim, args.positional[0] if args.positional else None)
    if args.has("--machinereadable", "-machinereadable"):
        return showvminfo_mr(sim, vm)
    return showvminfo_human(sim, vm)


def guestproperty(sim: Sim, args: Args) -> str:
    if len(args.positional) < 2:
        raise SimExit(2, "VBoxManage: error: Incorrect parameters\n")
    action, vm = args.positional[0], need_vm(sim, args.positional[1])
    if action == "enumerate":
        patterns = [p for p in (args.get("--patterns") or "").split("|") if p] + args.positional[2:]
        return guestproperties(sim, vm, patterns)
    if action == "get":
        value = vm.get("guestprops", {}).get(args.positional[2])
        return f"Value: {value[0]}\n" if value else "No value set!\n"
    if action == "set" and len(args.positional) >= 3:
        props = vm.setdefault("guestprops", {})
        if len(args.positional) >= 4:
            props[args.positional[2]] = [args.positional[3], time.time_ns()]
        else:
            props.pop(args.positional[2], None)
        return ""
    raise SimExit(2, f"VBoxManage: error: Unknown sub-command '{action}'\n")


def getextradata(sim: Sim, args: Args) -> str:
    """``getextradata <vm> <key>|enumerate``: ``Value: ...`` / ``No value set!``, or ``Key: ..., Value: ...``
    lines (VBoxManageMisc.cpp); any state, as IMachine::GetExtraData needs no session."""
    if len(args.positional) != 2:
        raise syntax_error(sim.version, "getextradata", "Incorrect number of parameters")
    data: dict[str, str] = need_vm(sim, args.positional[0]).get("extradata", {})
    key = args.positional[1]
    if key == "enumerate":
        return "".join(f"Key: {k}, Value: {v}\n" for k, v in sorted(data.items()))
    return f"Value: {data[key]}\n" if key in data else "No value set!\n"


def setextradata(sim: Sim, args: Args) -> str:
    """``setextradata <vm> <key> [<value>]``: no value (or an empty one) removes the key; any VM state, no
    session lock (IMachine::SetExtraData)."""
    if len(args.positional) < 2:
        raise syntax_error(sim.version, "setextradata", "Not enough parameters")
    if len(args.positional) > 3:
        raise syntax_error(sim.version, "setextradata", "Too many parameters")
    data = need_vm(sim, args.positional[0]).setdefault("extradata", {})
    key, value = args.positional[1], args.positional[2] if len(args.positional) == 3 else ""
    if value:
        data[key] = value
    else:
        data.pop(key, None)
    return ""


def metrics(sim: Sim, args: Args) -> str:
    if not args.positional:
        raise SimExit(2, "VBoxManage: error: Incorrect parameters\n")
    action, rest = args.positional[0], args.positional[1:]
    objects = [] if not rest or rest[0] == "*" else rest[0].split(",")
    wanted = rest[1:]
    if action == "setup":
        sim.state["metrics"]["setup"] = True
        return ""
    if action == "query":
        return metrics_query(sim, objects, wanted)
    raise SimExit(2, f"VBoxManage: error: Unknown sub-command '{action}'\n")


VM_COMMANDS = {
    "createvm": createvm,
    "modifyvm": modifyvm,
    "storagectl": storagectl,
    "storageattach": storageattach,
    "startvm": startvm,
    "controlvm": controlvm,
    "unregistervm": unregistervm,
    "discardstate": discardstate,
    "showvminfo": showvminfo,
    "guestproperty": guestproperty,
    "getextradata": getextradata,
    "setextradata": setextradata,
    "metrics": metrics,
}
