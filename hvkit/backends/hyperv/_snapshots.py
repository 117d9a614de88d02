"""Checkpoints (Hyper-V's snapshots) and their tree."""

from __future__ import annotations

from ...models import VM, Snapshot
from . import _convert
from ._session import Session

__all__ = ["create", "delete", "list_many", "revert"]


def list_many(s: Session, vms: list[VM]) -> dict[str, list[Snapshot]]:
    """Every VM's checkpoints in one round trip."""
    if not vms:
        return {}
    doc = s.run("snapshot.list", {"Ids": [vm.id for vm in vms]})
    return {
        rec["Id"]: [_convert.snapshot(x, rec["Id"], rec.get("Current")) for x in rec.get("Snapshots") or []]
        for rec in doc.get("VMs") or []
    }


def create(s: Session, vm: VM, name: str, memory: bool) -> Snapshot:
    """Checkpoint-VM: a standard checkpoint (with memory) when asked, else a production one."""
    rec = s.run("snapshot.create", {"Id": vm.id, "Name": name, "Memory": memory})
    return _convert.snapshot(rec, vm.id, rec["Id"])


def revert(s: Session, vm: VM, snapshot: Snapshot) -> VM:
    """Restore-VMSnapshot; a checkpoint with memory comes back saved and is resumed."""
    rec = s.run("snapshot.revert", {"Id": vm.id, "SnapshotId": snapshot.id, "Resume": snapshot.memory})
    return _convert.vm(rec, s.pool_name)


def delete(s: Session, vm: VM, snapshot: Snapshot, children: bool) -> None:
    s.run("snapshot.delete", {"Id": vm.id, "SnapshotId": snapshot.id, "Children": children})
