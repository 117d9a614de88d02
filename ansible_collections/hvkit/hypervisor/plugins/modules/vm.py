#!/usr/bin/python
# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: vm
short_description: Create, delete, power and size virtual machines on any hypervisor hvkit reaches
description:
  - Brings one VM to the wanted state on KVM, VMware, Proxmox VE, Hyper-V, Xen, VirtualBox or the simulated
    hypervisor, through the hvkit library.
  - The VM is created from a spec (O(cpus), O(memory_mib), O(disks), O(nics)) or cloned from O(clone_from).
  - CPUs and memory of an existing VM are compared with O(cpus) and O(memory_mib) and changed when they
    differ; disks and NICs are used only when the VM is created.
  - A second run with the same options reports no change; check mode reports the same actions without
    doing them; diff mode shows the VM before and after.
version_added: 0.1.0
author: hvkit contributors (@hvkit)
options:
  name:
    description: The VM's name (or its id, for an existing VM).
    type: str
    required: true
  state:
    description:
      - V(present) makes sure the VM exists (created stopped, or left in its power state).
      - V(running), V(stopped), V(paused) create it if needed and bring it to that power state.
      - V(restarted) reboots a running VM (starts a stopped one) and so always reports a change.
      - V(absent) deletes it with its disks (unless O(keep_disks)).
    type: str
    choices: [present, absent, running, stopped, paused, restarted]
    default: present
  cpus:
    description: Virtual CPUs (default 1 for a new VM).
    type: int
  memory_mib:
    description: Memory in MiB (default 1024 for a new VM).
    type: int
  disks:
    description: Disks of a new VM.
    type: list
    elements: dict
    default: []
    suboptions:
      size_gib:
        description: Size of a new volume in GiB.
        type: float
      pool:
        description: Storage pool (datastore, storage) of the volume.
        type: str
      format:
        description: Disk format (qcow2, raw, vmdk, vhdx, ...); the pool's default otherwise.
        type: str
      bus:
        description: Disk bus (virtio, scsi, sata, ide).
        type: str
        default: virtio
      volume:
        description: Id of an existing volume to attach instead of creating one.
        type: str
  nics:
    description: Network interfaces of a new VM.
    type: list
    elements: dict
    default: []
    suboptions:
      network:
        description: Network (port group, bridge, switch) name.
        type: str
        required: true
      mac:
        description: MAC address; the hypervisor picks one otherwise.
        type: str
      model:
        description: NIC model (virtio, e1000, vmxnet3, ...).
        type: str
        default: virtio
  firmware:
    description: Firmware of a new VM.
    type: str
    choices: [bios, uefi]
  guest_os:
    description: Guest OS family of a new VM (linux, windows, other).
    type: str
  host:
    description: Host (id or name) to place a new VM or clone on.
    type: str
  notes:
    description: Notes of a new VM.
    type: str
  tags:
    description: Tags of a new VM.
    type: list
    elements: str
  clone_from:
    description: Create the VM as a clone of this VM or template (name or id) instead of from a spec.
    type: str
  linked_clone:
    description: With O(clone_from), share the source's disks copy-on-write.
    type: bool
    default: false
  pool:
    description: With O(clone_from), the pool the clone's disks go to.
    type: str
  force:
    description: Stop (V(stopped), V(absent)) or reboot by powering off instead of a guest shutdown.
    type: bool
    default: false
  keep_disks:
    description: With V(absent), keep the VM's volumes.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for each long operation (create, clone, power changes, delete).
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
- name: A running VM on the simulated hypervisor
  hvkit.hypervisor.vm:
    url: sim://
    name: web-1
    cpus: 2
    memory_mib: 2048
    disks:
      - size_gib: 10
        pool: default
    nics:
      - network: default
    state: running

- name: A linked clone on Proxmox, credentials from an hvkit profile
  hvkit.hypervisor.vm:
    profile: lab-pve
    name: web-2
    clone_from: web-template
    linked_clone: true
    state: present

- name: Remove it
  hvkit.hypervisor.vm:
    url: "kvm:///system"
    name: web-1
    state: absent
    force: true
"""

RETURN = r"""
vm:
  description: The VM after the task (before, in check mode); absent when deleted.
  returned: when the VM exists
  type: dict
  sample: {"id": "vm-1", "name": "web-1", "power_state": "running", "cpus": 2, "memory_mib": 2048}
actions:
  description: What the task did, or would do in check mode, in order.
  returned: always
  type: list
  elements: str
  sample: ["create", "start"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hvkit.hypervisor.plugins.module_utils.hvkit_common import (
    argument_spec,
    close_quietly,
    connect,
    enum_value,
    fail,
    find_vm,
    hvkit,
    vm_to_dict,
)

OFF = ("stopped", "crashed")
POWER_WANTED = {"running", "stopped", "paused", "restarted"}


def plan_actions(params, current):
    """The actions that bring ``current`` (a VM dict or None) to what ``params`` ask, and the expected after."""
    state = params["state"]
    if state == "absent":
        if current is None:
            return [], None
        return ["delete"], None
    actions = []
    after = dict(current) if current else None
    if current is None:
        actions.append("clone" if params["clone_from"] else "create")
        after = {
            "name": params["name"],
            "power_state": "stopped",
            "cpus": 1 if params["cpus"] is None else params["cpus"],
            "memory_mib": 1024 if params["memory_mib"] is None else params["memory_mib"],
        }
        if params["clone_from"]:
            after.pop("cpus")
            after.pop("memory_mib")
    sizing = {}
    for key in ("cpus", "memory_mib"):
        want = params[key]
        if (want is not None and after.get(key, want) != want) or (want is not None and key not in after):
            sizing[key] = want
    if sizing and (current is not None or params["clone_from"]):
        actions.append("reconfigure")
    after.update(sizing)
    power = after["power_state"]
    if state == "running":
        if power == "paused":
            actions.append("resume")
        elif power != "running":
            actions.append("start")
        after["power_state"] = "running"
    elif state == "stopped":
        if power not in OFF:
            actions.append("stop")
        after["power_state"] = "stopped"
    elif state == "paused":
        if power in OFF or power == "suspended":
            actions.append("start")
        if power != "paused":
            actions.append("pause")
        after["power_state"] = "paused"
    elif state == "restarted":
        if power == "paused":
            actions += ["resume", "reboot"]
        else:
            actions.append("reboot" if power == "running" else "start")
        after["power_state"] = "running"
    return actions, after


def build_spec(params):
    disks = [
        hvkit.DiskSpec(
            size_gib=d.get("size_gib"), pool=d.get("pool"), format=d.get("format"), bus=d["bus"], volume=d.get("volume")
        )
        for d in params["disks"]
    ]
    nics = [hvkit.NicSpec(network=n["network"], mac=n.get("mac"), model=n["model"]) for n in params["nics"]]
    kwargs = dict(
        name=params["name"],
        cpus=1 if params["cpus"] is None else params["cpus"],
        memory_mib=1024 if params["memory_mib"] is None else params["memory_mib"],
    )
    for key in ("firmware", "guest_os", "host", "notes"):
        if params[key] is not None:
            kwargs[key] = params[key]
    return hvkit.VMSpec(disks=disks, nics=nics, tags=params["tags"] or (), **kwargs)


def apply(hv, params, vm, actions):
    timeout = params["timeout"]
    for action in actions:
        if action == "create":
            vm = hv.vms.create(build_spec(params), timeout=timeout)
        elif action == "clone":
            vm = hv.vms.clone(
                params["clone_from"],
                params["name"],
                linked=params["linked_clone"],
                host=params["host"],
                pool=params["pool"],
                timeout=timeout,
            )
        elif action == "reconfigure":
            sizing = {
                k: params[k] for k in ("cpus", "memory_mib") if params[k] is not None and getattr(vm, k) != params[k]
            }
            if sizing:
                vm = hv.vms.reconfigure(vm, timeout=timeout, **sizing)
        elif action == "delete":
            hv.vms.delete(vm, keep_disks=params["keep_disks"], force=params["force"])
            vm = None
        elif action == "stop":
            vm = hv.vms.stop(vm, force=params["force"], timeout=timeout)
        elif action == "reboot":
            vm = hv.vms.reboot(vm, force=params["force"], timeout=timeout)
        else:  # start, resume, pause
            vm = getattr(hv.vms, action)(vm, timeout=timeout)
    return vm


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            name=dict(type="str", required=True),
            state=dict(
                type="str",
                default="present",
                choices=["present", "absent", "running", "stopped", "paused", "restarted"],
            ),
            cpus=dict(type="int"),
            memory_mib=dict(type="int"),
            disks=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    size_gib=dict(type="float"),
                    pool=dict(type="str"),
                    format=dict(type="str"),
                    bus=dict(type="str", default="virtio"),
                    volume=dict(type="str"),
                ),
            ),
            nics=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    network=dict(type="str", required=True),
                    mac=dict(type="str"),
                    model=dict(type="str", default="virtio"),
                ),
            ),
            firmware=dict(type="str", choices=["bios", "uefi"]),
            guest_os=dict(type="str"),
            host=dict(type="str"),
            notes=dict(type="str"),
            tags=dict(type="list", elements="str"),
            clone_from=dict(type="str"),
            linked_clone=dict(type="bool", default=False),
            pool=dict(type="str"),
            force=dict(type="bool", default=False),
            keep_disks=dict(type="bool", default=False),
            timeout=dict(type="float", default=1800),
        ),
        mutually_exclusive=[("clone_from", "disks"), ("clone_from", "nics")],
        supports_check_mode=True,
    )
    params = module.params
    hv = connect(module)
    try:
        action = "reading VM %r" % params["name"]
        vm = find_vm(hv, params["name"])
        before = vm_to_dict(vm) if vm is not None else None
        if vm is None and params["state"] != "absent" and not params["clone_from"]:
            action = "checking the spec of VM %r" % params["name"]
            build_spec(params)  # bad input fails in check mode too, before anything is sent
        actions, expected = plan_actions(params, before)
        result = dict(changed=bool(actions), actions=actions)
        if module._diff:
            result["diff"] = dict(before=_diff_view(before), after=_diff_view(expected))
        if module.check_mode or not actions:
            if before is not None:
                result["vm"] = before
            module.exit_json(**result)
        action = "%s of VM %r" % (", ".join(actions), params["name"])
        vm = apply(hv, params, vm, actions)
        if vm is not None:
            result["vm"] = vm_to_dict(vm)
        if module._diff:
            result["diff"]["after"] = _diff_view(result.get("vm"))
        module.exit_json(**result)
    except Exception as exc:
        fail(module, exc, action)
    finally:
        close_quietly(hv)


def _diff_view(vm):
    if vm is None:
        return {"state": "absent"}
    return {k: enum_value(vm[k]) for k in ("name", "power_state", "cpus", "memory_mib") if k in vm}


if __name__ == "__main__":
    main()
