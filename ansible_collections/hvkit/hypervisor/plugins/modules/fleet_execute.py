#!/usr/bin/python
# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_execute
short_description: Balance or consolidate a fleet of hypervisors by live migration
description:
  - Makes the plan M(hvkit.hypervisor.fleet_plan) makes, from the inventory as it is now, and runs its moves
    in order (each VM is read again first, and a stale plan stops there), stopping at the first failure.
  - A fleet already balanced gets a plan with no moves, so a second run reports no change.
  - Check mode returns the plan and moves nothing; diff mode shows each moved VM's place before and after.
version_added: 0.1.0
author: hvkit contributors (@hvkit)
options:
  timeout:
    description: Seconds each move may take.
    type: float
    default: 1800
extends_documentation_fragment:
  - hvkit.hypervisor.fleet
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Consolidate the lab, then power off what it frees
  hvkit.hypervisor.fleet_execute:
    members: {lab: "sim://lab"}
    kind: consolidate
    target: 0.8
  register: outcome
"""

RETURN = r"""
plan:
  description: The plan that was run (or would be, in check mode).
  returned: always
  type: dict
outcome:
  description: The moves done, and the one that failed with its error.
  returned: when moves ran
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hvkit.hypervisor.plugins.module_utils.hvkit_common import fail, require_hvkit
from ansible_collections.hvkit.hypervisor.plugins.module_utils.hvkit_fleet import (
    PLAN_SPEC,
    failures,
    make_plan,
    open_fleet,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(PLAN_SPEC, timeout=dict(type="float", default=1800)), supports_check_mode=True
    )
    require_hvkit(module)
    fleet = None
    action = "planning"
    try:
        fleet = open_fleet(module.params)
        plan = make_plan(fleet, module.params)
        data = plan.to_dict()
        for move, item in zip(plan.moves, data["moves"]):
            item["describe"] = move.describe()
        result = dict(changed=bool(plan.moves), plan=data, failures=failures(fleet))
        if module._diff:
            result["diff"] = dict(
                before="".join("%s: %s\n" % (m.vm_name or m.item, m.source_name or m.source) for m in plan.moves),
                after="".join("%s: %s\n" % (m.vm_name or m.item, m.target_name or m.target) for m in plan.moves),
            )
        if module.check_mode or not plan.moves:
            module.exit_json(**result)
        action = "running the plan"
        outcome = fleet.execute(plan, timeout=module.params["timeout"])
        result["outcome"] = outcome.to_dict()
        if not outcome.ok:
            module.fail_json(
                msg="move %s failed: %s" % (outcome.failed.describe(), result["outcome"]["error"]), **result
            )
        module.exit_json(**result)
    except Exception as exc:
        fail(module, exc, action)
    finally:
        if fleet is not None:
            fleet.close()


if __name__ == "__main__":
    main()
