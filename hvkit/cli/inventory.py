"""``hvkit backends|host|pool|net``: what is installed and what a hypervisor has."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import _registry
from .._matrix import matrix_markdown
from ..capabilities import Capability
from ._common import emit, open_hv

__all__ = ["register"]


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("backends", parents=[common], help="installed backends and their capabilities")
    p.set_defaults(func=backends)
    for noun, helptext, func in (("host", "hosts", hosts), ("pool", "storage pools", pools), ("net", "networks", nets)):
        parser = sub.add_parser(noun, help=helptext)
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="list")
        verbs.add_parser("list", parents=[common], help=f"list {helptext}").set_defaults(func=func)


def backends(args: argparse.Namespace) -> int:
    rows = []
    for kind, found in _registry.available().items():
        entry = _registry.known()[kind]
        if isinstance(found, ImportError):
            rows.append(
                {
                    "kind": kind,
                    "installed": False,
                    "capabilities": [],
                    "install": f"pip install 'hvkit[{entry.extra}]'",
                    "description": entry.description,
                }
            )
        else:
            caps = sorted(c.value for c in found.capabilities)
            rows.append(
                {"kind": kind, "installed": True, "capabilities": caps, "install": "", "description": entry.description}
            )
    if args.json:
        emit(args, rows, [])
        return 0
    names = [c.value for c in Capability]
    emit(
        args,
        rows,
        [
            ("KIND", lambda r: r["kind"]),
            ("INSTALLED", lambda r: "yes" if r["installed"] else r["install"]),
            ("CAPS", lambda r: f"{len(r['capabilities'])}/{len(names)}"),
            ("DESCRIPTION", lambda r: r["description"]),
        ],
    )
    sys.stdout.write("\n" + matrix_markdown())
    return 0


def hosts(args: argparse.Namespace) -> int:
    with open_hv(args) as hv:
        rows = hv.hosts.list()
    emit(
        args,
        rows,
        [
            ("NAME", lambda h: h.name),
            ("ID", lambda h: h.id),
            ("CPUS", lambda h: f"{h.cpu_sockets}s/{h.cpu_cores}c/{h.cpu_threads}t"),
            ("MEMORY_MIB", lambda h: h.memory_mib),
            ("USED_MIB", lambda h: h.memory_used_mib),
            ("CPU_USE", lambda h: h.cpu_usage),
            ("HYPERVISOR", lambda h: f"{h.hypervisor_kind} {h.hypervisor_version}".strip()),
            ("MAINT", lambda h: "yes" if h.maintenance else ""),
        ],
    )
    return 0


def pools(args: argparse.Namespace) -> int:
    gib = 1024**3
    with open_hv(args) as hv:
        rows = hv.pools.list()
    emit(
        args,
        rows,
        [
            ("NAME", lambda p: p.name),
            ("TYPE", lambda p: p.type),
            ("CAPACITY_GIB", lambda p: round(p.capacity_bytes / gib, 1)),
            ("FREE_GIB", lambda p: round(p.free_bytes / gib, 1)),
            ("SHARED", lambda p: "yes" if p.shared else ""),
            ("FORMATS", lambda p: sorted(f.value for f in p.formats)),
        ],
    )
    return 0


def nets(args: argparse.Namespace) -> int:
    with open_hv(args) as hv:
        rows = hv.networks.list()
    emit(
        args,
        rows,
        [
            ("NAME", lambda n: n.name),
            ("TYPE", lambda n: n.type),
            ("BRIDGE", lambda n: n.bridge),
            ("VLAN", lambda n: n.vlan),
        ],
    )
    return 0
