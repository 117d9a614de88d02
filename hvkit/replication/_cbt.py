"""Changed-block tracking of the source, where its backend has it (``Backend.track_changes``; KVM: QEMU dirty
bitmaps through libvirt checkpoints and backup jobs).

Order that makes the reported blocks a superset of what changed between two syncs' snapshots: each sync
creates checkpoint ``c_k`` *before* its snapshot ``S_k``, and asks for the blocks written since
``c_{k-1}`` *after* ``S_k``; ``c_{k-1}`` began before ``S_{k-1}``, so every block that differs between
``S_{k-1}`` and ``S_k`` is among them. ``c_{k-1}`` is deleted once the sync is done. Whenever tracking is
not there (the VM was stopped, a vendor without it) the sync compares block hashes instead, and a new
chain begins.
"""

from __future__ import annotations

from ..errors import HvkitError, InvalidState, NotFound, Unsupported
from ..hypervisor import Hypervisor
from ..migration import Journal
from ._blocks import BLOCK
from ._sync import DiskPair

__all__ = ["begin_checkpoint", "changed_fn", "end_checkpoint"]


def begin_checkpoint(journal: Journal, hv: Hypervisor, vm_id: str, name: str) -> str | None:
    """Journal step ``source.track``: a new checkpoint before the snapshot; None where tracking is not possible."""
    step = "source.track"
    state, data = journal.state(step)
    if state == "done":
        return data.get("checkpoint")
    journal.begin(step, checkpoint=name)
    made: str | None = name
    try:
        vm = hv.vms.get(vm_id)
        with hv.translating("track_changes"):
            hv.backend.track_changes(vm, name)
    except (Unsupported, InvalidState):
        made = None
    journal.done(step, checkpoint=made)
    return made


def changed_fn(hv: Hypervisor, vm_id: str, since: str, staging: str):  # type: ignore[no-untyped-def]
    """The ``changed`` callback of :func:`sync_disks`: block indices written since checkpoint ``since``, or None."""

    def changed(pair: DiskPair, _snapshot: object) -> list[int] | None:
        try:
            vm = hv.vms.get(vm_id)
            volume = hv.volumes.get(pair.source_volume)
            with hv.translating("changed_extents"):
                extents = hv.backend.changed_extents(vm, volume, since, staging)
        except (Unsupported, InvalidState, NotFound):
            return None
        blocks: set[int] = set()
        for offset, length in extents:
            if length > 0:
                blocks.update(range(offset // BLOCK, (min(offset + length, pair.size) - 1) // BLOCK + 1))
        return sorted(b for b in blocks if b * BLOCK < pair.size)

    return changed


def end_checkpoint(hv: Hypervisor, vm_id: str, name: str) -> None:
    """Delete an old checkpoint; a failure only leaves a bitmap behind (told by the vendor's own tools)."""
    try:
        vm = hv.vms.get(vm_id)
        with hv.translating("untrack_changes"):
            hv.backend.untrack_changes(vm, name)
    except HvkitError:
        pass
