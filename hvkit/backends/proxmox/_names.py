"""Names hvkit accepts that Proxmox does not: a valid vendor id derived from them, the user's name kept beside.

Snapshot ids: a letter, then letters, digits and '_' (2-40 characters), never 'current'. VM names: DNS names.
The derivation is deterministic; the user's name is kept in the snapshot's description or the VM's tags,
and read back from there.
"""

from __future__ import annotations

import base64
import hashlib
import re

from . import _property_strings as ps

__all__ = ["join_description", "name_from_tags", "name_tag", "snapshot_id", "split_description", "vm_name"]

_MARK = "hvkit-name: "
_TAG = "hvkit-name."
_MAX_SNAPSHOT = 40
_MAX_VM = 63  # one DNS label is enough for a readable id


def _short_hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:8]


def snapshot_id(name: str) -> str:
    """The Proxmox snapshot id for ``name``: ``name`` itself when PVE takes it, else a readable derivation."""
    if ps.SNAPSHOT_NAME.fullmatch(name) and len(name) <= _MAX_SNAPSHOT and name != "current":
        return name
    slug = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not slug[:1].isalpha() or not slug[:1].isascii():
        slug = "s_" + slug
    if slug == "current" or len(slug) < 2:
        slug += "_"
    if len(slug) > _MAX_SNAPSHOT:
        slug = slug[: _MAX_SNAPSHOT - 9] + "_" + _short_hash(name)
    return slug


def join_description(name: str, vendor_id: str, description: str) -> str:
    """The description PVE stores: the user's, plus the user's name when the id differs from it."""
    if vendor_id == name:
        return description
    return f"{description}\n{_MARK}{name}" if description else f"{_MARK}{name}"


def split_description(vendor_id: str, stored: str) -> tuple[str, str]:
    """(user's name, user's description) from a stored description."""
    head, sep, tail = stored.rpartition(_MARK)
    if sep and "\n" not in tail and (not head or head.endswith("\n")):
        return tail, head[:-1] if head else ""
    return vendor_id, stored


def vm_name(name: str) -> str:
    """The Proxmox VM name for ``name``: ``name`` itself when it is a DNS name, else a DNS label derived from it."""
    if ps.DNS_NAME.fullmatch(name) and len(name) <= _MAX_VM:
        return name
    slug = re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9-]", "-", name)).strip("-") or "vm"
    if len(slug) > _MAX_VM:
        slug = slug[: _MAX_VM - 9].rstrip("-") + "-" + _short_hash(name)
    return slug


def name_tag(name: str, vendor_name: str) -> str | None:
    """A tag keeping the user's VM name (PVE tags hold letters, digits and '_-+.'); None when not needed."""
    if vendor_name == name:
        return None
    encoded = base64.b32encode(name.encode()).decode().rstrip("=").lower()
    return _TAG + encoded


def name_from_tags(tags: frozenset[str]) -> tuple[str | None, frozenset[str]]:
    """(the user's name kept in a tag, or None; the user's own tags)."""
    found = None
    own = set()
    for tag in tags:
        if tag.startswith(_TAG):
            text = tag[len(_TAG) :].upper()
            try:
                found = base64.b32decode(text + "=" * (-len(text) % 8)).decode()
            except (ValueError, UnicodeDecodeError):
                own.add(tag)
        else:
            own.add(tag)
    return found, frozenset(own)
