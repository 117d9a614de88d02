"""What the sim backend does with the portable calls (docs/portability.md is generated from it)."""

from __future__ import annotations

PORTABILITY_NOTES = {
    "vms.list": "everything, `detail` or not (the model is in memory)",
    "vms.clone(linked=True)": "a qcow2 overlay over the source's image; the source then writes into an overlay of "
    "its own (as on KVM)",
    "images.linked": "a qcow2 overlay over the image's volume (as on KVM)",
    "snapshots.revert": "works: a snapshot inside the image a clone links to is restored into a private copy the "
    "VM's disk moves onto; the clone's base never changes",
    "vms.reconfigure": "live, growing only (CPUs up to the host's threads)",
}
