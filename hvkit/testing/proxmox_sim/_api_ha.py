"""The simulated PVE HA manager's resources (``/cluster/ha/resources``): what it protects, not its fencing."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ._request import Request, route
from .state import PVEError


def _sid(text: str) -> tuple[str, int]:
    kind, sep, ident = text.partition(":")
    if not sep:
        kind, ident = "vm", text
    if kind not in ("vm", "ct") or not ident.isdigit():
        raise PVEError(400, "Parameter verification failed.", {"sid": f"unable to parse service id '{text}'\n"})
    return kind, int(ident)


@route("/cluster/ha/resources", "GET")
def list_resources(r: Request) -> Any:
    with r.c.mu:
        items = [dict(v) for _, v in sorted(r.c.ha_resources.items())]
    digest = hashlib.sha1(json.dumps(items, sort_keys=True).encode()).hexdigest()
    kind = r.p.get("type")
    return [{**v, "digest": digest} for v in items if kind is None or v["type"] == kind]


@route("/cluster/ha/resources", "POST")
def create_resource(r: Request) -> Any:
    kind, vmid = _sid(r.p["sid"])
    state = r.p.get("state", "started")
    # the schema checked state (started, stopped, enabled, disabled, ignored) and the numbers
    sid = f"{kind}:{vmid}"
    with r.c.mu:
        if vmid not in r.c.vms:
            raise PVEError(500, f"unable to find configuration file for VM {vmid} - no such machine")
        if sid in r.c.ha_resources:
            raise PVEError(500, f"resource ID '{sid}' already defined")
        entry: dict[str, Any] = {"sid": sid, "type": kind, "state": "started" if state == "enabled" else state,
                                 "max_restart": int(r.p.get("max_restart", 1)),
                                 "max_relocate": int(r.p.get("max_relocate", 1))}  # fmt: skip
        for key in ("group", "comment"):
            if key in r.p:
                entry[key] = r.p[key]
        r.c.ha_resources[sid] = entry
    return None
