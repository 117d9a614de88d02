#!/usr/bin/python
# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: snapshot
short_description: Take, revert to and delete VM snapshots on any hypervisor hvkit reaches
description:
  - Makes sure a snapshot of the given name exists (V(present)), does not exist (V(absent)), or reverts the VM
    to it (V(reverted), which always reports a change).
version_added: 0.1.0
author: hvkit contributors (@hvkit)
options:
  vm:
    description: The VM (name or id).
    type: str
    required: true
  name:
    description: The snapshot's name (or id, to revert or delete).
    type: str
    required: true
  state:
    description: What to do.
    type: str
    choices: [present, absent, reverted]
    default: present
  description:
    description: Description of a new snapshot.
    type: str
    default: ""
  memory:
    description: Include memory; by default with memory when the VM runs and the backend can.
    type: bool
  quiesce:
    description: Quiesce the guest's file systems first (needs guest tools).
    type: bool
    default: false
  children:
    description: With V(absent), delete the snapshot's children too.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for the operation.
    type: float
    default: 1800
extends_documentation_fragment:
  - hvkit.hypervisor.connection
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
- name: Snapshot before an upgrade
  hvkit.hypervisor.snapshot:
    url: "kvm:///system"
    vm: web-1
    name: before-upgrade

- name: Go back
  hvkit.hypervisor.snapshot:
    url: "kvm:///system"
    vm: web-1
    name: before-upgrade
    state: reverted
"""

RETURN = r"""
snapshot:
  description: The snapshot (absent when deleted).
  returned: when it exists
  type: dict
  sample: {"id": "snap-3", "name": "before-upgrade", "vm": "vm-1", "memory": false, "current": true}
actions:
  description: What the task did, or would do in check mode.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hvkit.hypervisor.plugins.module_utils.hvkit_common import (
    argument_spec,
    close_quietly,
    connect,
    fail,
    snapshot_to_dict,
)


def find_snapshot(snaps, ref):
    by_id = [s for s in snaps if s.id == ref]
    return (by_id or [s for s in snaps if s.name == ref] or [None])[0]


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            vm=dict(type="str", required=True),
            name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent", "reverted"]),
            description=dict(type="str", default=""),
            memory=dict(type="bool"),
            quiesce=dict(type="bool", default=False),
            children=dict(type="bool", default=False),
            timeout=dict(type="float", default=1800),
        ),
        supports_check_mode=True,
    )
    params = module.params
    hv = connect(module)
    action = "reading the snapshots of VM %r" % params["vm"]
    try:
        vm = hv.vms.get(params["vm"])
        snap = find_snapshot(hv.snapshots.list(vm), params["name"])
        state = params["state"]
        before = snapshot_to_dict(snap) if snap else None
        if state == "present":
            actions = [] if snap else ["create"]
        elif state == "absent":
            actions = ["delete"] if snap else []
        else:
            if snap is None:
                module.fail_json(msg="snapshot %r of VM %r not found" % (params["name"], vm.name), error="NotFound")
            actions = ["revert"]
        result = dict(changed=bool(actions), actions=actions)
        if module._diff:
            result["diff"] = dict(
                before={"snapshot": params["name"], "state": "present" if snap else "absent"},
                after={"snapshot": params["name"], "state": "absent" if state == "absent" else "present"},
            )
        if before:
            result["snapshot"] = before
        if module.check_mode or not actions:
            module.exit_json(**result)
        action = "%s of snapshot %r of VM %r" % (actions[0], params["name"], vm.name)
        if actions == ["create"]:
            snap = hv.snapshots.create(
                vm,
                params["name"],
                description=params["description"],
                memory=params["memory"],
                quiesce=params["quiesce"],
                timeout=params["timeout"],
            )
            result["snapshot"] = snapshot_to_dict(snap)
        elif actions == ["delete"]:
            hv.snapshots.delete(snap, children=params["children"], timeout=params["timeout"])
            result.pop("snapshot", None)
        else:
            hv.snapshots.revert(snap, timeout=params["timeout"])
        module.exit_json(**result)
    except Exception as exc:
        fail(module, exc, action)
    finally:
        close_quietly(hv)


if __name__ == "__main__":
    main()
