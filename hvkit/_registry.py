"""Backend registry: URL kind -> driver class, imported on first use.

Third parties ship a driver through the ``hvkit.backends`` entry-point group
(``mykind = "mypkg.driver:MyBackend"``) or call :func:`register` (handy in tests).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from .errors import InvalidSpec

if TYPE_CHECKING:
    from .backend import Backend

__all__ = ["BackendEntry", "available", "known", "load", "register"]

ENTRY_POINT_GROUP = "hvkit.backends"


@attrs.frozen
class BackendEntry:
    kind: str
    target: str  # "module:Class"
    extra: str | None  # pip extra that installs the SDK: pip install 'hvkit[extra]'
    description: str = ""


_BUILTIN: dict[str, BackendEntry] = {
    e.kind: e
    for e in (
        BackendEntry("esxi", "hvkit.backends.vmware:VmwareBackend", "vmware", "VMware ESXi (pyvmomi)"),
        BackendEntry("hyperv", "hvkit.backends.hyperv:HyperVBackend", "hyperv", "Microsoft Hyper-V (WinRM, pywinrm)"),
        BackendEntry("kvm", "hvkit.backends.kvm:KvmBackend", "kvm", "KVM/QEMU through libvirt"),
        BackendEntry("libvirt", "hvkit.backends.kvm:KvmBackend", "kvm", "any libvirt URI (test:///default ...)"),
        BackendEntry("proxmox", "hvkit.backends.proxmox:ProxmoxBackend", "proxmox", "Proxmox VE (proxmoxer)"),
        BackendEntry("qemu", "hvkit.backends.kvm:KvmBackend", "kvm", "KVM/QEMU through libvirt"),
        BackendEntry("sim", "hvkit.backends.sim:SimBackend", None, "in-process simulated hypervisor"),
        BackendEntry("vbox", "hvkit.backends.vbox:VBoxBackend", None, "VirtualBox (VBoxManage, here or +ssh)"),
        BackendEntry("vcenter", "hvkit.backends.vmware:VmwareBackend", "vmware", "VMware vCenter (pyvmomi)"),
        BackendEntry("xen", "hvkit.backends.xen:XenBackend", "xen", "XenServer / XCP-ng through XAPI (XenAPI)"),
    )
}
_registered: dict[str, BackendEntry] = {}
_entry_points_loaded = False


def register(kind: str, target: str, *, extra: str | None = None, description: str = "") -> None:
    """Register (or replace) a backend for URLs of ``kind://``."""
    _registered[kind] = BackendEntry(kind, target, extra, description)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        _registered.setdefault(ep.name, BackendEntry(ep.name, ep.value, None, f"from {ep.value}"))


def known() -> Mapping[str, BackendEntry]:
    """Every registered backend, sorted by kind (a read-only view)."""
    _load_entry_points()
    merged = {**_BUILTIN, **_registered}
    return types.MappingProxyType(dict(sorted(merged.items())))


def load(kind: str) -> type[Backend]:
    """Import and return the driver class for ``kind``; ImportError names the extra to install."""
    entries = known()
    if kind not in entries:
        raise InvalidSpec(f"no hvkit backend for URLs of kind {kind!r}; known kinds: {', '.join(entries)}")
    entry = entries[kind]
    module_name, _, attr = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f": pip install 'hvkit[{entry.extra}]'" if entry.extra else ""
        raise ImportError(f"the {kind} backend needs a package that is not installed ({exc.name}){hint}") from exc
    cls: type[Backend] = getattr(module, attr)
    return cls


def available() -> dict[str, type[Backend] | ImportError]:
    """Each kind mapped to its driver class, or to the ImportError that says what to install."""
    result: dict[str, type[Backend] | ImportError] = {}
    for kind in known():
        try:
            result[kind] = load(kind)
        except ImportError as exc:
            result[kind] = exc
    return result
