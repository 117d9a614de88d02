#!/usr/bin/python
# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_plan
short_description: Plan balancing or consolidation moves over many hypervisors, changing nothing
description:
  - Reads a fleet of hypervisors of any vendors as one inventory (concurrently) and returns the placement plan
    hvkit's planners make, with its moves, predicted loads and what it could not do.
  - Never changes anything; use M(hvkit.hypervisor.fleet_execute) to carry a plan out.
version_added: 0.1.0
author: hvkit contributors (@hvkit)
options:
  timeout:
    description: Seconds the whole task may take; fails with a timeout error beyond.
    type: float
    default: 600
extends_documentation_fragment:
  - hvkit.hypervisor.fleet
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads only; the same result as a normal run.
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: What would empty host esx3?
  hvkit.hypervisor.fleet_plan:
    members: {prod: prod-vcenter, lab: "kvm+ssh://root@lab1/system"}
    kind: balance
    target: 0.8
    evacuate: [esx3]
  register: plan
"""

RETURN = r"""
plan:
  description: The plan (kind, target, moves with their describe text, before/after loads, unresolved, freed).
  returned: always
  type: dict
failures:
  description: Members that could not be read (the plan covers the others).
  returned: always
  type: list
  elements: dict
"""

import signal

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hvkit.hypervisor.plugins.module_utils.hvkit_common import fail, require_hvkit
from ansible_collections.hvkit.hypervisor.plugins.module_utils.hvkit_fleet import (
    PLAN_SPEC,
    failures,
    make_plan,
    open_fleet,
)


def plan_to_dict(plan):
    data = plan.to_dict()
    for move, item in zip(plan.moves, data["moves"]):
        item["describe"] = move.describe()
    return data


class TaskTimeout(Exception):
    pass


def deadline(seconds):
    def expired(signum, frame):
        raise TaskTimeout("the task took longer than %g s" % seconds)

    signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def main():
    module = AnsibleModule(
        argument_spec=dict(PLAN_SPEC, timeout=dict(type="float", default=600)), supports_check_mode=True
    )
    require_hvkit(module)
    fleet = None
    try:
        deadline(module.params["timeout"])
        fleet = open_fleet(module.params)
        plan = make_plan(fleet, module.params)
        module.exit_json(changed=False, plan=plan_to_dict(plan), failures=failures(fleet))
    except Exception as exc:
        fail(module, exc, "planning")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if fleet is not None:
            fleet.close()


if __name__ == "__main__":
    main()
