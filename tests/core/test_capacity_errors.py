"""One error for "the hypervisor has no room": InsufficientCapacity, from the sim end to end and from each
backend's vendor-error table with the vendor's real error shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hvkit
from hvkit import DiskFormat, DiskSpec, VMSpec, errors
from hvkit.hypervisor import Hypervisor

GIB = 1024**3


def test_insufficient_capacity_is_an_invalid_spec() -> None:
    assert issubclass(errors.InsufficientCapacity, errors.InvalidSpec)
    assert issubclass(errors.InsufficientCapacity, ValueError)
    assert "InsufficientCapacity" in errors.__all__
    with pytest.raises(errors.InvalidSpec):  # existing `except InvalidSpec` code keeps catching it
        raise errors.InsufficientCapacity("no room")


# -- sim: pools have a capacity; a volume past it is refused and nothing is left --------------------------------
@pytest.fixture
def hv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hypervisor]:
    monkeypatch.setenv("HVKIT_SIM_STATE_DIR", str(tmp_path / "sim"))
    with hvkit.connect("sim://capacity?pool_gib=2") as conn:
        yield conn


def _files(hv: Hypervisor, pool: str) -> set[str]:
    folder = Path(hv.pools.get(pool).extra["path"])
    return {p.name for p in folder.iterdir()}


def test_sim_volume_past_the_pool_is_refused_and_nothing_is_left(hv: Hypervisor) -> None:
    before, files = {v.id for v in hv.volumes.list("default")}, _files(hv, "default")
    free = hv.pools.get("default").free_bytes
    with pytest.raises(errors.InsufficientCapacity, match="bytes free"):
        hv.volumes.create("default", "too-big", 3, format="qcow2")
    assert {v.id for v in hv.volumes.list("default")} == before
    assert _files(hv, "default") == files
    assert hv.pools.get("default").free_bytes == free


def test_sim_pool_fills_up_exactly_then_refuses(hv: Hypervisor) -> None:
    hv.volumes.create("default", "half-1", 1, format="qcow2")
    hv.volumes.create("default", "half-2", 1, format="qcow2")
    assert hv.pools.get("default").free_bytes == 0
    with pytest.raises(errors.InsufficientCapacity):
        hv.volumes.create("default", "one-more", 1 / 1024, format="qcow2")
    hv.volumes.delete("default/half-2.qcow2")
    assert hv.volumes.create("default", "fits-again", 1, format="qcow2").capacity_bytes == GIB


def test_sim_vm_whose_disks_do_not_fit_is_not_made(hv: Hypervisor) -> None:
    volumes, files = {v.id for v in hv.volumes.list()}, _files(hv, "default")
    spec = VMSpec(
        name="no-room",
        disks=[DiskSpec(size_gib=1, pool="default", format="qcow2"), DiskSpec(size_gib=2, pool="default")],
    )
    with pytest.raises(errors.InsufficientCapacity):
        hv.vms.create(spec)
    assert [vm.name for vm in hv.vms.list()] == []
    assert {v.id for v in hv.volumes.list()} == volumes  # the first disk, made before, is gone again
    assert _files(hv, "default") == files


def test_sim_full_clone_past_the_pool_is_not_made(hv: Hypervisor) -> None:
    vm = hv.vms.create(VMSpec(name="source", disks=[DiskSpec(size_gib=1.25, pool="default", format="qcow2")]))
    volumes, files = {v.id for v in hv.volumes.list()}, _files(hv, "default")
    with pytest.raises(errors.InsufficientCapacity):
        hv.vms.clone(vm, "copy", linked=False)
    assert [v.name for v in hv.vms.list()] == ["source"]
    assert {v.id for v in hv.volumes.list()} == volumes
    assert _files(hv, "default") == files


@pytest.mark.parametrize("size", [0, -1])
def test_sim_refuses_a_volume_of_no_size(hv: Hypervisor, size: int) -> None:
    pool = hv.pools.get("default")
    files = _files(hv, "default")
    with pytest.raises(errors.InvalidSpec, match="above 0 bytes"):
        hv.backend.create_volume(pool, "empty", size, DiskFormat.VMDK)
    assert _files(hv, "default") == files
    assert "default/empty.vmdk" not in {v.id for v in hv.volumes.list("default")}


# -- the vendor-error tables, fed the vendors' real error shapes -----------------------------------------------
@pytest.mark.parametrize(
    ("details", "kind"),
    [
        (["SR_FULL", "64424509440000", "107374182400"], errors.InsufficientCapacity),
        (["HOST_NOT_ENOUGH_FREE_MEMORY", "68719476736", "1073741824"], errors.InsufficientCapacity),
        (["HOST_NOT_ENOUGH_PCPUS"], errors.InsufficientCapacity),
        (["NETWORK_SRIOV_INSUFFICIENT_CAPACITY"], errors.InsufficientCapacity),
        (["MEMORY_CONSTRAINT_VIOLATION", "dynamic_min <= dynamic_max"], errors.InvalidSpec),
    ],
)
def test_xen_table(details: list[str], kind: type[errors.HvkitError]) -> None:
    from hvkit.backends.xen._errors import from_description

    err = from_description(details, "VDI.create")
    assert type(err) is kind and details[0] in str(err)


def test_xen_capacity_codes_are_xapi_codes() -> None:
    from hvkit.backends.xen._errors import TABLE
    from hvkit.testing.xapi_sim.model import model

    codes = {c for c, kind in TABLE.items() if kind is errors.InsufficientCapacity}
    assert codes == {
        "SR_FULL",
        "HOST_NOT_ENOUGH_FREE_MEMORY",
        "HOST_NOT_ENOUGH_PCPUS",
        "NETWORK_SRIOV_INSUFFICIENT_CAPACITY",
    }
    assert codes <= set(model()["errors"])


def _vim() -> Any:
    pytest.importorskip("pyVmomi")
    from pyVmomi import vim

    return vim


@pytest.mark.parametrize(
    ("fault", "fields"),
    [
        ("InsufficientResourcesFault", {}),
        ("InsufficientMemoryResourcesFault", {"unreserved": 1024, "requested": 8192}),
        ("InsufficientCpuResourcesFault", {"unreserved": 100, "requested": 4000}),
        ("InsufficientHostMemoryCapacityFault", {"unreserved": 1024, "requested": 8192}),
        ("InsufficientStorageSpace", {}),
        ("InsufficientFailoverResourcesFault", {}),
        ("NoDiskSpace", {"datastore": "datastore1", "file": "[datastore1] vm/vm.vmdk"}),
    ],
)
def test_vmware_faults(fault: str, fields: dict[str, Any]) -> None:
    vim = _vim()
    from hvkit.backends.vmware._errors import translate

    exc = getattr(vim.fault, fault)(msg="Insufficient resources to satisfy configured failover level", **fields)
    err = translate(exc)
    assert type(err) is errors.InsufficientCapacity and fault in str(err)


def test_vmware_other_faults_keep_their_class() -> None:
    vim = _vim()
    from hvkit.backends.vmware._errors import translate

    assert type(translate(vim.fault.InvalidPowerState(msg="x"))) is errors.InvalidState
    assert type(translate(vim.fault.FileNotFound(file="[ds] x"))) is errors.NotFound


def _libvirt_error(code_name: str, message: str) -> Any:
    libvirt = pytest.importorskip("libvirt")
    exc = libvirt.libvirtError(message)
    exc.err = (getattr(libvirt, code_name), 0, message, 2, "", None, None, 0, 0)
    return exc


@pytest.mark.parametrize(
    ("code", "message", "kind"),
    [
        ("VIR_ERR_OPERATION_FAILED", "operation failed: Not enough space left in storage pool", None),
        ("VIR_ERR_INTERNAL_ERROR", "internal error: no large enough free extent", None),
        (
            "VIR_ERR_SYSTEM_ERROR",
            "cannot allocate 10737418240 bytes in file '/var/lib/libvirt/images/a.img': No space left on device",
            None,
        ),
        (
            "VIR_ERR_INTERNAL_ERROR",
            "internal error: Child process (/usr/bin/qemu-img create -f qcow2 -o compat=1.1 /pool/a.qcow2 10G) "
            "unexpected exit status 1: qemu-img: /pool/a.qcow2: Could not write qcow2 header: No space left on device",
            None,
        ),
        (
            "VIR_ERR_INTERNAL_ERROR",
            "internal error: qemu unexpectedly closed the monitor: 2024-01-01T00:00:00.000000Z qemu-system-x86_64: "
            "cannot set up guest memory 'pc.ram': Cannot allocate memory",
            None,
        ),
        (
            "VIR_ERR_INTERNAL_ERROR",
            "internal error: Child process (/usr/sbin/lvcreate --name a -L 10485760K vg) unexpected exit status 5: "
            'Volume group "vg" has insufficient free space (255 extents): 2560 required.',
            None,
        ),
        ("VIR_ERR_OPERATION_FAILED", "operation failed: domain 'x' already exists with uuid y", errors.AlreadyExists),
        ("VIR_ERR_INTERNAL_ERROR", "internal error: something else", errors.BackendError),
        ("VIR_ERR_NO_DOMAIN", "Domain not found: no domain with matching name 'x'", errors.NotFound),
    ],
)
def test_libvirt_table(code: str, message: str, kind: type[errors.HvkitError] | None) -> None:
    exc = _libvirt_error(code, message)
    from hvkit.backends.kvm._errors import error_for

    err = error_for(exc)
    assert type(err) is (kind or errors.InsufficientCapacity)


@pytest.mark.parametrize(
    "message",
    [
        "no space left on storage 'local'",  # the Proxmox simulator's storage
        "unable to create VM 100 - qemu-img: /var/lib/vz/images/100/vm-100-disk-0.qcow2: Could not resize file: "
        "No space left on device",
        "unable to create VM 100 - lvcreate 'pve/vm-100-disk-0' error:   Volume group \"pve\" has insufficient free "
        "space (1023 extents): 2560 required.",
        "zfs error: cannot create 'rpool/data/vm-100-disk-0': out of space",
        "start failed: QEMU exited with code 1: kvm: cannot set up guest memory 'pc.ram': Cannot allocate memory",
        "rbd error: rbd: create error: (122) Disk quota exceeded",
    ],
)
def test_proxmox_messages(message: str) -> None:
    pytest.importorskip("proxmoxer")
    from hvkit.backends.proxmox._errors import from_message

    err = from_message(message, context="create")
    assert type(err) is errors.InsufficientCapacity and message in str(err)


def test_proxmox_http_500_with_a_full_storage() -> None:
    pytest.importorskip("proxmoxer")
    from proxmoxer import ResourceException

    from hvkit.backends.proxmox._errors import translate

    with pytest.raises(errors.InsufficientCapacity) as info, translate():
        raise ResourceException(500, "no space left on storage 'local-lvm'", "no space left on storage 'local-lvm'")
    assert isinstance(info.value.__cause__, ResourceException)


def test_proxmox_lock_and_other_texts_keep_their_class() -> None:
    pytest.importorskip("proxmoxer")
    from hvkit.backends.proxmox._errors import from_message

    assert type(from_message("can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout")) is errors.Conflict
    assert type(from_message("VM 100 not running")) is errors.InvalidState
    assert type(from_message("storage 'x' does not exist")) is errors.NotFound


# VBoxManage's stderr as real VirtualBox prints it (the IPRT status on a line after the message)
_VBOX_CLONE_FULL = """0%...
Progress state: VBOX_E_FILE_ERROR
VBoxManage: error: Failed to clone medium
VBoxManage: error: Could not create the clone medium '/home/u/VirtualBox VMs/a/a-disk1.vdi' (VERR_DISK_FULL)
VBoxManage: error: Details: code VBOX_E_FILE_ERROR (0x80bb0004), component MediumWrap, interface IMedium
VBoxManage: error: Context: "RTEXITCODE handleCloneMedium(HandlerArg*)" at line 896 of file VBoxManageDisk.cpp
"""
_VBOX_IMPORT_FULL = """Progress state: VBOX_E_FILE_ERROR
VBoxManage: error: Appliance import failed
VBoxManage: error: Could not create the imported medium '/home/u/VirtualBox VMs/b/b-disk1.vmdk'.
VBoxManage: error: VMDK: cannot write allocated data block in '/home/u/VirtualBox VMs/b/b-disk1.vmdk' (VERR_DISK_FULL)
VBoxManage: error: Details: code VBOX_E_FILE_ERROR (0x80bb0004), component Appliance, interface IAppliance
VBoxManage: error: Context: "RTEXITCODE handleImportAppliance(HandlerArg*)" at line 1200 of file VBoxManageAppliance.cpp
"""
_VBOX_START_NO_MEMORY = """VBoxManage: error: Failed to allocate 8589934592 bytes of guest RAM (VERR_NO_MEMORY)
VBoxManage: error: Details: code NS_ERROR_FAILURE (0x80004005), component ConsoleWrap, interface IConsole
"""
_VBOX_CREATE_EXISTS = """0%...
Progress state: VBOX_E_FILE_ERROR
VBoxManage: error: Failed to create medium
VBoxManage: error: Could not create the medium storage unit '/home/u/disk.vdi'.
VBoxManage: error: VDI: cannot create image '/home/u/disk.vdi' (VERR_ALREADY_EXISTS)
VBoxManage: error: Details: code VBOX_E_FILE_ERROR (0x80bb0004), component MediumWrap, interface IMedium
"""


@pytest.mark.parametrize(
    ("command", "stderr", "kind"),
    [
        ("clonemedium", _VBOX_CLONE_FULL, errors.InsufficientCapacity),
        ("import", _VBOX_IMPORT_FULL, errors.InsufficientCapacity),
        ("startvm", _VBOX_START_NO_MEMORY, errors.InsufficientCapacity),
        ("createmedium", _VBOX_CREATE_EXISTS, errors.BackendError),  # VERR_ALREADY_EXISTS is on a later line
    ],
)
def test_vbox_table(command: str, stderr: str, kind: type[errors.HvkitError]) -> None:
    from hvkit.backends.vbox._errors import VBoxManageError, translate

    err = translate(VBoxManageError(command, 1, stderr))
    assert type(err) is kind
    if kind is errors.InsufficientCapacity:
        assert "VERR_" in str(err)


def _record(text: str) -> Any:
    from hvkit.backends.hyperv._errors import parse_stderr

    (record,) = parse_stderr(text.encode())[0]
    return record


# Hyper-V error records as Windows PowerShell 5.1 prints them (public minikube, multipass, MSLab reports)
_HV_START_NO_MEMORY = """Start-VM : 'web-1' failed to start.
Not enough memory in the system to start the virtual machine web-1.
Could not initialize memory: Not enough memory resources are available to complete this operation. (0x8007000E).
'web-1' failed to start. (Virtual machine ID C986878F-3887-4B98-BBB4-1CE9256AEC02)
At line:1 char:1
+ Start-VM -Name web-1
+ ~~~~~~~~~~~~~~~~~~~~
    + CategoryInfo          : FromStdErr: (:) [Start-VM], VirtualizationException
    + FullyQualifiedErrorId : OutOfMemory,Microsoft.HyperV.PowerShell.Commands.StartVM
"""
_HV_START_LOCALISED = """Start-VM : Nie można uruchomić maszyny „DC”.
Nie można przydzielić 2048 MB pamięci RAM: Zasoby systemowe nie wystarczają do ukończenia żądanej usługi. (0x800705AA).
At line:1 char:1
+ $DC | Start-VM
    + CategoryInfo          : NotSpecified: (:) [Start-VM], VirtualizationException
    + FullyQualifiedErrorId : Unspecified,Microsoft.HyperV.PowerShell.Commands.StartVM
"""
_HV_NEW_VHD_FULL = """New-VHD : Failed to create the virtual hard disk.
The system failed to create 'D:\\VMs\\data.vhdx': There is not enough space on the disk. (0x80070070).
At line:1 char:1
+ New-VHD -Path D:\\VMs\\data.vhdx -SizeBytes 10GB -Fixed
    + CategoryInfo          : InvalidArgument: (:) [New-VHD], VirtualizationException
    + FullyQualifiedErrorId : InvalidParameter,Microsoft.Vhd.PowerShell.Cmdlets.NewVhd
"""
_HV_NOT_FOUND = """Get-VM : Hyper-V was unable to find a virtual machine with name "ghost".
At line:1 char:1
+ Get-VM ghost
    + CategoryInfo          : InvalidArgument: (ghost:String) [Get-VM], VirtualizationException
    + FullyQualifiedErrorId : InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM
"""


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (_HV_START_NO_MEMORY, errors.InsufficientCapacity),
        (_HV_START_LOCALISED, errors.InsufficientCapacity),
        (_HV_NEW_VHD_FULL, errors.InsufficientCapacity),
        (_HV_NOT_FOUND, errors.NotFound),
    ],
)
def test_hyperv_table(text: str, kind: type[errors.HvkitError]) -> None:
    from hvkit.backends.hyperv._errors import to_hvkit

    err = to_hvkit(_record(text), "start_vm")
    assert type(err) is kind
