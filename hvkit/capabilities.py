"""What a backend can do.

Each backend declares a ``frozenset[Capability]``; the core checks it before every call and raises
:class:`hvkit.errors.Unsupported` for an operation the backend did not declare.
"""

from __future__ import annotations

import enum

__all__ = ["DESCRIPTIONS", "Capability"]


class Capability(enum.Enum):
    """One operation (or family of operations) a backend may offer."""

    VM_CREATE = "vm.create"
    VM_DELETE = "vm.delete"
    VM_POWER = "vm.power"  # start, stop (graceful and forced), reboot
    VM_PAUSE = "vm.pause"  # pause / resume in memory
    VM_SUSPEND = "vm.suspend"  # save to disk and stop; start resumes
    VM_RECONFIGURE = "vm.reconfigure"  # cpus / memory while stopped
    VM_RECONFIGURE_LIVE = "vm.reconfigure_live"  # cpus / memory while running
    VM_TEMPLATE = "vm.template"  # mark a VM as a template: a clone source that never starts
    VM_CLONE = "vm.clone"
    VM_LINKED_CLONE = "vm.linked_clone"
    VM_CONSOLE = "vm.console"
    VM_METRICS = "vm.metrics"
    VM_GUEST_IPS = "vm.guest_ips"
    VM_EVENTS = "vm.events"  # lifecycle event subscription
    VM_MIGRATE = "vm.migrate"  # move a running VM to another host
    VM_STORAGE_MIGRATE = "vm.storage_migrate"  # move a VM's disks to another pool
    UEFI = "vm.uefi"
    CLOUD_INIT = "vm.cloud_init"
    SNAPSHOT = "snapshot"  # create, list, revert, delete
    SNAPSHOT_MEMORY = "snapshot.memory"
    HOST_METRICS = "host.metrics"
    VOLUME_CREATE = "volume.create"
    VOLUME_DELETE = "volume.delete"
    VOLUME_UPLOAD = "volume.upload"
    VOLUME_DOWNLOAD = "volume.download"
    VOLUME_LINKED = "volume.linked"  # a copy-on-write volume over a base volume (linked disks from images)


DESCRIPTIONS: dict[Capability, str] = {
    Capability.VM_CREATE: "create a VM from a VMSpec",
    Capability.VM_DELETE: "delete a VM and its disks",
    Capability.VM_POWER: "start, stop (graceful or forced), reboot",
    Capability.VM_PAUSE: "pause and resume in memory",
    Capability.VM_SUSPEND: "suspend to disk; start resumes",
    Capability.VM_RECONFIGURE: "change CPUs and memory while stopped",
    Capability.VM_RECONFIGURE_LIVE: "change CPUs and memory while running",
    Capability.VM_TEMPLATE: "mark a VM as a template (clone source that never starts)",
    Capability.VM_CLONE: "full clone",
    Capability.VM_LINKED_CLONE: "linked clone sharing the source's disks",
    Capability.VM_CONSOLE: "console address (VNC, SPICE, WebMKS ...)",
    Capability.VM_METRICS: "VM CPU, memory, disk and network counters",
    Capability.VM_GUEST_IPS: "guest IP addresses",
    Capability.VM_EVENTS: "lifecycle events (started, stopped, ...)",
    Capability.VM_MIGRATE: "live migration to another host",
    Capability.VM_STORAGE_MIGRATE: "move disks to another pool",
    Capability.UEFI: "UEFI firmware",
    Capability.CLOUD_INIT: "cloud-init first-boot configuration",
    Capability.SNAPSHOT: "snapshots: create, list (tree), revert, delete",
    Capability.SNAPSHOT_MEMORY: "snapshots that include memory",
    Capability.HOST_METRICS: "host CPU and memory usage",
    Capability.VOLUME_CREATE: "create volumes in a pool",
    Capability.VOLUME_DELETE: "delete volumes",
    Capability.VOLUME_UPLOAD: "upload a volume's content as a stream",
    Capability.VOLUME_DOWNLOAD: "download a volume's content as a stream",
    Capability.VOLUME_LINKED: "copy-on-write volume over a base volume (linked disks from images)",
}
