# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What fleet_plan and fleet_execute share: their options and how a plan is made from them."""

from __future__ import annotations

try:
    from hvkit import fleet as hvkit_fleet
except ImportError:  # hvkit_common.require_hvkit() reports it
    hvkit_fleet = None

PLAN_SPEC = dict(
    members=dict(type="dict", required=True),
    kind=dict(type="str", default="balance", choices=["balance", "balance_storage", "consolidate"]),
    target=dict(type="float", default=0.8),
    evacuate=dict(type="list", elements="str", default=[]),
    affinity=dict(type="list", elements="list", default=[]),
    anti_affinity=dict(type="list", elements="list", default=[]),
    demand=dict(type="str", default="allocated", choices=["allocated", "measured"]),
    max_moves=dict(type="int"),
    watts_per_host=dict(type="float"),
)


def open_fleet(params):
    members = params["members"]
    for label, source in members.items():
        if not isinstance(source, str) or not source.strip():
            raise ValueError("fleet member %r must be an hvkit URL or profile name" % label)
    return hvkit_fleet.Fleet({str(k): v for k, v in members.items()})


def make_plan(fleet, params):
    """The plan the options ask for, from the fleet's inventory as it is now."""
    rules = [hvkit_fleet.Affinity(set(group)) for group in params["affinity"]]
    rules += [hvkit_fleet.AntiAffinity(set(group)) for group in params["anti_affinity"]]
    kind = params["kind"]
    if kind == "balance":
        return fleet.balance(
            params["target"], rules, demand=params["demand"], evacuate=params["evacuate"], max_moves=params["max_moves"]
        )
    if kind == "balance_storage":
        return fleet.balance_storage(params["target"], rules, max_moves=params["max_moves"])
    return fleet.consolidate(params["target"], rules, demand=params["demand"], watts_per_host=params["watts_per_host"])


def failures(fleet):
    return [{"hypervisor": f.hypervisor, "operation": f.operation, "error": f.error} for f in fleet.inventory.failures]
