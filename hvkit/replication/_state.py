"""The record of one replication: where the source and the replica are, its syncs and its replica points."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import attrs

from ..errors import InvalidSpec, NotFound

__all__ = ["ReplicaDisk", "ReplicaPoint", "ReplicationState", "default_root"]

FORMAT = 1


def default_root() -> Path:
    """``$HVKIT_REPLICATION_DIR``, else ``$XDG_STATE_HOME/hvkit/replications`` (``~/.local/state/...``)."""
    env = os.environ.get("HVKIT_REPLICATION_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "hvkit" / "replications"


@attrs.frozen
class ReplicaDisk:
    name: str
    source_volume: str
    replica_volume: str
    size: int
    format: str  # the replica volume's format
    checksum: str  # the content both hold after the last sync


@attrs.frozen
class ReplicaPoint:
    """A snapshot of the replica VM taken after a sync: the replica as the source was at ``taken``."""

    number: int
    snapshot: str  # the replica VM's snapshot id
    taken: str  # ISO time of the source snapshot the sync copied
    checksums: tuple[str, ...]


@attrs.define
class ReplicationState:
    """What a replication knows between syncs; saved as ``replication.json`` in its directory."""

    directory: Path
    name: str
    source: dict[str, str]  # kind, url (no secrets)
    target: dict[str, str]
    source_vm: str  # ids
    replica_vm: str
    disks: list[ReplicaDisk]
    keep: int = 3
    points: list[ReplicaPoint] = attrs.Factory(list)
    syncs: list[str] = attrs.Factory(list)  # journal directories, oldest first
    state: str = "replicating"  # replicating, failed-over, failed-back
    cbt: dict[str, str] = attrs.Factory(dict)  # source volume id -> the source's last checkpoint (CBT)

    @property
    def path(self) -> Path:
        return self.directory / "replication.json"

    def save(self) -> None:
        data = attrs.asdict(self, recurse=True)
        data["directory"] = str(self.directory)
        data["format"] = FORMAT
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)

    @classmethod
    def load(cls, where: str | os.PathLike[str]) -> ReplicationState:
        """By directory, or by name under :func:`default_root`."""
        path = Path(where)
        if not (path / "replication.json").is_file():
            if re.fullmatch(r"[A-Za-z0-9_.-]+", str(where)):
                path = default_root() / str(where)
            if not (path / "replication.json").is_file():
                raise NotFound(f"no replication {str(where)!r} (looked for replication.json)")
        data: dict[str, Any] = json.loads((path / "replication.json").read_text())
        if data.pop("format", None) != FORMAT:
            raise InvalidSpec(f"{path}: a replication record of an unknown format")
        data["directory"] = path
        data["disks"] = [ReplicaDisk(**d) for d in data["disks"]]
        data["points"] = [ReplicaPoint(**{**p, "checksums": tuple(p["checksums"])}) for p in data["points"]]
        return cls(**data)
