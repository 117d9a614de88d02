"""Replication for disaster recovery: a replica of a running VM on another hypervisor, kept up to date.

>>> replica = hvkit.replication.create(src_hv, "web-1", dst_hv, network_map={"VM Network": "default"})
>>> replica.sync(src_hv, dst_hv)          # only the blocks that changed move; checksums compared
>>> replica.failover(dst_hv, source=src_hv, stop_source=True)
>>> replica.failback(src_hv, dst_hv)      # the replica's changes go back into the source's disks

The first sync is a migration copy (:mod:`hvkit.migration`) from a snapshot; later syncs compare block
maps of source and replica (or take the source's changed-block tracking) and write only what differs.
"""

from __future__ import annotations

from ._blocks import BLOCK, BlockMap, ImageReader, apply_blocks, block_map, changed_blocks
from ._replica import Replica, create
from ._state import ReplicaDisk, ReplicaPoint, ReplicationState, default_root
from ._sync import DiskSync, SyncResult

__all__ = [
    "BLOCK",
    "BlockMap",
    "DiskSync",
    "ImageReader",
    "Replica",
    "ReplicaDisk",
    "ReplicaPoint",
    "ReplicationState",
    "SyncResult",
    "apply_blocks",
    "block_map",
    "changed_blocks",
    "create",
    "default_root",
    "load",
]

load = Replica.load
