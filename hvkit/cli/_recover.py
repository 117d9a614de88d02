"""``hvkit fleet recover HOST``: restart the VMs of a down host on the surviving hosts (see Fleet.recover)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from ..fleet import Fleet, Restart
from ..fleet._rules import Affinity, AntiAffinity, Rule
from ._common import to_jsonable

__all__ = ["add_recover"]

Command = Callable[[str, str, Callable[[argparse.Namespace], int]], argparse.ArgumentParser]


def add_recover(command: Command, open_fleet: Callable[[argparse.Namespace], Fleet]) -> None:
    """Add ``recover`` through the fleet command's ``command`` helper; ``open_fleet`` opens the members."""

    def run(args: argparse.Namespace) -> int:
        return _recover(args, open_fleet(args))

    c = command("recover", "restart the VMs of a down host on the surviving hosts the planner picks", run)
    c.add_argument("host", help="the host that is down (HOST or MEMBER:HOST)")
    c.add_argument("--assume-down", action="store_true", help="the host is fenced (off) although it still answers")
    c.add_argument("--dry-run", action="store_true", help="show the plan; start nothing")
    c.add_argument("--affinity", action="append", default=[], metavar="VM,VM[,...]", help="keep these VMs together")
    c.add_argument("--anti-affinity", action="append", default=[], metavar="VM,VM[,...]", help="keep these VMs apart")
    c.add_argument("--cpu-overcommit", type=float, default=4.0, metavar="RATIO", help="vCPUs per thread allowed")
    c.add_argument("--no-tag-rules", action="store_true", help="ignore affinity=G / anti-affinity=G tags")


def _rules(args: argparse.Namespace) -> list[Rule]:
    rules: list[Rule] = [Affinity(frozenset(g.split(","))) for g in args.affinity]
    rules += [AntiAffinity(frozenset(g.split(","))) for g in args.anti_affinity]
    return rules


def _recover(args: argparse.Namespace, fleet: Fleet) -> int:
    def shown(r: Restart, what: str) -> None:
        if not getattr(args, "json", False):
            sys.stderr.write(f"{what} {r.vm_name} on {r.target_name}\n")

    with fleet:
        result = fleet.recover(
            args.host,
            rules=_rules(args),
            tag_rules=not args.no_tag_rules,
            assume_down=args.assume_down,
            dry_run=args.dry_run,
            cpu_overcommit=args.cpu_overcommit,
            progress=shown,
        )
    if getattr(args, "json", False):
        json.dump(to_jsonable(result), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(str(result.plan) + "\n")
        for x in result.failed:
            sys.stdout.write(f"  FAILED: {x.vm_name}: {x.reason}\n")
        if not args.dry_run:
            sys.stdout.write(f"restarted {len(result.restarted)} of {len(result.plan.restarts)} planned\n")
    return 1 if result.failed else 0
