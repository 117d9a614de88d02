"""The snapshots hvkit takes of a source VM to link clones to, known by UUID through machine extradata.

* The clone records its base: ``hvkit/linked-base`` = ``<source uuid>/<snapshot uuid>``.
* The source marks the snapshot as a clone base: ``hvkit/clone-base/<snapshot uuid>`` = ``<clone uuid>``;
  ``list_snapshots`` hides exactly those snapshots (a snapshot the user took is never marked).
* Deleting a linked clone deletes its base from the source once no remaining VM records that snapshot.

VirtualBox copies a machine's extradata into its clones, so a new clone drops the hvkit keys it inherited.
"""

from __future__ import annotations

import logging
import re

from ._session import Session

__all__ = ["BASE_KEY", "MARK_PREFIX", "base_of", "forget_inherited", "marked_bases", "record", "release"]

BASE_KEY = "hvkit/linked-base"
MARK_PREFIX = "hvkit/clone-base/"
_LOG = logging.getLogger(__name__)
_ENTRY = re.compile(r"^Key: (.*?), Value: (.*)$", re.MULTILINE)
_SHORT_VM = re.compile(r'^".*" \{([0-9a-fA-F-]{36})\}$', re.MULTILINE)


def _enumerate(session: Session, vm_id: str) -> dict[str, str]:
    return dict(_ENTRY.findall(session.run(["getextradata", vm_id, "enumerate"])))


def _get(session: Session, vm_id: str, key: str) -> str:
    out = session.run(["getextradata", vm_id, key])
    found = re.match(r"Value: (.*)", out)
    return found.group(1).strip() if found else ""


def record(session: Session, source_id: str, snapshot_id: str, clone_id: str) -> None:
    """Mark ``snapshot_id`` on the source as the base of ``clone_id``, and record it on the clone."""
    session.run(["setextradata", source_id, MARK_PREFIX + snapshot_id.lower(), clone_id.lower()])
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


def release(session: Session, source_id: str, snapshot_id: str) -> None:
    """Delete the base snapshot unless a remaining VM still records it; a failure is logged, never raised."""
    try:
        vm_ids = _SHORT_VM.findall(session.run(["list", "vms"]))
        for vm_id in vm_ids:
            if base_of(session, vm_id) == (source_id, snapshot_id):
                return  # another linked clone still uses it
        if source_id not in {v.lower() for v in vm_ids}:
            return  # the source is gone (with its snapshots)
        session.run(["snapshot", source_id, "delete", snapshot_id], vm=source_id)
        session.run(["setextradata", source_id, MARK_PREFIX + snapshot_id], vm=source_id)
    except Exception as exc:  # the clone is deleted already: its leftover base must not fail the call
        _LOG.warning("could not delete the linked clone base snapshot %s of VM %s: %s", snapshot_id, source_id, exc)
