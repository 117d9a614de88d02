"""``hvkit replicate``: keep a replica of a VM on another hypervisor, sync it, fail over and back.

    hvkit replicate create --from URL --to URL VM [--name NAME] [--replica-name NAME] [--network-map A=B]
                           [--storage-map A=B] [--format qcow2] [--new-macs] [--keep N] [--no-cbt]
    hvkit replicate sync     --from URL --to URL NAME [--no-cbt]
    hvkit replicate resume   --from URL --to URL NAME
    hvkit replicate status   NAME
    hvkit replicate failover --to URL NAME [--from URL --stop-source] [--point N]
    hvkit replicate failback --from URL --to URL NAME [--no-start]
    hvkit replicate remove   --to URL NAME [--from URL] [--keep-replica]

The URLs are given each time (the replication's record keeps them without secrets, to check them).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any

from ..errors import InvalidSpec
from ._common import open_url, pairs

__all__ = ["main", "register"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``replicate`` to ``subparsers``; return its parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "replicate",
        help="keep a replica of a VM on another hypervisor (disaster recovery)",
        description="A replica of a running VM on another hypervisor, kept up to date by incremental syncs "
        "(only changed blocks move; both sides' checksums compared), with replica points, failover and failback.",
    )
    p.add_argument("action", choices=["create", "sync", "resume", "status", "failover", "failback", "remove"])
    p.add_argument("name", help="create: the VM to replicate (name or id); otherwise the replication's name")
    p.add_argument("--from", dest="source", metavar="URL", help="the source hypervisor")
    p.add_argument("--to", dest="target", metavar="URL", help="the replica's hypervisor")
    p.add_argument("--name", dest="replication", help="create: the replication's name (default: the VM's)")
    p.add_argument("--replica-name", help="create: the replica VM's name (default: VM-replica)")
    p.add_argument("--network-map", action="append", default=[], metavar="A=B", help="source network A -> target B")
    p.add_argument("--storage-map", action="append", default=[], metavar="A=B", help="source pool A -> target pool B")
    p.add_argument("--format", default="qcow2", help="create: the replica's disk format (default qcow2)")
    p.add_argument("--new-macs", action="store_true", help="create: new MAC addresses for the replica")
    p.add_argument("--keep", type=int, default=3, help="create: replica points kept (default 3; 0: none)")
    p.add_argument("--no-cbt", action="store_true", help="compare block hashes even where the source tracks changes")
    p.add_argument("--point", type=int, help="failover: start the replica as of this replica point")
    p.add_argument("--stop-source", action="store_true", help="failover: stop the source VM first")
    p.add_argument("--no-start", action="store_true", help="failback: leave the source VM stopped")
    p.add_argument("--keep-replica", action="store_true", help="remove: keep the replica VM (and its disks)")
    p.set_defaults(func=main)
    return p


def _need(args: argparse.Namespace, *which: str) -> None:
    for side in which:
        if not getattr(args, side):
            raise InvalidSpec(f"hvkit replicate {args.action} needs --{'from' if side == 'source' else 'to'} URL")


def _print(out: IO[str], args: argparse.Namespace, text: str, data: dict[str, Any]) -> None:
    out.write((json.dumps(data, indent=1, default=str) if getattr(args, "json", False) else text) + "\n")


def main(args: argparse.Namespace, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Run ``hvkit replicate`` for parsed ``args``; return the exit code."""
    from .. import replication

    out = out or sys.stdout
    if args.action == "status":
        replica = replication.load(args.name)
        d = replica.describe()
        points = ", ".join(f"{p['number']} ({p['taken']})" for p in d["points"]) or "none"
        _print(out, args, f"{d['name']}: {d['state']}; {d['source']['url']} -> {d['target']['url']}; "
                          f"{d['syncs']} syncs; points: {points}", d)  # fmt: skip
        return 0
    if args.action == "failover":
        _need(args, "target")
        if args.stop_source:
            _need(args, "source")
        replica = replication.load(args.name)
        with open_url(args.target) as dst:
            if args.source:
                with open_url(args.source) as src:
                    vm = replica.failover(dst, source=src, point=args.point, stop_source=args.stop_source)
            else:
                vm = replica.failover(dst, point=args.point)
        _print(out, args, f"failed over: the replica VM {vm.name!r} is {vm.power_state.value}",
               {"vm": vm.name, "id": vm.id, "power_state": vm.power_state.value})  # fmt: skip
        return 0
    if args.action == "remove":
        _need(args, "target")
        replica = replication.load(args.name)
        with open_url(args.target) as dst:
            if args.source:
                with open_url(args.source) as src:
                    replica.remove(src, dst, keep_replica=args.keep_replica)
            else:
                replica.remove(None, dst, keep_replica=args.keep_replica)
        _print(out, args, f"replication {args.name!r} removed", {"removed": args.name})
        return 0
    _need(args, "source", "target")
    with open_url(args.source) as src, open_url(args.target) as dst:
        if args.action == "create":
            if args.keep < 0:
                raise InvalidSpec("--keep takes a number >= 0")
            replica = replication.create(
                src, args.name, dst, name=args.replication, replica_name=args.replica_name,
                network_map=pairs("--network-map", args.network_map),
                storage_map=pairs("--storage-map", args.storage_map), disk_format=args.format,
                keep_macs=not args.new_macs, keep=args.keep, cbt=not args.no_cbt,
            )  # fmt: skip
            d = replica.describe()
            _print(out, args, f"replica of {args.name!r} made: {d['name']} ({replica.state.directory})", d)
            return 0
        replica = replication.load(args.name)
        if args.action == "sync":
            result = replica.sync(src, dst, cbt=not args.no_cbt)
        elif args.action == "resume":
            resumed = replica.resume(src, dst)
            if resumed is None:
                _print(out, args, "nothing to resume (the first sync, if it was interrupted, is done now)", {})
                return 0
            result = resumed
        else:
            result = replica.failback(src, dst, start_source=not args.no_start)
        data = {"seconds": result.seconds, "bytes_sent": result.bytes_sent, "journal": result.journal,
                "point": result.point, "disks": [d.to_json() for d in result.disks]}  # fmt: skip
        _print(out, args, str(result), data)
        return 0
