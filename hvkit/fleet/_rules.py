"""Placement rules: affinity (keep VMs together), anti-affinity (keep them apart), and where they apply.

Rules name VMs by name, id, or ``HYPERVISOR:NAME`` when a name exists on several hypervisors.
Rules can also come from VM tags: ``affinity=GROUP`` and ``anti-affinity=GROUP`` (see
:func:`rules_from_tags`). Host maintenance mode is read from each host (``Host.maintenance``); the
balance and consolidation plans evacuate such hosts and never move a VM onto one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from ..errors import InvalidSpec
from ..models import VM

__all__ = ["Affinity", "AntiAffinity", "Rule", "resolve_rules", "rules_from_tags"]

_SCOPES = ("host", "pool", "both")


def _members(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise InvalidSpec(f"a rule takes a collection of VM names, got the string {value!r}")
    out = frozenset(value)
    for v in out:
        if not isinstance(v, str) or not v:
            raise InvalidSpec(f"a rule names VMs by non-empty strings, got {v!r}")
    if len(out) < 2:
        raise InvalidSpec(f"a rule needs at least two VMs, got {sorted(out)}")
    return out


def _scope(value: str) -> str:
    if value not in _SCOPES:
        raise InvalidSpec(f"rule scope must be one of {', '.join(_SCOPES)}, got {value!r}")
    return value


@attrs.frozen
class Affinity:
    """These VMs run on one host (scope "host"), keep their disks in one pool ("pool"), or both."""

    vms: frozenset[str] = attrs.field(converter=_members)
    name: str = ""
    scope: str = attrs.field(default="host", converter=_scope)


@attrs.frozen
class AntiAffinity:
    """No two of these VMs share a host (scope "host"), a pool ("pool"), or either ("both")."""

    vms: frozenset[str] = attrs.field(converter=_members)
    name: str = ""
    scope: str = attrs.field(default="host", converter=_scope)


Rule = Affinity | AntiAffinity

# the tag keys that make rules, and the rule each makes
_RULE_TAGS: dict[str, type[Affinity] | type[AntiAffinity]] = {"affinity": Affinity, "anti-affinity": AntiAffinity}


def rules_from_tags(vms: Iterable[VM]) -> list[Rule]:
    """Rules from tags ``affinity=GROUP`` / ``anti-affinity=GROUP`` (per hypervisor; groups of 2+)."""
    groups: dict[tuple[str, str, str | None], set[str]] = {}
    for vm in vms:
        for tag in vm.tags:
            key, sep, group = tag.partition("=")
            if sep and key in _RULE_TAGS and group:
                ref = f"{vm.hypervisor}:{vm.id}" if vm.hypervisor else vm.id
                groups.setdefault((key, group, vm.hypervisor), set()).add(ref)
    out: list[Rule] = []
    for (key, group, _), refs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")):
        if len(refs) >= 2:
            out.append(_RULE_TAGS[key](refs, name=group))
    return out


def _index(vms: Sequence[VM]) -> Mapping[str, list[VM]]:
    index: dict[str, list[VM]] = {}
    for vm in vms:
        keys = {vm.id, vm.name}
        if vm.hypervisor:
            keys |= {f"{vm.hypervisor}:{vm.id}", f"{vm.hypervisor}:{vm.name}"}
        for k in keys:
            index.setdefault(k, []).append(vm)
    return index


def resolve_rules(rules: Iterable[Rule], vms: Sequence[VM], scope: str) -> tuple[list[list[VM]], list[list[VM]]]:
    """Check rules against the inventory; return (affinity groups, anti-affinity groups) that apply to ``scope``.

    Raises InvalidSpec for an unknown or ambiguous VM reference, or a rule that is not a Rule.
    """
    index = _index(vms)
    aff: list[list[VM]] = []
    anti: list[list[VM]] = []
    for rule in rules:
        if not isinstance(rule, Affinity | AntiAffinity):
            raise InvalidSpec(f"rules must be Affinity or AntiAffinity values, got {type(rule).__name__}")
        chosen: dict[tuple[str | None, str], VM] = {}
        for ref in sorted(rule.vms):
            found = {(v.hypervisor, v.id): v for v in index.get(ref, [])}
            if not found:
                raise InvalidSpec(f"rule {rule.name or sorted(rule.vms)} names VM {ref!r}, which is not in the fleet")
            if len(found) > 1:
                where = ", ".join(sorted(f"{h}:{i}" for h, i in found))
                raise InvalidSpec(f"rule names VM {ref!r}, which is ambiguous ({where}); write HYPERVISOR:NAME")
            chosen.update(found)
        if rule.scope not in (scope, "both"):
            continue
        (aff if isinstance(rule, Affinity) else anti).append(list(chosen.values()))
    return aff, anti
