"""Disk and snapshot commands: createmedium, clonemedium, closemedium, showmediuminfo, snapshot, clonevm,
export and import (OVA). Images are real files written by qemu-img in VDI, VMDK or VHD (qemu's 'vpc')."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Any

from ._cli import Args, SimExit, api_error
from ._lists import mediuminfo
from ._render import snapshot_lines
from ._state import EXTENSION, QEMU_FORMAT, Sim, now_text
from ._vmcmds import RUNNING, lock_fault, need_vm, set_state

__all__ = ["DISK_COMMANDS", "open_medium"]

PROGRESS = "0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\n"
_PROBED = {"vdi": "VDI", "vmdk": "VMDK", "vpc": "VHD", "raw": "RAW"}


def qemu_img(*args: str) -> str:
    """Run qemu-img (the stand-in's own small runner: it starts without importing hvkit, which keeps each
    VBoxManage run fast; hvkit itself runs qemu-img through ``hvkit.driver.qemu_img``)."""
    exe = shutil.which("qemu-img")
    if exe is None:
        raise SimExit(1, "VBoxManage: error: VD: qemu-img (used by the hvkit stand-in) is not installed\n")
    timeout = 24 * 3600 if args[0] == "convert" else 600
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise SimExit(1, f"VBoxManage: error: VD: {(proc.stderr or proc.stdout).strip()}\n")
    return proc.stdout


def _file_error(message: str, context: str) -> SimExit:
    return api_error(message, "VBOX_E_FILE_ERROR", "0x80bb0004", "MediumWrap", "IMedium", context)


def _capacity(path: str, fmt: str) -> int:
    info = json.loads(qemu_img("info", "--output=json", "-U", "-f", QEMU_FORMAT.get(fmt, "raw"), path))
    return int(info["virtual-size"])


def open_medium(sim: Sim, ref: str) -> dict[str, Any]:
    """The registered medium by UUID or path; an unregistered image file is opened (registered) first."""
    medium = sim.find_medium(ref)
    if medium is not None:
        return medium
    path = str(Path(ref).absolute())
    if not Path(path).is_file():
        raise _file_error(f"Could not find file for the medium '{path}' (VERR_FILE_NOT_FOUND)",
                          "OpenMedium(Bstr(pszFilenameOrUuid).raw(), enmDevType, enmAccessMode, ...)")  # fmt: skip
    probed = json.loads(qemu_img("info", "--output=json", "-U", path)).get("format", "raw")
    fmt = _PROBED.get(probed, "RAW")
    return sim.add_medium(path, fmt, _capacity(path, fmt))


def _copy_sparse(src: str, dst: str) -> None:
    subprocess.run(["cp", "--sparse=always", src, dst], check=True, capture_output=True, timeout=3600)


def createmedium(sim: Sim, args: Args) -> str:
    filename = args.get("--filename", "-filename")
    if not filename:
        raise SimExit(2, "VBoxManage: error: Parameters --filename is required\n")
    fmt = (args.get("--format", "-format") or "VDI").upper()
    if fmt not in QEMU_FORMAT:
        raise SimExit(1, f"VBoxManage: error: Invalid format '{fmt}'\n")
    path = str(Path(filename if Path(filename).suffix else f"{filename}.{EXTENSION[fmt]}").absolute())
    size_bytes = args.get("--sizebyte")
    size = int(size_bytes) if size_bytes is not None else int(args.get("--size", "-size") or 0) << 20
    if Path(path).exists() or sim.find_medium(path):
        raise _file_error(f"Could not create the medium storage unit '{path}'.\nVBoxManage: error: VD: error "
                          f"VERR_ALREADY_EXISTS creating the image '{path}'", "CreateBaseStorage(...)")  # fmt: skip
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    extra = ["-o", "force_size=on"] if fmt == "VHD" else []
    qemu_img("create", "-q", "-f", QEMU_FORMAT[fmt], *extra, path, str(size))
    medium = sim.add_medium(path, fmt, size)
    return f"{PROGRESS}Medium created. UUID: {medium['uuid']}\n"


def clonemedium(sim: Sim, args: Args) -> str:
    if len(args.positional) < 2:
        raise SimExit(2, "VBoxManage: error: Mandatory input or output file parameter missing\n")
    src = open_medium(sim, args.positional[0])
    if args.has("--existing"):  # write into a registered medium, keeping its format and UUID
        dst = sim.find_medium(args.positional[1])
        if dst is None:
            raise _file_error(f"Could not find file for the medium '{Path(args.positional[1]).absolute()}' "
                              "(VERR_FILE_NOT_FOUND)", "OpenMedium(...)")  # fmt: skip
        if src["capacity"] > dst["capacity"]:
            text = f"Cannot copy the medium '{src['location']}': it is larger than '{dst['location']}'"
            raise api_error(text, "VBOX_E_INVALID_OBJECT_STATE", "0x80bb0007", "MediumWrap", "IMedium", "CloneTo(...)")
        src_fmt, dst_fmt = QEMU_FORMAT.get(src["format"], "raw"), QEMU_FORMAT.get(dst["format"], "raw")
        qemu_img("convert", "-q", "-n", "-f", src_fmt, "-O", dst_fmt, src["location"], dst["location"])
        return f"{PROGRESS}Clone medium created in format '{dst['format']}'. UUID: {dst['uuid']}\n"
    target = str(Path(args.positional[1]).absolute())
    fmt = (args.get("--format", "-format") or src["format"]).upper()
    if fmt not in (*QEMU_FORMAT, "RAW"):
        raise SimExit(1, f"VBoxManage: error: Invalid format '{fmt}'\n")
    if Path(target).exists():
        raise _file_error(f"Cannot create the medium '{target}': the file exists already",
                          "CloneTo(pDstMedium, ComSafeArrayAsInParam(l_variants), NULL, ...)")  # fmt: skip
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    out_fmt = QEMU_FORMAT.get(fmt, "raw")
    extra = ["-o", "force_size=on"] if fmt == "VHD" else []
    qemu_img(
        "convert", "-q", "-f", QEMU_FORMAT.get(src["format"], "raw"), "-O", out_fmt, *extra, src["location"], target
    )
    clone = sim.add_medium(target, fmt, src["capacity"])
    return f"{PROGRESS}Clone medium created in format '{fmt}'. UUID: {clone['uuid']}\n"


def closemedium(sim: Sim, args: Args) -> str:
    if not args.positional:
        raise SimExit(2, "VBoxManage: error: Incorrect parameters\n")
    medium = sim.find_medium(args.positional[0])
    if medium is None:
        raise _file_error(f"Could not find file for the medium '{Path(args.positional[0]).absolute()}' "
                          "(VERR_FILE_NOT_FOUND)", "OpenMedium(...)")  # fmt: skip
    users = sim.users_of(medium["uuid"])
    if users:
        raise api_error(f"Medium '{medium['location']}' cannot be closed because it is still attached to "
                        f"{len(users)} virtual machines", "VBOX_E_OBJECT_IN_USE", "0x80bb000c", "MediumWrap",
                        "IMedium", "Close()")  # fmt: skip
    children = sim.children_of(medium["uuid"])
    if children:
        raise api_error(f"Cannot close medium '{medium['location']}' because it has {len(children)} child media",
                        "VBOX_E_OBJECT_IN_USE", "0x80bb000c", "MediumWrap", "IMedium", "Close()")  # fmt: skip
    sim.state["media"].remove(medium)
    if args.has("--delete"):
        Path(medium["location"]).unlink(missing_ok=True)
        return PROGRESS
    return ""


def showmediuminfo(sim: Sim, args: Args) -> str:
    ref = args.positional[0] if args.positional else ""
    medium = sim.find_medium(ref)
    if medium is None:
        raise _file_error(f"Could not find file for the medium '{Path(ref).absolute()}' (VERR_FILE_NOT_FOUND)",
                          "OpenMedium(...)")  # fmt: skip
    return mediuminfo(sim, medium)


# -- snapshots ----------------------------------------------------------------------------------------
def _config(vm: dict[str, Any]) -> dict[str, Any]:
    keys = ("memory", "cpus", "firmware", "description", "ostype", "nics", "attachments", "controllers", "vrde")
    return copy.deepcopy({k: vm.get(k) for k in keys})


def _find_snapshot(vm: dict[str, Any], ref: str) -> dict[str, Any]:
    for snap in vm["snapshots"]:
        if snap["uuid"] == ref.strip("{}") or snap["name"] == ref:
            found: dict[str, Any] = snap
            return found
    raise api_error(f"Could not find a snapshot named '{ref}'", "VBOX_E_OBJECT_NOT_FOUND", "0x80bb0001",
                    "MachineWrap", "IMachine", "FindSnapshot(Bstr(pszSnapshotName).raw(), ...)")  # fmt: skip


def snapshot(sim: Sim, args: Args) -> str:
    if len(args.positional) < 2:
        raise SimExit(2, "VBoxManage: error: Not enough parameters\n")
    vm, action = need_vm(sim, args.positional[0]), args.positional[1]
    if action == "list":
        if not vm["snapshots"]:
            raise SimExit(1, "", "This machine does not have any snapshots\n")
        return "".join(f"{line}\n" for line in snapshot_lines(vm))
    lock_fault(sim, "snapshot", vm)
    if action == "take":
        return _take(sim, vm, args)
    if action in ("restore", "restorecurrent"):
        if vm["state"] in RUNNING:
            raise api_error("Cannot restore a snapshot of a running machine", "VBOX_E_INVALID_VM_STATE",
                            "0x80bb0002", "SessionMachine", "IMachine", "RestoreSnapshot(...)")  # fmt: skip
        ref = vm.get("current_snapshot") if action == "restorecurrent" else args.positional[2]
        snap = _find_snapshot(vm, ref or "")
        for medium_uuid, saved in snap["disks"].items():
            medium = sim.find_medium(medium_uuid)
            if medium is not None:
                _copy_sparse(saved, medium["location"])
        vm.update(copy.deepcopy(snap["config"]))
        vm["current_snapshot"] = snap["uuid"]
        set_state(vm, "saved" if snap["online"] else "poweroff")
        if snap["online"]:
            vm["state_file"] = snap.get("state_file", "")
        return f"Restoring snapshot '{snap['name']}' ({snap['uuid']})\n{PROGRESS}"
    if action == "delete":
        return _delete(sim, vm, _find_snapshot(vm, args.positional[2] if len(args.positional) > 2 else ""))
    raise SimExit(2, f"VBoxManage: error: Invalid parameter '{action}'\n")


def _take(sim: Sim, vm: dict[str, Any], args: Args) -> str:
    if len(args.positional) < 3:
        raise SimExit(2, "VBoxManage: error: Missing snapshot name\n")
    snap_uuid = str(uuid.uuid4())
    folder = Path(vm["cfgfile"]).parent / "Snapshots"
    folder.mkdir(parents=True, exist_ok=True)
    disks = {}
    for att in vm["attachments"]:
        medium = sim.find_medium(att.get("medium") or "")
        if medium is not None and att["type"] == "hdd":
            saved = str(folder / f"{{{snap_uuid}}}-{medium['uuid']}.{EXTENSION.get(medium['format'], 'img')}")
            _copy_sparse(medium["location"], saved)
            disks[medium["uuid"]] = saved
    online = vm["state"] in RUNNING
    snap = {"uuid": snap_uuid, "name": args.positional[2], "description": args.get("--description", "-description",
            "-desc") or "", "parent": vm.get("current_snapshot"), "time": now_text(), "online": online,
            "config": _config(vm), "disks": disks}  # fmt: skip
    if online:
        state_file = folder / f"{{{snap_uuid}}}.sav"
        state_file.write_bytes(b"saved state\n")
        snap["state_file"] = str(state_file)
    vm["snapshots"].append(snap)
    vm["current_snapshot"] = snap_uuid
    return f"{PROGRESS}Snapshot taken. UUID: {snap_uuid}\n"


def _delete(sim: Sim, vm: dict[str, Any], snap: dict[str, Any]) -> str:
    linked = [m for m in sim.state["media"] if m.get("linked_snapshot") == snap["uuid"]]
    if linked:  # VirtualBox will not merge a snapshot's disk that linked clones' disks hang on too
        parent = sim.find_medium(linked[0].get("parent") or "") or {"location": linked[0]["location"]}
        raise api_error(f"Hard disk '{parent['location']}' has more than one child hard disk ({len(linked) + 1})",
                        "E_FAIL", "0x80004005", "SessionMachine", "IMachine", "DeleteSnapshot(...)")  # fmt: skip
    children = [s for s in vm["snapshots"] if s.get("parent") == snap["uuid"]]
    if len(children) > 1:
        raise api_error(f"Snapshot '{snap['name']}' of the machine '{vm['name']}' has more than one child "
                        f"snapshot ({len(children)})", "VBOX_E_INVALID_OBJECT_STATE", "0x80bb0007",
                        "SessionMachine", "IMachine", "DeleteSnapshot(...)")  # fmt: skip
    for child in children:
        child["parent"] = snap.get("parent")
    if vm.get("current_snapshot") == snap["uuid"]:
        vm["current_snapshot"] = snap.get("parent")
    for saved in [*snap["disks"].values(), snap.get("state_file")]:
        if isinstance(saved, str) and saved:
            Path(saved).unlink(missing_ok=True)
    vm["snapshots"].remove(snap)
    return f"Deleting snapshot '{snap['name']}' ({snap['uuid']})\n{PROGRESS}"


# -- clones ---------------------------------------------------------------------------------------------
def clonevm(sim: Sim, args: Args) -> str:
    src = need_vm(sim, args.positional[0] if args.positional else None)
    lock_fault(sim, "clonevm", src)
    name = args.get("--name") or f"{src['name']} Clone"
    options = {o.strip().lower() for o in (args.get("--options") or "").split(",") if o.strip()}
    snap_ref = args.get("--snapshot")
    if "link" in options and not snap_ref:
        raise api_error("Linked clone can only be created from a snapshot", "E_INVALIDARG", "0x80070057",
                        "MachineWrap", "IMachine", "CloneTo(...)")  # fmt: skip
    base = args.get("--basefolder") or sim.state["machine_folder"]
    cfg = f"{base}/{name}/{name}.vbox"
    if Path(cfg).exists() or any(vm["name"] == name for vm in sim.state["vms"]):
        raise api_error(f"Machine settings file '{cfg}' already exists", "VBOX_E_FILE_ERROR", "0x80bb0004",
                        "MachineWrap", "IMachine", "CreateMachine(...)")  # fmt: skip
    snap = _find_snapshot(src, snap_ref) if snap_ref else None
    config = copy.deepcopy(snap["config"] if snap else _config(src))
    Path(cfg).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg).write_text("<VirtualBox/>\n")
    for n, att in enumerate(a for a in config["attachments"] if a["type"] == "hdd" and a.get("medium")):
        medium = sim.find_medium(att["medium"])
        if medium is None:
            continue
        content = snap["disks"].get(medium["uuid"], medium["location"]) if snap else medium["location"]
        target = f"{base}/{name}/{name}-disk{n + 1}.{EXTENSION.get(medium['format'], 'vdi')}"
        _copy_sparse(content, target)  # linked: the child starts as the parent's content
        parent = medium["uuid"] if "link" in options else None
        added = sim.add_medium(target, medium["format"], medium["capacity"], parent)
        if parent and snap:
            added["linked_snapshot"] = snap["uuid"]  # (the stand-in keeps no disk per snapshot: it notes the link)
        att["medium"] = added["uuid"]
    if "keepallmacs" not in options:
        for nic in config["nics"]:
            nic["mac"] = sim.new_mac()
    vm = {**config, "name": name, "uuid": args.get("--uuid") or str(uuid.uuid4()), "cfgfile": cfg,
          "state": "poweroff", "state_time": now_text(), "snapshots": [], "current_snapshot": None,
          "guestprops": {}, "extradata": copy.deepcopy(src.get("extradata", {}))}  # fmt: skip
    if args.has("--register"):
        sim.state["vms"].append(vm)
    return f'{PROGRESS}Machine has been successfully cloned as "{name}"\n'


# -- appliances ---------------------------------------------------------------------------------------
def export(sim: Sim, args: Args) -> str:
    """An OVA: a tar with the VM's description (JSON inside an OVF envelope) and streamOptimized VMDKs."""
    vm = need_vm(sim, args.positional[0] if args.positional else None)
    output = args.get("--output")
    if not output:
        raise SimExit(2, "VBoxManage: error: Missing --output argument with export\n")
    work = Path(output + ".parts")
    work.mkdir(parents=True, exist_ok=True)
    disks = []
    for n, att in enumerate(a for a in vm["attachments"] if a["type"] == "hdd" and a.get("medium")):
        medium = sim.find_medium(att["medium"]) or {}
        disk = work / f"{vm['name']}-disk{n + 1:03d}.vmdk"
        qemu_img("convert", "-q", "-f", QEMU_FORMAT.get(medium.get("format", "VDI"), "raw"), "-O", "vmdk", "-o",
                 "subformat=streamOptimized", medium["location"], str(disk))  # fmt: skip
        disks.append(disk)
    desc = json.dumps({k: vm[k] for k in ("name", "memory", "cpus", "firmware", "ostype", "description", "nics")})
    ovf = work / f"{vm['name']}.ovf"
    ovf.write_text(f'<?xml version="1.0"?>\n<Envelope ovf:version="1.0"><!-- hvkit-vbox-sim {desc} --></Envelope>\n')
    with tarfile.open(output, "w") as tar:
        for part in (ovf, *disks):
            tar.add(part, arcname=part.name)
    shutil.rmtree(work)
    return f"{PROGRESS}Successfully exported 1 machine(s).\n"


def import_(sim: Sim, args: Args) -> str:
    from ._vmcmds import createvm

    if not args.positional or not Path(args.positional[0]).is_file():
        raise SimExit(1, "VBoxManage: error: Appliance file not found\n")
    with tarfile.open(args.positional[0]) as tar:
        ovf = next(m for m in tar.getmembers() if m.name.endswith(".ovf"))
        ovf_file = tar.extractfile(ovf)
        text = ovf_file.read().decode() if ovf_file is not None else ""
        desc = json.loads(text.split("hvkit-vbox-sim ", 1)[1].rsplit(" -->", 1)[0])
        name = args.get("--vmname") or desc["name"]
        made = Args()
        made.options = [("--name", name, None), ("--register", None, None), ("--ostype", desc["ostype"], None)]
        createvm(sim, made)
        vm = sim.find_vm(name) or {}
        vm.update({k: desc[k] for k in ("memory", "cpus", "firmware", "description", "nics")})
        vm["controllers"] = [{"name": "SATA", "bus": "sata", "type": "IntelAhci", "maxports": 30, "portcount": 1}]
        folder = Path(vm["cfgfile"]).parent
        for port, member in enumerate(m for m in tar.getmembers() if m.name.endswith(".vmdk")):
            tar.extract(member, folder, filter="data")
            target = folder / member.name.replace(".vmdk", ".vdi")
            qemu_img("convert", "-q", "-f", "vmdk", "-O", "vdi", str(folder / member.name), str(target))
            (folder / member.name).unlink()
            medium = sim.add_medium(str(target), "VDI", _capacity(str(target), "VDI"))
            vm["attachments"].append(
                {"ctl": "SATA", "port": port, "device": 0, "type": "hdd", "medium": medium["uuid"]}
            )
            vm["controllers"][0]["portcount"] = port + 1
        set_state(vm, "poweroff")
    return f"{PROGRESS}Successfully imported the appliance.\n"


DISK_COMMANDS = {
    "createmedium": createmedium,
    "createhd": createmedium,
    "clonemedium": clonemedium,
    "clonehd": clonemedium,
    "closemedium": closemedium,
    "showmediuminfo": showmediuminfo,
    "snapshot": snapshot,
    "clonevm": clonevm,
    "export": export,
    "import": import_,
}
