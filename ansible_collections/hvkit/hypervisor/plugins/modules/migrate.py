#!/usr/bin/python
# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: migrate
short_description: Move a VM from one hypervisor to another of any vendor, resumably
description:
  - Plans the migration with hvkit (C(hvkit.migration.plan)) and runs it, every disk checksummed on both sides.
  - Each migration keeps a journal in O(journal_dir). A run that finds a finished journal reports no change; one
    that finds an unfinished journal (the worker died, or O(on_error=keep) kept a failure) resumes it, doing
    again only what was not done; one that finds a rolled-back journal plans afresh.
  - A VM of the target name already on the target, with no journal, counts as migrated (no change).
  - Check mode returns the plan (steps, problems, warnings, bytes to move) and changes nothing; a plan with
    problems fails in check mode as in a real run.
version_added: 0.1.0
author: hvkit contributors (@hvkit)
options:
  vm:
    description: The source VM (name or id).
    type: str
    required: true
  name:
    description: The VM's name on the target (default, its source name).
    type: str
  source:
    description: How to reach the source hypervisor (the same keys as the connection options of the other modules).
    type: dict
    required: true
    suboptions: &conn
      url:
        description: hvkit URL.
        type: str
      profile:
        description: hvkit profile name.
        type: str
      username:
        description: User name.
        type: str
      password:
        description: Password. Never logged.
        type: str
      token:
        description: API token. Never logged.
        type: str
      verify_tls:
        description: Verify TLS certificates (on unless V(false)).
        type: bool
      ca_file:
        description: CA bundle.
        type: path
      connect_timeout:
        description: Seconds every network call may take.
        type: float
      backend_options:
        description: Backend options for C(hvkit.connect()).
        type: dict
        default: {}
  target:
    description: How to reach the target hypervisor.
    type: dict
    required: true
    suboptions: *conn
  network_map:
    description: Source network name to target network name.
    type: dict
    default: {}
  storage_map:
    description: Source pool name to target pool name.
    type: dict
    default: {}
  disk_format:
    description: Format of the disks on the target (qcow2, raw, vmdk ...).
    type: str
  disk_bus:
    description: Disk bus on the target.
    type: str
  nic_model:
    description: NIC model on the target.
    type: str
  keep_macs:
    description: Keep the NICs' MAC addresses.
    type: bool
    default: true
  power_off:
    description: Shut a running source VM down first (it is started again on a rollback).
    type: bool
    default: false
  snapshot:
    description: Export a snapshot taken now; the source keeps running.
    type: bool
    default: false
  allow_snapshot_loss:
    description: Migrate a VM that has snapshots (they are not carried over).
    type: bool
    default: false
  verify:
    description: Read every disk back on the target and compare its checksum.
    type: bool
    default: true
  start:
    description: Start the VM on the target and wait until it runs.
    type: bool
    default: false
  journal_dir:
    description:
      - The directory of this migration's journal. Keep it stable (and on the worker that runs the migration) so
        that a re-run resumes or reports the migration done.
      - Default, C(ansible-<target name>) under E(HVKIT_MIGRATION_DIR) or C($XDG_STATE_HOME/hvkit/migrations).
    type: path
  on_error:
    description: V(rollback) removes everything the migration made on an error; V(keep) keeps it for a resume.
    type: str
    choices: [rollback, keep]
    default: rollback
  parallel:
    description: Disks copied at the same time.
    type: int
    default: 2
  timeout:
    description: Seconds to wait for the target VM to run when O(start) is set.
    type: float
    default: 300
  retries:
    description:
      - Times to try again after a C(NotFound) or C(Conflict) error, which a concurrent change on a busy target
        can cause (other migrations of a wave creating VMs and volumes). Each try starts from the journal, so a
        failed run is resumed (O(on_error=keep)) or planned afresh (O(on_error=rollback)).
    type: int
    default: 2
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
requirements:
  - python >= 3.11
  - hvkit
notes:
  - Long migrations go well with C(async) and C(poll); the journal makes a re-run after a lost worker safe.
"""

EXAMPLES = r"""
- name: Move web-1 from vCenter to KVM
  hvkit.hypervisor.migrate:
    vm: web-1
    source: {profile: prod-vcenter}
    target: {url: "kvm:///system"}
    network_map: {"VM Network": default}
    storage_map: {datastore1: default}
    journal_dir: /var/lib/hvkit/journals/web-1
    start: true
  async: 7200
  poll: 15
"""

RETURN = r"""
plan:
  description: The plan (steps, problems, warnings, bytes_to_move, disks, nics).
  returned: when a migration was planned
  type: dict
result:
  description: The outcome (vm, disks with both checksums, bytes_moved, seconds, journal).
  returned: when a migration ran or was found done
  type: dict
action:
  description: V(migrate), V(resume), or V(none) (done already).
  returned: always
  type: str
journal:
  description: The journal directory.
  returned: always
  type: str
"""

import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hvkit.hypervisor.plugins.module_utils.hvkit_common import (
    CONNECTION_SPEC,
    close_quietly,
    connect,
    error_kind,
    fail,
    find_vm,
    require_hvkit,
    scrub,
    secrets_of,
    vm_to_dict,
)

# errors a concurrent change on the target causes (another migration's volume appearing mid-listing, a lock)
RETRIED = ("NotFound", "Conflict")

try:
    from hvkit import migration
except ImportError:  # require_hvkit() reports it
    migration = None


def default_journal(name):
    root = os.environ.get("HVKIT_MIGRATION_DIR")
    if not root:
        state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.environ.get("HOME", "/"), ".local", "state")
        root = os.path.join(state, "hvkit", "migrations")
    return os.path.join(root, "ansible-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60])


def journal_status(path):
    """The journal's last status, or None when there is no journal with a whole record."""
    file = os.path.join(path, "journal.jsonl")
    if not os.path.isfile(file):
        return None
    with open(file, "rb") as handle:
        if b"\n" not in handle.read():
            return None
    return migration.Journal.open(path, repair=False).current_status


def plan_to_dict(plan):
    return {
        "vm": plan.vm.name,
        "name": plan.name,
        "cpus": plan.cpus,
        "memory_mib": plan.memory_mib,
        "firmware": plan.firmware.value,
        "steps": plan.steps,
        "problems": list(plan.problems),
        "warnings": list(plan.warnings),
        "bytes_to_move": plan.bytes_to_move,
        "disks": [
            {"name": d.name, "size": d.size, "allocated": d.allocated, "target_pool": d.target_pool,
             "target_volume": d.target_volume, "target_format": d.target_format.value}
            for d in plan.disks
        ],
        "nics": [
            {"source_mac": n.source_mac, "network": n.network, "model": n.model.value, "mac": n.mac}
            for n in plan.nics
        ],
    }  # fmt: skip


def result_to_dict(res):
    return {
        "vm": vm_to_dict(res.vm),
        "disks": [
            {"name": d.name, "source_checksum": d.source_checksum, "target_checksum": d.target_checksum,
             "verified": d.verified, "bytes_moved": d.bytes_moved}
            for d in res.disks
        ],
        "verified": res.verified,
        "bytes_moved": res.bytes_moved,
        "seconds": res.seconds,
        "started": res.started,
        "journal": res.journal,
        "warnings": list(res.warnings),
    }  # fmt: skip


def main():
    conn = dict(type="dict", required=True, options={k: dict(v) for k, v in CONNECTION_SPEC.items()})
    module = AnsibleModule(
        argument_spec=dict(
            vm=dict(type="str", required=True),
            name=dict(type="str"),
            source=conn,
            target=dict(conn),
            network_map=dict(type="dict", default={}),
            storage_map=dict(type="dict", default={}),
            disk_format=dict(type="str"),
            disk_bus=dict(type="str"),
            nic_model=dict(type="str"),
            keep_macs=dict(type="bool", default=True),
            power_off=dict(type="bool", default=False),
            snapshot=dict(type="bool", default=False),
            allow_snapshot_loss=dict(type="bool", default=False),
            verify=dict(type="bool", default=True),
            start=dict(type="bool", default=False),
            journal_dir=dict(type="path"),
            on_error=dict(type="str", default="rollback", choices=["rollback", "keep"]),
            parallel=dict(type="int", default=2),
            timeout=dict(type="float", default=300),
            retries=dict(type="int", default=2),
        ),
        mutually_exclusive=[("power_off", "snapshot")],
        supports_check_mode=True,
    )
    require_hvkit(module)
    params = module.params
    name = params["name"] or params["vm"]
    journal = params["journal_dir"] or default_journal(name)
    src = dst = None
    action = "connecting to the source"
    try:
        src = connect(module, params["source"])
        action = "connecting to the target"
        dst = connect(module, params["target"])
        for attempt in range(params["retries"] + 1):
            try:
                action = "reading the journal in %s" % journal
                status = journal_status(journal)
                result = dict(changed=False, journal=journal, action="none")
                if status == "completed":
                    done = find_vm(dst, name)
                    result["result"] = {"vm": vm_to_dict(done) if done else None, "journal": journal}
                    module.exit_json(**result)
                if status in ("rolling-back", "rollback-failed"):
                    if module.check_mode:
                        result.update(changed=True, action="rollback and migrate")
                        module.exit_json(**result)
                    action = "rolling back the unfinished migration in %s" % journal
                    migration.rollback(journal, src, dst)
                    status = "rolled-back"
                if status in ("started", "resumed", "failed"):
                    result.update(changed=True, action="resume")
                    if module._diff:
                        result["diff"] = dict(
                            before={"target_vm": name, "state": "partly migrated"},
                            after={"target_vm": name, "state": "present"},
                        )
                    if module.check_mode:
                        module.exit_json(**result)
                    action = "resuming the migration in %s" % journal
                    res = migration.resume(
                        journal, src, dst, start=params["start"] or None, parallel=params["parallel"],
                        on_error=params["on_error"], start_timeout=params["timeout"],
                    )  # fmt: skip
                    result["result"] = result_to_dict(res)
                    module.exit_json(**result)
                existing = find_vm(dst, name)
                if existing is not None:
                    result["result"] = {"vm": vm_to_dict(existing), "journal": None}
                    module.exit_json(**result)
                action = "planning the migration of VM %r" % params["vm"]
                plan = migration.plan(
                    src, params["vm"], dst, name=params["name"], network_map=params["network_map"],
                    storage_map=params["storage_map"], disk_format=params["disk_format"], disk_bus=params["disk_bus"],
                    nic_model=params["nic_model"], keep_macs=params["keep_macs"], power_off=params["power_off"],
                    snapshot=params["snapshot"], allow_snapshot_loss=params["allow_snapshot_loss"],
                    verify=params["verify"],
                )  # fmt: skip
                result.update(changed=True, action="migrate", plan=plan_to_dict(plan))
                if module._diff:
                    result["diff"] = dict(
                        before={"target_vm": name, "state": "absent"}, after={"target_vm": name, "state": "present"}
                    )
                if plan.problems:
                    problems = "; ".join(plan.problems)
                    msg = "the migration plan of VM %r has problems: %s" % (params["vm"], problems)
                    module.fail_json(msg=msg, error="PlanProblems", **result)
                if module.check_mode:
                    module.exit_json(**result)
                if status == "rolled-back":
                    os.rename(journal, "%s.rolled-back-%d" % (journal, int(time.time())))
                action = "migrating VM %r" % params["vm"]
                res = plan.run(start=params["start"], journal_dir=journal, parallel=params["parallel"],
                               on_error=params["on_error"], start_timeout=params["timeout"])  # fmt: skip
                result["result"] = result_to_dict(res)
                module.exit_json(**result)
            except Exception as exc:  # a concurrent change on a busy target: look at the journal again
                if attempt == params["retries"] or error_kind(exc) not in RETRIED:
                    raise
                module.warn("%s: %s: %s; trying again" % (action, error_kind(exc), scrub(str(exc), secrets_of(module))))
                time.sleep(2 * (attempt + 1))
    except Exception as exc:
        fail(module, exc, action, journal=journal)
    finally:
        close_quietly(src)
        close_quietly(dst)


if __name__ == "__main__":
    main()
