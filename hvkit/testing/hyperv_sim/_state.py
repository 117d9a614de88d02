"""The Hyper-V host's state: VMs, switches, checkpoints and VHD/VHDX files (real files made by qemu-img)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import attrs

from ...driver import qemu_img
from ._output import PSError

__all__ = ["ENUMS", "MIGRATION_AUTH", "VHD", "HostState", "Snapshot", "VirtualMachine"]

_DATA = json.loads(Path(__file__).with_name("cmdlets.json").read_text())
ENUMS: dict[str, dict[str, int]] = _DATA["enums"]
STATE = ENUMS["VMState"]
CONTROLLER = ENUMS["ControllerType"]
# Microsoft.HyperV.PowerShell.MigrationAuthenticationType (not in the reflection dump): CredSSP 0, Kerberos 1
MIGRATION_AUTH = {"CredSSP": 0, "Kerberos": 1}


@attrs.define
class Drive:
    controller_type: int
    controller_number: int
    location: int
    path: str


@attrs.define
class Adapter:
    id: str
    name: str
    mac: str
    switch: str | None


@attrs.define
class Snapshot:
    id: str
    name: str
    parent: str | None
    created: dt.datetime
    type: int  # SnapshotType: Standard 0
    state: int  # the VM state captured: Saved (6) when memory was captured
    config: dict[str, Any]


@attrs.define
class VirtualMachine:
    id: str
    name: str
    generation: int
    cpus: int
    memory: int
    path: str
    host: str
    created: dt.datetime
    state: int = STATE["Off"]
    notes: str = ""
    secure_boot: int = ENUMS["OnOffState"]["On"]
    secure_boot_template: str = "MicrosoftWindows"
    checkpoint_type: int = ENUMS["CheckpointType"]["Production"]
    drives: list[Drive] = attrs.field(factory=list)
    dvds: list[str] = attrs.field(factory=list)
    adapters: list[Adapter] = attrs.field(factory=list)
    snapshots: dict[str, Snapshot] = attrs.field(factory=dict)
    current: str | None = None  # ParentSnapshotId
    metering: bool = False
    started: dt.datetime | None = None
    shutdown_seconds: float = 0.0  # how long the guest takes to answer a shutdown request (tests set it)


@attrs.define
class VHD:
    path: str
    size: int
    vhd_format: int  # VhdFormat: VHD 2, VHDX 3
    vhd_type: int  # VhdType: Fixed 2, Dynamic 3, Differencing 4
    parent: str | None = None
    qemu_format: str = "vhdx"  # the file's format on this machine (qcow2 for differencing children)


class HostState:
    """One Hyper-V host. Windows paths (``C:\\...``) live under ``root/<drive letter>/`` on this machine."""

    def __init__(self, root: Path, name: str = "HV01", *, extra_drives: tuple[str, ...] = ("D",)) -> None:
        self.root = root
        self.name = name
        self.fqdn = f"{name.lower()}.hvkit.test"
        self.lock = threading.RLock()
        self.vms: dict[str, VirtualMachine] = {}
        self.vhds: dict[str, VHD] = {}  # by lower-cased Windows path
        self.switches: list[dict[str, Any]] = [
            {
                "Id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/Default Switch")),
                "Name": "Default Switch",
                "SwitchType": 1,
            },
            {"Id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/External")), "Name": "External", "SwitchType": 2},
        ]
        self.vm_path = "C:\\Hyper-V"
        self.vhd_path = "C:\\Hyper-V\\Virtual Hard Disks"
        self.cpus = 16
        self.memory = 64 * 1024**3
        self.peers: dict[str, HostState] = {}  # hosts Move-VM may send VMs to (live migration set up)
        self.migration_enabled = True  # Get-VMHost VirtualMachineMigrationEnabled
        self.migration_auth = MIGRATION_AUTH["CredSSP"]  # VirtualMachineMigrationAuthenticationType (the default)
        for drive in ("C", *extra_drives):
            (root / drive).mkdir(parents=True, exist_ok=True)
        self.local(self.vhd_path).mkdir(parents=True, exist_ok=True)
        self.local("D:\\VMs").mkdir(parents=True, exist_ok=True) if "D" in extra_drives else None

    # -- paths ----------------------------------------------------------------------------------------
    def local(self, path: str) -> Path:
        """The file on this machine behind a Windows path; PSError for a path outside the drives."""
        text = path.replace("/", "\\")
        if len(text) < 2 or text[1] != ":" or not text[0].isalpha():
            raise PSError(
                f"Cannot find drive. A drive with the name '{text.split(':')[0]}' does not exist.",
                "ObjectNotFound",
                "DriveNotFound,Microsoft.PowerShell.Commands.TestPathCommand",
                exception="System.Management.Automation.DriveNotFoundException",
                target=text,
                target_type="String",
            )
        parts = [p for p in text[2:].split("\\") if p]
        if any(p in ("..", ".") for p in parts):
            raise PSError("Relative path segments are not accepted by this host model.", "InvalidArgument", "BadPath")
        drive = self.root / text[0].upper()
        if not drive.is_dir():
            raise PSError(
                f"Cannot find drive. A drive with the name '{text[0]}' does not exist.",
                "ObjectNotFound",
                "DriveNotFound",
                exception="System.Management.Automation.DriveNotFoundException",
                target=text[0],
                target_type="String",
            )
        return drive.joinpath(*parts)

    def exists(self, path: str) -> bool:
        try:
            return self.local(path).exists()
        except PSError:
            return False

    # -- VHDs -----------------------------------------------------------------------------------------
    def new_vhd(self, path: str, size: int, *, parent: str | None = None, fixed: bool = False) -> VHD:
        local = self.local(path)
        if local.exists():
            raise PSError(
                f"Failed to create the virtual hard disk.\r\nThe system failed to create '{path}': The file exists. "
                "(0x80070050).",
                "ResourceExists",
                "CreateVirtualHardDisk,Microsoft.Vhd.PowerShell.Cmdlets.NewVHD",
                activity="New-VHD",
            )
        if not local.parent.is_dir():
            raise PSError(
                f"Failed to create the virtual hard disk.\r\nThe system failed to create '{path}': The system cannot "
                "find the path specified. (0x80070003).",
                "ObjectNotFound",
                "ObjectNotFound,Microsoft.Vhd.PowerShell.Cmdlets.NewVHD",
                activity="New-VHD",
            )
        fmt = "vpc" if path.lower().endswith(".vhd") else "vhdx"
        if parent is not None:
            base = self.vhd(parent)
            # qemu-img cannot write a differencing VHDX: the child is a qcow2 overlay on the real parent file,
            # which reads the same and is reported as Hyper-V reports a differencing VHDX
            qemu_img("create", "-f", "qcow2", "-b", str(self.local(parent)), "-F", _fmt_of(base), str(local))
            vhd = VHD(path, base.size, 2 if fmt == "vpc" else 3, ENUMS["VhdType"]["Differencing"], parent, "qcow2")
        else:
            sub = ["-o", "subformat=fixed" if fixed else "subformat=dynamic"]
            qemu_img("create", "-f", fmt, *sub, str(local), str(size))
            vhd = VHD(
                path, size, 2 if fmt == "vpc" else 3, ENUMS["VhdType"]["Fixed" if fixed else "Dynamic"], None, fmt
            )
        self.vhds[path.lower()] = vhd
        return vhd

    def vhd(self, path: str) -> VHD:
        known = self.vhds.get(path.lower())
        if known is not None and self.local(path).exists():
            return known
        local = self.local(path)
        if not local.is_file():
            raise PSError(
                f"Getting the mounted storage instance for the path '{path}' failed.\r\nThe operation cannot be "
                "performed while the object is in its current state.",
                "ObjectNotFound",
                "ObjectNotFound,Microsoft.Vhd.PowerShell.Cmdlets.GetVHD",
                activity="Get-VHD",
                target=path,
                target_type="String",
            )
        info = json.loads(qemu_img("info", "--output=json", str(local)))
        if info["format"] not in ("vhdx", "vpc", "qcow2"):  # qcow2: this model's differencing children
            raise PSError(
                f"Getting the mounted storage instance for the path '{path}' failed.\r\nThe file or directory is "
                "corrupted and unreadable.",
                "InvalidData",
                "InvalidData,Microsoft.Vhd.PowerShell.Cmdlets.GetVHD",
                activity="Get-VHD",
                target=path,
                target_type="String",
            )
        fmt = 2 if info["format"] == "vpc" else 3
        parent = info.get("full-backing-filename") or info.get("backing-filename")
        vhd = VHD(
            path,
            int(info["virtual-size"]),
            fmt,
            4 if parent else 3,
            self.windows(parent) if parent else None,
            info["format"],
        )
        self.vhds[path.lower()] = vhd
        return vhd

    def windows(self, local: str) -> str:
        rel = Path(local).resolve().relative_to(self.root.resolve())
        return f"{rel.parts[0]}:\\" + "\\".join(rel.parts[1:])

    def remove_file(self, path: str, recurse: bool = False) -> None:
        local = self.local(path)
        if local.is_dir():
            if not recurse:
                raise PSError(
                    "The item has children and the Recurse parameter was not specified.",
                    "WriteError",
                    "DirectoryNotEmpty,Microsoft.PowerShell.Commands.RemoveItemCommand",
                    activity="Remove-Item",
                )
            shutil.rmtree(local)
        elif local.exists():
            local.unlink()
        else:
            raise PSError(
                f"Cannot find path '{path}' because it does not exist.",
                "ObjectNotFound",
                "PathNotFound,Microsoft.PowerShell.Commands.RemoveItemCommand",
                activity="Remove-Item",
                exception="System.Management.Automation.ItemNotFoundException",
                target=path,
                target_type="String",
            )
        prefix = path.lower().rstrip("\\")
        for key in [k for k in self.vhds if k == prefix or k.startswith(prefix + "\\")]:
            del self.vhds[key]

    def file_size(self, path: str) -> int:
        try:
            return self.local(path).stat().st_blocks * 512
        except (OSError, PSError):
            return 0

    # -- VMs ------------------------------------------------------------------------------------------
    def vms_named(self, name: str) -> list[VirtualMachine]:
        return [vm for vm in self.vms.values() if vm.name.lower() == name.lower()]

    def attached(self) -> dict[str, VirtualMachine]:
        return {d.path.lower(): vm for vm in self.vms.values() for d in vm.drives}


def _fmt_of(vhd: VHD) -> str:
    return vhd.qemu_format
