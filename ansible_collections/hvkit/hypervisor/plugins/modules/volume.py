#!/usr/bin/python
# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: volume
short_description: Create and delete storage volumes on any hypervisor hvkit reaches
description:
  - Makes sure a volume of the given name exists in a pool (V(present)), or does not (V(absent)).
  - An existing volume is left as it is; a different O(size_gib) or O(format) is reported as a warning, since
    hvkit does not resize or convert volumes in place.
version_added: 0.1.0
author: hvkit contributors (@hvkit)
options:
  pool:
    description: The storage pool (datastore, storage).
    type: str
    required: true
  name:
    description: The volume's name in the pool.
    type: str
    required: true
  state:
    description: Whether the volume should exist.
    type: str
    choices: [present, absent]
    default: present
  size_gib:
    description: Size of a new volume in GiB; required to create one.
    type: float
  format:
    description: Format of a new volume (qcow2, raw, vmdk, ...); the pool's preferred one otherwise.
    type: str
  timeout:
    description: Seconds each call may take, passed to hvkit as the network timeout when O(connect_timeout) is unset.
    type: float
    default: 600
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
- name: A 20 GiB data volume
  hvkit.hypervisor.volume:
    url: "kvm:///system"
    pool: default
    name: data-1
    size_gib: 20
    format: qcow2
"""

RETURN = r"""
volume:
  description: The volume (absent when deleted).
  returned: when it exists
  type: dict
  sample: {"id": "default/data-1", "name": "data-1", "pool": "default", "capacity_bytes": 21474836480}
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
    volume_to_dict,
)


def find_volume(volumes, name):
    """The volume of that name; some backends add the format's extension (data-1.qcow2) to the name asked for."""
    exact = [v for v in volumes if v.name == name]
    stem = [v for v in volumes if v.name.rsplit(".", 1)[0] == name and "." in v.name]
    return (exact or stem or [None])[0]


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            pool=dict(type="str", required=True),
            name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            size_gib=dict(type="float"),
            format=dict(type="str"),
            timeout=dict(type="float", default=600),
        ),
        required_if=[("state", "present", ("size_gib",))],
        supports_check_mode=True,
    )
    params = module.params
    if params["connect_timeout"] is None:
        params["connect_timeout"] = params["timeout"]
    hv = connect(module)
    action = "reading pool %r" % params["pool"]
    try:
        vol = find_volume(hv.volumes.list(params["pool"]), params["name"])
        want = params["state"]
        actions = (["create"] if vol is None else []) if want == "present" else (["delete"] if vol else [])
        result = dict(changed=bool(actions), actions=actions)
        if vol is not None:
            result["volume"] = volume_to_dict(vol)
            wanted_bytes = int((params["size_gib"] or 0) * 1024**3)
            if want == "present" and wanted_bytes and abs(vol.capacity_bytes - wanted_bytes) >= 1024**2:
                module.warn(
                    "volume %r has %d bytes, not %s GiB; hvkit does not resize volumes"
                    % (vol.name, vol.capacity_bytes, params["size_gib"])
                )
            fmt = getattr(vol.format, "value", vol.format)
            if want == "present" and params["format"] and fmt and fmt != params["format"]:
                module.warn(
                    "volume %r is %s, not %s; hvkit does not convert volumes in place"
                    % (vol.name, fmt, params["format"])
                )
        if module._diff:
            result["diff"] = dict(
                before={"volume": params["name"], "state": "present" if vol else "absent"},
                after={"volume": params["name"], "state": want},
            )
        if module.check_mode or not actions:
            module.exit_json(**result)
        action = "%s of volume %r in pool %r" % (actions[0], params["name"], params["pool"])
        if actions == ["create"]:
            vol = hv.volumes.create(params["pool"], params["name"], params["size_gib"], format=params["format"])
            result["volume"] = volume_to_dict(vol)
        else:
            hv.volumes.delete(vol)
            result.pop("volume", None)
        module.exit_json(**result)
    except Exception as exc:
        fail(module, exc, action)
    finally:
        close_quietly(hv)


if __name__ == "__main__":
    main()
