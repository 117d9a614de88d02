"""``hvkit fleet``: list, hosts, capacity, health, balance and consolidate over many hypervisors.

Members come from ``-m/--member`` (repeatable: a URL, a profile name, or ``LABEL=URL``), else from
``$HVKIT_FLEET`` (comma-separated), else the global ``--url``/``--profile``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .._units import format_bytes
from ..errors import InvalidSpec
from ..fleet import Affinity, AntiAffinity, Fleet, PlacementPlan, Rule, Step
from ..hypervisor import Hypervisor
from ._common import ProgressBars, emit, open_url, report_error, to_jsonable
from ._recover import add_recover

__all__ = ["register"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``fleet`` and its sub-commands to ``subparsers`` (from ``add_subparsers()``); return its parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "fleet",
        help="one view over many hypervisors: inventory, capacity, health, balancing, consolidation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="fleet_command", required=True, metavar="FLEET_COMMAND")

    def command(name: str, help: str, fn: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        c: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help)
        c.add_argument(
            "-m",
            "--member",
            action="append",
            default=[],
            metavar="SOURCE",
            help="a hypervisor: URL, profile name, or LABEL=URL (repeatable)",
        )
        c.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
        c.set_defaults(func=fn)
        return c

    c = command("list", "VMs of every member, filtered", _list)
    c.add_argument("--name", help="name pattern (glob)")
    c.add_argument("--state", action="append", help="power state (repeatable)")
    c.add_argument("--tag", action="append", help="tag the VM must have (repeatable: all of them)")
    c.add_argument("--host", help="host id or name pattern")
    c.add_argument("--kind", help="backend kind (sim, kvm, vcenter ...)")
    c.add_argument("--hypervisor", help="member label pattern")

    c = command("hosts", "hosts of every member", _hosts)
    c.add_argument("--name", help="name pattern (glob)")
    c.add_argument("--kind", help="backend kind")

    command("capacity", "CPU and memory allocated vs physical, measured usage; pools used, free, headroom", _capacity)

    c = command(
        "health", "findings: overloaded hosts, full pools, old snapshots, long-stopped VMs, single points", _health
    )
    c.add_argument("--host-threshold", type=float, default=0.85, metavar="RATIO")
    c.add_argument("--pool-threshold", type=float, default=0.9, metavar="RATIO")
    c.add_argument("--snapshot-days", type=float, default=7.0, metavar="DAYS")
    c.add_argument("--stopped-days", type=float, default=30.0, metavar="DAYS")
    c.add_argument("--no-snapshots", action="store_true", help="skip the snapshot check (one call per VM)")

    c = command("balance", "live migrations that bring every host under a target load (or pools, --storage)", _balance)
    c.add_argument("--target", type=float, default=0.8, metavar="RATIO", help="load ratio every host must end under")
    c.add_argument("--storage", action="store_true", help="balance pools (storage migration) instead of hosts")
    c.add_argument("--evacuate", action="append", default=[], metavar="HOST", help="treat a host as in maintenance")
    c.add_argument("--max-moves", type=int, metavar="N")
    _plan_options(c)

    c = command("consolidate", "live migrations that empty the most hosts, keeping each under a headroom", _consolidate)
    c.add_argument("--headroom", type=float, default=0.8, metavar="RATIO", help="load ratio every host must stay under")
    c.add_argument("--watts", type=float, metavar="W", help="power drawn by one host, for the saving estimate")
    c.add_argument(
        "--solver", choices=["auto", "greedy", "highs"], default="auto", help="HiGHS refines when installed (auto)"
    )
    c.add_argument("--time-limit", type=float, default=1.0, metavar="S", help="seconds the solver may take")
    c.add_argument(
        "--search-time", type=float, default=0.5, metavar="S", help="seconds to search for fewer hosts (0: off)"
    )
    _plan_options(c)

    add_recover(command, _fleet)

    c = command("report", "one self-contained HTML page: host and pool charts, a plan's moves, findings", _report)
    c.add_argument("--html", required=True, metavar="FILE", help="where to write the page (opens offline)")
    c.add_argument("--plan", choices=["balance", "consolidate", "none"], default="balance", help="the plan to show")
    c.add_argument(
        "--target", type=float, default=0.8, metavar="RATIO", help="balance target or consolidation headroom"
    )
    c.add_argument("--cpu-overcommit", type=float, default=4.0, metavar="RATIO", help="vCPUs per thread allowed")
    c.add_argument("--no-snapshots", action="store_true", help="skip the snapshot check (one call per VM)")
    return p


def _plan_options(c: argparse.ArgumentParser) -> None:
    c.add_argument("--dry-run", action="store_true", help="show the plan; move nothing")
    c.add_argument("--affinity", action="append", default=[], metavar="VM,VM[,...]", help="keep these VMs together")
    c.add_argument("--anti-affinity", action="append", default=[], metavar="VM,VM[,...]", help="keep these VMs apart")
    c.add_argument(
        "--demand",
        choices=["allocated", "measured"],
        default="allocated",
        help="size VMs by what they were given (default) or what they use",
    )
    c.add_argument("--cpu-overcommit", type=float, default=4.0, metavar="RATIO", help="vCPUs per thread allowed")
    c.add_argument("--no-tag-rules", action="store_true", help="ignore affinity=G / anti-affinity=G tags")


# -- helpers ---------------------------------------------------------------------------------------------
def _opener(text: str) -> Hypervisor:
    """A member: a URL (anything with ``://``) or a profile name, opened like every hvkit command opens it."""
    return open_url(text) if "://" in text else open_url(None, profile=text)


def _fleet(args: argparse.Namespace) -> Fleet:
    members: list[str] = list(args.member)
    if not members and os.environ.get("HVKIT_FLEET"):
        members = [m.strip() for m in os.environ["HVKIT_FLEET"].split(",") if m.strip()]
    if not members:
        single = getattr(args, "url", None) or getattr(args, "profile", None) or os.environ.get("HVKIT_URL")
        if not single:
            raise InvalidSpec("no fleet members: pass -m URL (repeatable), set HVKIT_FLEET, or give --url/--profile")
        members = [single]
    named: dict[str, str] = {}
    for m in members:
        label, sep, source = m.partition("=")
        if sep and "://" not in label and label and source:
            named[label] = source
        else:
            named[m] = m
    fleet = Fleet(named, opener=_opener)
    for f in fleet.inventory.failures:
        sys.stderr.write(f"hvkit: warning: {f.hypervisor}: {f.operation} failed: {f.error_type}: {f.error}\n")
    return fleet


def _json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def _dump(value: Any, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    json.dump(to_jsonable(value), out, indent=2, sort_keys=True)
    out.write("\n")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _gib(n: float) -> str:
    return f"{n / 1024**3:.1f}"


def _rules(args: argparse.Namespace) -> list[Rule]:
    rules: list[Rule] = []
    for kind, values in ((Affinity, args.affinity), (AntiAffinity, args.anti_affinity)):
        for text in values:
            rules.append(kind(frozenset(v.strip() for v in text.split(",") if v.strip())))
    return rules


# -- commands --------------------------------------------------------------------------------------------
def _list(args: argparse.Namespace) -> int:
    with _fleet(args) as fleet:
        vms = fleet.vms(
            name=args.name,
            power_state=args.state,
            tag=args.tag,
            host=args.host,
            kind=args.kind,
            hypervisor=args.hypervisor,
        )
        hosts = {(h.hypervisor, h.id): h.name for h in fleet.inventory.hosts}
        emit(
            args,
            vms,
            [
                ("HYPERVISOR", lambda v: v.hypervisor),
                ("NAME", lambda v: v.name),
                ("STATE", lambda v: v.power_state),
                ("HOST", lambda v: hosts.get((v.hypervisor, v.host or ""), v.host)),
                ("CPUS", lambda v: v.cpus),
                ("MEMORY_MIB", lambda v: v.memory_mib),
                ("TAGS", lambda v: sorted(v.tags)),
            ],
        )
    return 0


def _hosts(args: argparse.Namespace) -> int:
    with _fleet(args) as fleet:
        emit(
            args,
            fleet.hosts(name=args.name, kind=args.kind),
            [
                ("HYPERVISOR", lambda h: h.hypervisor),
                ("NAME", lambda h: h.name),
                ("ID", lambda h: h.id),
                ("CPUS", lambda h: h.cpu_threads),
                ("MEMORY_MIB", lambda h: h.memory_mib),
                ("CPU_USE", lambda h: _pct(h.cpu_usage)),
                ("MEM_USED_MIB", lambda h: h.memory_used_mib),
                ("MAINTENANCE", lambda h: "yes" if h.maintenance else "no"),
            ],
        )
    return 0


def _capacity(args: argparse.Namespace) -> int:
    with _fleet(args) as fleet:
        report = fleet.capacity()
    if _json(args):
        _dump(report.to_dict())
        return 0
    emit(
        args,
        report.hosts,
        [
            ("HYPERVISOR", lambda h: h.hypervisor),
            ("HOST", lambda h: h.name),
            ("VCPUS", lambda h: f"{h.vcpus_allocated}/{h.cpus}"),
            ("CPU_OVERCOMMIT", lambda h: f"{h.cpu_overcommit:.2f}"),
            ("MEMORY_MIB", lambda h: f"{h.memory_allocated_mib}/{h.memory_mib}"),
            ("MEM_OVERCOMMIT", lambda h: f"{h.memory_overcommit:.2f}"),
            ("CPU_USE", lambda h: _pct(h.cpu_usage)),
            ("MEM_USE", lambda h: _pct(h.memory_usage)),
            ("VMS", lambda h: f"{h.vms_running}/{h.vms_total}"),
        ],
    )
    sys.stdout.write("\n")
    emit(
        args,
        report.pools,
        [
            ("HYPERVISOR", lambda p: p.hypervisor),
            ("POOL", lambda p: p.name),
            ("USED_GIB", lambda p: _gib(p.used_bytes)),
            ("FREE_GIB", lambda p: _gib(p.free_bytes)),
            ("USED", lambda p: _pct(p.used_ratio)),
            ("PROVISIONED_GIB", lambda p: _gib(p.provisioned_bytes)),
            ("HEADROOM_GIB", lambda p: _gib(p.growth_headroom_bytes)),
        ],
    )
    return 0


def _health(args: argparse.Namespace) -> int:
    with _fleet(args) as fleet:
        findings = fleet.health(
            host_threshold=args.host_threshold,
            pool_threshold=args.pool_threshold,
            snapshot_days=None if args.no_snapshots else args.snapshot_days,
            stopped_days=args.stopped_days,
        )
    if _json(args):
        _dump([f.to_dict() for f in findings])
        return 0
    if not findings:
        sys.stdout.write("no findings\n")
    for f in findings:
        sys.stdout.write(f"{f.severity.upper():8} {f.check:26} {f.hypervisor or '-'}: {f.message}\n")
    return 0


def _show(args: argparse.Namespace, plan: PlacementPlan) -> None:
    if _json(args):
        return
    out = sys.stdout
    if not plan.moves:
        out.write("nothing to move\n")
    for n, m in enumerate(plan.moves, 1):
        out.write(f"{n:4}. {m.describe()}\n")
    if plan.moves:
        out.write(f"{len(plan.moves)} move(s), {format_bytes(plan.data_bytes)} to copy\n")
    if plan.bins_used is not None:  # a consolidation
        out.write(f"hosts used after: {plan.bins_used} (lower bound {plan.lower_bound}, planner {plan.planner}); ")
        out.write(f"freed: {len(plan.freed)}")
        out.write(f" ({', '.join(plan.freed)})\n" if plan.freed else "\n")
        if plan.power_saved_watts is not None:
            out.write(f"estimated power saved: {plan.power_saved_watts:.0f} W\n")
    for u in plan.unresolved:
        out.write(f"unresolved: {u}\n")


def _run(args: argparse.Namespace, fleet: Fleet, plan: PlacementPlan) -> int:
    _show(args, plan)
    if args.dry_run:
        if _json(args):
            _dump(plan.to_dict())
        return 0

    bars = ProgressBars(sys.stderr, lines=False)

    def progress(step: Step) -> None:
        if step.status == "progress":
            bars.update(f"move {step.index}/{step.total}", "migrate", step.percent, 100)
        else:
            bars.say(f"[{step.index}/{step.total}] {step.status}: {step.message}")

    outcome = fleet.execute(plan, progress=progress)
    if _json(args):
        _dump({"plan": plan.to_dict(), "outcome": outcome.to_dict()})
    if outcome.error is not None:
        outcome.error.add_note(f"stopped at move {len(outcome.done) + 1} of {len(plan.moves)}")
        return report_error(outcome.error)
    return 0


def _balance(args: argparse.Namespace) -> int:
    rules = _rules(args)
    with _fleet(args) as fleet:
        if args.storage:
            plan = fleet.balance_storage(args.target, rules, max_moves=args.max_moves, tag_rules=not args.no_tag_rules)
        else:
            plan = fleet.balance(
                args.target,
                rules,
                demand=args.demand,
                cpu_overcommit=args.cpu_overcommit,
                evacuate=args.evacuate,
                max_moves=args.max_moves,
                tag_rules=not args.no_tag_rules,
            )
        return _run(args, fleet, plan)


def _consolidate(args: argparse.Namespace) -> int:
    rules = _rules(args)
    with _fleet(args) as fleet:
        plan = fleet.consolidate(
            args.headroom,
            rules,
            watts_per_host=args.watts,
            demand=args.demand,
            cpu_overcommit=args.cpu_overcommit,
            tag_rules=not args.no_tag_rules,
            solver=args.solver,
            time_limit=args.time_limit,
            search_time=args.search_time,
        )
        return _run(args, fleet, plan)


def _report(args: argparse.Namespace) -> int:
    from ..fleet import html_report

    with _fleet(args) as fleet:
        report = fleet.capacity()
        findings = fleet.health(snapshot_days=None if args.no_snapshots else 7.0)
        plan: PlacementPlan | None = None
        if args.plan == "balance":
            plan = fleet.balance(args.target, cpu_overcommit=args.cpu_overcommit)
        elif args.plan == "consolidate":
            plan = fleet.consolidate(args.target, cpu_overcommit=args.cpu_overcommit)
        page = html_report(report, findings, plan, fleet.inventory.vms, cpu_overcommit=args.cpu_overcommit)
    Path(args.html).write_text(page, encoding="utf-8")
    if _json(args):
        _dump({"html": args.html, "bytes": len(page), "plan": None if plan is None else plan.to_dict()})
    else:
        sys.stdout.write(f"wrote {args.html} ({format_bytes(len(page))})\n")
    return 0
