"""What the VMware backend does with the portable calls (docs/portability.md is generated from it)."""

from __future__ import annotations

PORTABILITY_NOTES = {
    "vms.list": "one PropertyCollector read without devices: name, state, CPUs, memory, host, IPs, template flag, "
    "guest family, datastores (`vm.extra['datastores']`); `detail=True`: the same single read with devices (disks "
    "with their datastores, NICs with their networks). Option `vm_list=full` makes detail the default",
    "names.vm": "kept as given; '%' is escaped for vSphere (which escapes '%', '/' and '\\\\' in names) and "
    "unescaped when read; 80 characters is vSphere's limit too",
    "vms.clone(linked=True)": "vCenter only (ESXi: `Unsupported`). vSphere links a clone to a snapshot's disks: the "
    "VM's current snapshot, or one named 'hvkit-linked-clone-base' taken when it has none; the clone has that "
    "snapshot's state (take a snapshot first to clone the state of now)",
    "snapshots.revert": "works (the clone links to a snapshot's disks, which a revert does not change); reverting "
    "to a snapshot without memory powers the VM off",
}
