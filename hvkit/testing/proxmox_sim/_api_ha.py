"""The simulated PVE HA API: resources, node-affinity rules and the manager's status (its CRM: ``_ha_manager``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from . import _ha_manager as ha_manager
from ._request import Request, route
from .state import PVEError


def _sid(text: str) -> tuple[str, int]:
    guest_type, sep, ident = text.partition(":")
    if not sep:
        guest_type, ident = "vm", text
    if guest_type not in ("vm", "ct") or not ident.isdigit():
        raise PVEError(400, "Parameter verification failed.", {"sid": f"unable to parse service id '{text}'\n"})
    return guest_type, int(ident)


@route("/cluster/ha/resources", "GET")
def list_resources(r: Request) -> Any:
    with r.c.mu:
        items = [dict(v) for _, v in sorted(r.c.ha_resources.items())]
    digest = hashlib.sha1(json.dumps(items, sort_keys=True).encode()).hexdigest()
    res_type = r.p.get("type")
    return [{**v, "digest": digest} for v in items if res_type is None or v["type"] == res_type]


@route("/cluster/ha/resources", "POST")
def create_resource(r: Request) -> Any:
    guest_type, vmid = _sid(r.p["sid"])
    state = r.p.get("state", "started")
    # the schema checked state (started, stopped, enabled, disabled, ignored) and the numbers
    sid = f"{guest_type}:{vmid}"
    with r.c.mu:
        if vmid not in r.c.vms:
            raise PVEError(500, f"unable to find configuration file for VM {vmid} - no such machine")
        if sid in r.c.ha_resources:
            raise PVEError(500, f"resource ID '{sid}' already defined")
        entry: dict[str, Any] = {"sid": sid, "type": guest_type, "state": "started" if state == "enabled" else state,
                                 "max_restart": int(r.p.get("max_restart", 1)),
                                 "max_relocate": int(r.p.get("max_relocate", 1))}  # fmt: skip
        for key in ("group", "comment"):
            if key in r.p:
                entry[key] = r.p[key]
        if "failback" in r.p:
            entry["failback"] = 1 if r.flag("failback") else 0
        r.c.ha_resources[sid] = entry
    return None


def _resource(r: Request) -> tuple[str, dict[str, Any]]:
    guest_type, vmid = _sid(r.p["sid"])
    sid = f"{guest_type}:{vmid}"
    entry = r.c.ha_resources.get(sid)
    if entry is None:
        raise PVEError(500, f"no such resource '{sid}'")
    return sid, entry


@route("/cluster/ha/resources/{sid}", "GET")
def read_resource(r: Request) -> Any:
    with r.c.mu:
        _, entry = _resource(r)
        digest = hashlib.sha1(json.dumps(sorted(r.c.ha_resources.items()), sort_keys=True).encode()).hexdigest()
        return {**entry, "digest": digest}


@route("/cluster/ha/resources/{sid}", "PUT")
def update_resource(r: Request) -> Any:
    with r.c.mu:
        sid, entry = _resource(r)
        state = r.p.get("state")
        crm = r.c.ha_services.get(sid, {})
        if crm.get("state") == "error" and state != "disabled":
            raise PVEError(500, f"service '{sid}' in error state, must be disabled and fixed first")
        if state is not None:
            entry["state"] = "started" if state == "enabled" else state
            if state == "disabled" and crm.get("state") == "error":
                crm["state"] = "stopped"  # the admin took it out of the error state
        for key in ("max_restart", "max_relocate"):
            if key in r.p:
                entry[key] = int(r.p[key])
        if "failback" in r.p:
            entry["failback"] = 1 if r.flag("failback") else 0
        if "comment" in r.p:
            entry["comment"] = r.p["comment"]
        for key in (r.p.get("delete") or "").replace(";", ",").split(","):
            if key.strip() in ("comment", "failback"):
                entry.pop(key.strip(), None)
    return None


@route("/cluster/ha/resources/{sid}", "DELETE")
def delete_resource(r: Request) -> Any:
    guest_type, vmid = _sid(r.p["sid"])
    sid = f"{guest_type}:{vmid}"
    with r.c.mu:
        if sid not in r.c.ha_resources:
            raise PVEError(500, f"cannot delete service '{sid}', not HA managed!")
        del r.c.ha_resources[sid]
        if r.flag("purge", True):  # drop it from the rules; a rule left with no resource goes
            for rule_id, rule in list(r.c.ha_rules.items()):
                left = [s for s in rule["resources"].split(",") if s != sid]
                if not left:
                    del r.c.ha_rules[rule_id]
                else:
                    rule["resources"] = ",".join(left)
    return None


def _rules_digest(r: Request) -> str:
    return hashlib.sha1(json.dumps(sorted(r.c.ha_rules.items()), sort_keys=True).encode()).hexdigest()


@route("/cluster/ha/rules", "GET")
def list_rules(r: Request) -> Any:
    rule_type, resource = r.p.get("type"), r.p.get("resource")
    with r.c.mu:
        digest = _rules_digest(r)
        return [
            {**rule, "rule": rule_id, "digest": digest}
            for rule_id, rule in sorted(r.c.ha_rules.items())
            if (rule_type is None or rule["type"] == rule_type)
            and (resource is None or resource in rule["resources"].split(","))
        ]


@route("/cluster/ha/rules", "POST")
def create_rule(r: Request) -> Any:
    rule_id, rule_type = r.p["rule"], r.p["type"]
    resources = sorted({f"{k}:{v}" for k, v in (_sid(s) for s in r.p["resources"].split(",") if s)})
    with r.c.mu:
        if rule_id in r.c.ha_rules:
            raise PVEError(500, f"HA rule '{rule_id}' already defined")
        if not resources:
            raise PVEError(500, "no resources were specified")
        unmanaged = [s for s in resources if s not in r.c.ha_resources]
        if unmanaged:
            raise PVEError(500, f"cannot use unmanaged resource(s) {', '.join(unmanaged)}.")
        rule: dict[str, Any] = {"type": rule_type, "resources": ",".join(resources)}
        if rule_type == "node-affinity":
            nodes = [n for n in (r.p.get("nodes") or "").split(",") if n]
            if not nodes:
                raise PVEError(500, "no nodes were specified")
            missing = [n.partition(":")[0] for n in nodes if n.partition(":")[0] not in r.c.nodes]
            if missing:
                raise PVEError(500, f"cannot use non-existent node(s) {', '.join(missing)}.")
            rule["nodes"] = ",".join(nodes)
            rule["strict"] = 1 if r.flag("strict") else 0
        elif "affinity" in r.p:
            rule["affinity"] = r.p["affinity"]
        for key in ("comment",):
            if key in r.p:
                rule[key] = r.p[key]
        if r.flag("disable"):
            rule["disable"] = 1
        r.c.ha_rules[rule_id] = rule
    return None


@route("/cluster/ha/rules/{rule}", "GET")
def read_rule(r: Request) -> Any:
    with r.c.mu:
        rule = r.c.ha_rules.get(r.p["rule"])
        if rule is None:
            raise PVEError(500, f"no such ha rule '{r.p['rule']}'")
        return {**rule, "rule": r.p["rule"], "digest": _rules_digest(r)}


@route("/cluster/ha/rules/{rule}", "DELETE")
def delete_rule(r: Request) -> Any:
    with r.c.mu:
        r.c.ha_rules.pop(r.p["rule"], None)  # PVE deletes without checking that it was there
    return None


@route("/cluster/ha/status/current", "GET")
def current_status(r: Request) -> Any:
    return ha_manager.status(r.c)
