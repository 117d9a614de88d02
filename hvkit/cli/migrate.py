"""``hvkit migrate``: move a VM between hypervisors of any two kinds, verified, with a progress bar per disk.

    hvkit migrate --from esxi://vc.example/dc --to proxmox://pve.example VM \\
        --network-map "VM Network=vmbr0" --storage-map datastore1=local-lvm [--dry-run]

``register(subparsers)`` adds the command to an argparse parser; the parsed namespace carries
``func`` (namespace -> exit code).
"""

from __future__ import annotations

import argparse
import sys
from typing import IO, Any

from ..errors import InvalidSpec
from ..models import DiskBus, DiskFormat, NicModel
from ._common import EXIT_PLAN_PROBLEMS, ProgressBars, open_url, pairs

__all__ = ["main", "register"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``migrate`` to ``subparsers`` (from ``ArgumentParser.add_subparsers()``); return its parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "migrate",
        help="move a VM to another hypervisor (any kind to any kind), verified",
        description="Move a VM to another hypervisor: plan (checks before anything moves), export each disk, "
        "convert, import, verify a checksum of every disk on both sides, create the VM on the target "
        "and optionally start it. Every step is journaled: an interrupted migration can be resumed "
        "(--resume) or rolled back (--rollback).",
    )
    p.add_argument("--from", dest="source", required=True, metavar="URL", help="the source hypervisor")
    p.add_argument("--to", dest="target", required=True, metavar="URL", help="the target hypervisor")
    p.add_argument("vm", nargs="?", help="the VM to move (name or id); not needed with --resume/--rollback")
    p.add_argument("--name", help="the VM's name on the target (default: the same)")
    p.add_argument("--network-map", action="append", default=[], metavar="A=B", help="source network A -> target B")
    p.add_argument("--storage-map", action="append", default=[], metavar="A=B", help="source pool A -> target pool B")
    p.add_argument("--format", choices=[f.value for f in DiskFormat], help="disk format on the target")
    p.add_argument("--bus", choices=[b.value for b in DiskBus], help="disk bus on the target")
    p.add_argument("--nic-model", choices=[m.value for m in NicModel], help="NIC model on the target")
    p.add_argument("--new-macs", action="store_true", help="give the NICs new MAC addresses (default: keep them)")
    way = p.add_mutually_exclusive_group()
    way.add_argument("--power-off", action="store_true", help="shut the source VM down first if it runs")
    way.add_argument("--snapshot", action="store_true", help="export a snapshot taken now; the source keeps running")
    p.add_argument("--allow-snapshot-loss", action="store_true", help="migrate although the source has snapshots")
    p.add_argument("--no-verify", action="store_true", help="skip reading the disks back from the target")
    p.add_argument(
        "--checksum",
        choices=["hvkit-disk-v3", "hvkit-disk-v2", "hvkit-disk-v1"],
        default="hvkit-disk-v3",
        help="disk checksum: v3 (XXH3-128, fast; the default), v2 (BLAKE3: also resists crafted collisions) "
        "or v1 (SHA-256, the slowest)",
    )
    p.add_argument("--start", action="store_true", help="start the VM on the target and wait until it runs")
    p.add_argument("--dry-run", action="store_true", help="print the plan and stop; changes nothing")
    p.add_argument("--journal-dir", metavar="DIR", help="where to keep the journal and staging files")
    p.add_argument("--keep-on-error", action="store_true", help="on an error keep what was done, for --resume")
    act = p.add_mutually_exclusive_group()
    act.add_argument("--resume", metavar="JOURNAL", help="finish the interrupted migration of this journal")
    act.add_argument("--rollback", metavar="JOURNAL", help="undo the interrupted migration of this journal")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Run ``hvkit migrate`` for parsed ``args``; return the exit code.

    Errors go up to the hvkit command's one error path (one line, the exit code of their family); a plan
    with problems exits with EXIT_PLAN_PROBLEMS, distinct from invalid input.
    """
    from .. import migration

    out = out or sys.stdout
    err = err or sys.stderr
    if args.vm is None and not (args.resume or args.rollback):
        raise InvalidSpec("name the VM to move (or pass --resume/--rollback JOURNAL)")
    networks = pairs("--network-map", args.network_map)
    storages = pairs("--storage-map", args.storage_map)
    try:
        with open_url(args.source) as src, open_url(args.target) as dst:
            bars = None if args.no_progress else ProgressBars(err)
            progress = None if bars is None else lambda p: bars.update(p.disk or "vm", p.phase, p.done, p.total)
            if args.rollback:
                migration.rollback(args.rollback, src, dst)
                out.write(f"rolled back: nothing of the migration is left on the target ({dst.url})\n")
                return 0
            if args.resume:
                result = migration.resume(args.resume, src, dst, progress=progress, start=args.start or None)
            else:
                plan = migration.plan(
                    src, args.vm, dst, name=args.name, network_map=networks, storage_map=storages,
                    disk_format=args.format, disk_bus=args.bus, nic_model=args.nic_model, keep_macs=not args.new_macs,
                    power_off=args.power_off, snapshot=args.snapshot, allow_snapshot_loss=args.allow_snapshot_loss,
                    verify=not args.no_verify,
                )  # fmt: skip
                out.write(f"{plan}\n")
                out.flush()
                if plan.problems:
                    err.write("hvkit migrate: the plan has problems; nothing was changed\n")
                    return EXIT_PLAN_PROBLEMS
                if args.dry_run:
                    out.write("dry run: nothing was changed\n")
                    return 0
                result = plan.run(
                    progress=progress, start=args.start, journal_dir=args.journal_dir,
                    on_error="keep" if args.keep_on_error else "rollback", checksum=args.checksum,
                )  # fmt: skip
            if bars is not None:
                bars.close()
            out.write(f"{result}\n")
            return 0
    except KeyboardInterrupt as exc:
        exc.add_note("the journal keeps what was done: --resume or --rollback it")
        raise
