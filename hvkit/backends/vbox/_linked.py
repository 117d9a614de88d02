"""The snapshots hvkit takes of a source VM to link clones to, known by UUID through machine extradata.

* The clone records its base: ``hvkit/linked-base`` = ``<source uuid>/<snapshot uuid>``.
* The source marks the snapshot as a clone base and lists the clones linked to it:
  ``hvkit/clone-base/<snapshot uuid>`` = ``<clone uuid>[,<clone uuid>...]``; ``list_snapshots`` hides exactly
  those snapshots (a snapshot the user took is never marked).
* Deleting a linked clone reads only its source's list (never the other VMs): its own UUID leaves the list, the
  other UUIDs listed are checked one by one (a clone deleted outside hvkit no longer counts), and the base is
  deleted once none is left. A fixed number of VBoxManage runs, whatever the number of VMs.
* VirtualBox keeps its own record: the base's disks have the clones' differencing disks as children, and it
  refuses to delete a snapshot whose disk has more than one child. A clone linked to the base outside hvkit
  (not in the list) therefore keeps it too: the refusal is logged and the base stays marked (hidden).

VirtualBox copies a machine's extradata into its clones, so a new clone drops the hvkit keys it inherited.
"""

from __future__ import annotations

import logging
import re

from ._errors import VBoxManageError
from ._session import Session

__all__ = ["BASE_KEY", "MARK_PREFIX", "base_of", "forget_inherited", "marked_bases", "record", "release"]

BASE_KEY = "hvkit/linked-base"
MARK_PREFIX = "hvkit/clone-base/"
_LOG = logging.getLogger(__name__)
_ENTRY = re.compile(r"^Key: (.*?), Value: (.*)$", re.MULTILINE)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _enumerate(session: Session, vm_id: str) -> dict[str, str]:
    return dict(_ENTRY.findall(session.run(["getextradata", vm_id, "enumerate"])))


def _get(session: Session, vm_id: str, key: str) -> str:
    out = session.run(["getextradata", vm_id, key])
    found = re.search(r"^Value: (.*)$", out, re.MULTILINE)
    return found.group(1).strip() if found else ""


def _clone_list(value: str) -> list[str]:
    """The clone UUIDs of a mark's value, in order, without repeats."""
    return list(dict.fromkeys(_UUID.findall(value.lower())))


def record(session: Session, source_id: str, snapshot_id: str, clone_id: str) -> None:
    """Mark ``snapshot_id`` on the source as the base of ``clone_id`` (the snapshot is new: the list is just
    this clone), and record the base on the clone."""
    session.run(["setextradata", source_id, MARK_PREFIX + snapshot_id.lower(), clone_id.lower()], vm=source_id)
    session.run(["setextradata", clone_id, BASE_KEY, f"{source_id.lower()}/{snapshot_id.lower()}"], vm=clone_id)


def forget_inherited(session: Session, clone_id: str) -> None:
    """Remove the hvkit keys a new clone copied from its source's extradata."""
    for key in _enumerate(session, clone_id):
        if key == BASE_KEY or key.startswith(MARK_PREFIX):
            session.run(["setextradata", clone_id, key], vm=clone_id)


def marked_bases(session: Session, vm_id: str) -> set[str]:
    """UUIDs of the VM's snapshots that hvkit took as linked clone bases."""
    return {key[len(MARK_PREFIX) :].lower() for key in _enumerate(session, vm_id) if key.startswith(MARK_PREFIX)}


def base_of(session: Session, vm_id: str) -> tuple[str, str] | None:
    """(source uuid, snapshot uuid) a linked clone hvkit made was linked to, or None."""
    source, _, snapshot = _get(session, vm_id, BASE_KEY).partition("/")
    return (source.lower(), snapshot.lower()) if source and snapshot else None


def _still_linked(session: Session, vm_id: str, base: tuple[str, str]) -> bool:
    """Whether the VM exists and records ``base`` (one getextradata: a VM deleted outside hvkit is not found)."""
    try:
        return base_of(session, vm_id) == base
    except VBoxManageError as exc:
        if exc.code == "VBOX_E_OBJECT_NOT_FOUND":
            return False
        raise


def release(session: Session, source_id: str, snapshot_id: str, clone_id: str) -> None:
    """``clone_id`` (deleted) leaves its base's list on the source; the base is deleted when no listed clone
    remains. Reads the source and the listed clones only. A failure is logged, never raised."""
    key = MARK_PREFIX + snapshot_id
    try:
        with session.serial(source_id):
            try:
                listed = _clone_list(_get(session, source_id, key))
            except VBoxManageError as exc:
                if exc.code == "VBOX_E_OBJECT_NOT_FOUND":
                    return  # the source is gone (with its snapshots)
                raise
            if not listed:
                return  # not a base hvkit marked (or marked by an older hvkit without a list): never touched
            others = [c for c in listed if c != clone_id.lower()]
            remaining = [c for c in others if _still_linked(session, c, (source_id, snapshot_id))]
            if remaining:
                if remaining != listed:
                    session.run(["setextradata", source_id, key, ",".join(remaining)], vm=source_id)
                return  # another linked clone still uses it
            session.run(["snapshot", source_id, "delete", snapshot_id], vm=source_id)
            session.run(["setextradata", source_id, key], vm=source_id)
    except Exception as exc:  # the clone is deleted already: its leftover base must not fail the call
        _LOG.warning("could not delete the linked clone base snapshot %s of VM %s: %s", snapshot_id, source_id, exc)
