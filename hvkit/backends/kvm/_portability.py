"""What the KVM backend does with the portable calls (docs/portability.md is generated from it)."""

from __future__ import annotations

PORTABILITY_NOTES = {
    "vms.list": "one getAllDomainStats call: name, state, CPUs, memory, disk paths and sizes; `detail=True` reads "
    "each domain's XML (NICs, notes, tags, disk pools)",
    "names.vm": "kept as given (the libvirt domain name; volume files are named after it)",
    "snapshots.create": "a running VM gets an internal snapshot with its memory (QEMU snapshots a running VM's "
    "internal images only with its memory); a stopped VM's is disk-only",
    "snapshots.create(memory=False)": "`InvalidState`: QEMU's internal snapshots of a running VM always hold its "
    "memory (stop the VM, or leave memory=None)",
    "vms.clone(linked=True)": "qcow2 overlays over the source's images; a running source first moves live onto new "
    "overlays (an external disk-only snapshot), so the clone links to frozen images (crash-consistent). A stopped "
    "source moves onto new overlays too. Refused: a suspended (managed-save) source, `pool=` for a running one",
    "images.linked": "a qcow2 volume in a file pool whose backing file is the image's volume (QEMU opens it "
    "read-only); a VM delete removes the overlay, never the image",
    "snapshots.revert": "works: a snapshot taken before the clone lives in the image the clone links to, so that "
    "image is first copied (with its snapshots) into a volume of the VM's own; needs the image files on this "
    "machine (a remote libvirtd: `Unsupported`)",
    "vms.reconfigure": "live within the VM's maximum CPUs and memory (`extra={'max_cpus': .., "
    "'max_memory_mib': ..}` at create)",
}
