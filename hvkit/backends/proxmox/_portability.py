"""What the Proxmox backend does with the portable calls (docs/portability.md is generated from it)."""

from __future__ import annotations

PORTABILITY_NOTES = {
    "vms.list": "one `/cluster/resources` call: name, state, CPUs, memory, node, tags, template flag (no IPs); "
    "`detail=True` reads each VM's config and status (two calls per VM: PVE has no bulk read)",
    "names.vm": "PVE takes DNS names only: any other name becomes a DNS label ('Web Server #1' -> 'Web-Server-1'); "
    "the user's name is kept in a tag (`hvkit-name.*`, hidden from `vm.tags`) and listed, found and deleted by; "
    "two names that map to one PVE name: `AlreadyExists`",
    "names.snapshot": "PVE snapshot ids hold letters, digits and '_' (2-40, a letter first, never 'current'): any "
    "other name gets a derived id ('before-upgrade' -> 'before_upgrade') and is kept in the snapshot's "
    "description; two names that map to one id: `AlreadyExists`",
    "snapshots.create": "a running VM's snapshot saves its RAM (vmstate) on the VM's storage",
    "vms.clone(linked=True)": "PVE links clones to templates only: of a template, a linked clone; of any other VM "
    "(running or with snapshots too), a full copy of its current state. Mark the source a template to share disks",
    "snapshots.revert": "works (the clone of a non-template is a full copy)",
    "vms.delete(keep_disks=True)": "`Unsupported`: PVE destroys a VM's disks with it",
}
