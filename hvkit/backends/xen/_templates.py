"""A VM from a template: ``VM.clone`` of the template, ``VM.provision`` of the disks its
``other_config:disks`` describes, then the spec's sizing, firmware, notes and tags."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ...driver import Rollback
from ...errors import NotFound
from ...models import Firmware, VMSpec
from ._session import NULL, XapiSession

__all__ = ["from_template", "used_devices"]

MiB = 1024 * 1024


def find_template(s: XapiSession, name: str) -> str:
    for ref in s.call("VM.get_by_name_label", name):
        if s.call("VM.get_is_a_template", ref) and not s.call("VM.get_is_a_snapshot", ref):
            return str(ref)
    raise NotFound(f"no template {name!r} on this xen pool")


def from_template(s: XapiSession, spec: VMSpec, template: str, sr: str | None, undo: Rollback) -> str:
    """The new VM's reference; ``sr`` receives provisioned disks whose template names no SR."""
    from ._vms import destroy_with_disks

    ref = str(s.run("VM.clone", template, spec.name))
    undo.push(lambda: destroy_with_disks(s, ref), f"destroy VM {ref} and its disks")
    other = s.call("VM.get_other_config", ref)
    if sr is not None and other.get("disks"):
        root = ET.fromstring(other["disks"])
        for disk in root.findall("disk"):
            if not disk.get("sr"):
                disk.set("sr", s.call("SR.get_uuid", sr))
        s.call("VM.remove_from_other_config", ref, "disks")
        s.call("VM.add_to_other_config", ref, "disks", ET.tostring(root, encoding="unicode"))
    s.run("VM.provision", ref)
    s.call("VM.set_is_a_template", ref, False)
    s.call("VM.set_name_description", ref, spec.notes)
    s.call("VM.set_tags", ref, sorted(spec.tags))
    s.call("VM.set_affinity", ref, NULL)
    size = str(spec.memory_mib * MiB)
    s.call("VM.set_memory_limits", ref, size, size, size, size)
    if spec.cpus > int(s.call("VM.get_VCPUs_max", ref)):
        s.call("VM.set_VCPUs_max", ref, str(spec.cpus))
        s.call("VM.set_VCPUs_at_startup", ref, str(spec.cpus))
    else:
        s.call("VM.set_VCPUs_at_startup", ref, str(spec.cpus))
        s.call("VM.set_VCPUs_max", ref, str(spec.cpus))
    if spec.firmware is Firmware.UEFI:
        s.call("VM.remove_from_HVM_boot_params", ref, "firmware")
        s.call("VM.add_to_HVM_boot_params", ref, "firmware", "uefi")
    return ref


def used_devices(s: XapiSession, vm: str) -> tuple[int, int]:
    """The next free VBD userdevice and VIF device of ``vm`` (after what a template brought)."""
    disks = [int(d) for d in (s.call("VBD.get_userdevice", b) for b in s.call("VM.get_VBDs", vm)) if d.isdigit()]
    nics = [int(d) for d in (s.call("VIF.get_device", v) for v in s.call("VM.get_VIFs", vm)) if d.isdigit()]
    return (max(disks) + 1 if disks else 0), (max(nics) + 1 if nics else 0)
