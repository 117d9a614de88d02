#!/usr/bin/python
# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: vm_info
short_description: List virtual machines of one hypervisor, in one bulk read
description:
  - Reads the VMs of a hypervisor through hvkit's bulk listing (one call per vendor where the vendor allows)
    and returns them as plain data, optionally filtered.
version_added: 0.1.0
author: hvkit contributors (@hvkit)
options:
  name:
    description: Only VMs whose name matches this shell pattern (V(web-*)), or the VM of this id.
    type: str
  power_state:
    description: Only VMs in one of these power states.
    type: list
    elements: str
  tags:
    description: Only VMs carrying all these tags.
    type: list
    elements: str
  detail:
    description: Read disks and NICs too (a slower listing on some vendors).
    type: bool
    default: false
  snapshots:
    description: Add each VM's snapshots (one bulk snapshot read).
    type: bool
    default: false
  timeout:
    description: Seconds the listing may take, passed to hvkit as the network timeout when O(connect_timeout) is unset.
    type: float
    default: 300
extends_documentation_fragment:
  - hvkit.hypervisor.connection
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
- name: Running VMs tagged web on vCenter
  hvkit.hypervisor.vm_info:
    profile: prod-vcenter
    power_state: [running]
    tags: [web]
  register: found

- name: Their IP addresses
  ansible.builtin.debug:
    msg: "{{ found.vms | map(attribute='ip_addresses') | list }}"
"""

RETURN = r"""
vms:
  description: The VMs as dicts (id, name, power_state, cpus, memory_mib, host, tags, ip_addresses, disks, nics).
  returned: always
  type: list
  elements: dict
"""

import fnmatch

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hvkit.hypervisor.plugins.module_utils.hvkit_common import (
    argument_spec,
    close_quietly,
    connect,
    fail,
    snapshot_to_dict,
    vm_to_dict,
)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            name=dict(type="str"),
            power_state=dict(type="list", elements="str"),
            tags=dict(type="list", elements="str"),
            detail=dict(type="bool", default=False),
            snapshots=dict(type="bool", default=False),
            timeout=dict(type="float", default=300),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["connect_timeout"] is None:
        params["connect_timeout"] = params["timeout"]
    hv = connect(module)
    try:
        vms = hv.vms.list(detail=params["detail"])
        name, states, tags = params["name"], params["power_state"], set(params["tags"] or ())
        picked = [
            vm
            for vm in vms
            if (name is None or vm.id == name or fnmatch.fnmatchcase(vm.name, name))
            and (not states or vm.power_state.value in states)
            and tags <= vm.tags
        ]
        out = [vm_to_dict(vm) for vm in picked]
        if params["snapshots"] and picked:
            snaps = hv.snapshots.list_many(picked)
            for item, vm in zip(out, picked):
                item["snapshots"] = [snapshot_to_dict(s) for s in snaps.get(vm.id, [])]
        module.exit_json(changed=False, vms=out)
    except Exception as exc:
        fail(module, exc, "listing VMs")
    finally:
        close_quietly(hv)


if __name__ == "__main__":
    main()
