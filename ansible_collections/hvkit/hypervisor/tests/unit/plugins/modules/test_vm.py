# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest
from ansible_collections.hvkit.hypervisor.plugins.modules import vm, vm_info

SPEC = dict(
    name="web-1", cpus=2, memory_mib=2048, disks=[dict(size_gib=1, pool="default")], nics=[dict(network="default")]
)


def test_plan_actions_from_nothing_to_running():
    params = dict(name="a", state="running", clone_from=None, cpus=2, memory_mib=512)
    actions, after = vm.plan_actions(params, None)
    assert actions == ["create", "start"]
    assert after == {"name": "a", "power_state": "running", "cpus": 2, "memory_mib": 512}


@pytest.mark.parametrize(
    ("state", "power", "expected"),
    [
        ("running", "running", []),
        ("running", "paused", ["resume"]),
        ("running", "stopped", ["start"]),
        ("stopped", "running", ["stop"]),
        ("stopped", "stopped", []),
        ("paused", "stopped", ["start", "pause"]),
        ("paused", "paused", []),
        ("restarted", "running", ["reboot"]),
        ("restarted", "paused", ["resume", "reboot"]),
        ("restarted", "stopped", ["start"]),
        ("present", "paused", []),
        ("absent", "running", ["delete"]),
    ],
)
def test_plan_actions_power(state, power, expected):
    current = dict(name="a", power_state=power, cpus=1, memory_mib=1024)
    params = dict(state=state, clone_from=None, cpus=None, memory_mib=None)
    assert vm.plan_actions(params, current)[0] == expected


def test_plan_actions_resize_only_what_differs():
    current = dict(name="a", power_state="stopped", cpus=1, memory_mib=1024)
    assert vm.plan_actions(dict(state="present", clone_from=None, cpus=1, memory_mib=1024), current)[0] == []
    actions, after = vm.plan_actions(dict(state="present", clone_from=None, cpus=4, memory_mib=None), current)
    assert actions == ["reconfigure"]
    assert after["cpus"] == 4


def test_create_is_idempotent_with_check_and_diff(run_module, sim_url):
    args = dict(SPEC, url=sim_url, state="running")
    failed, res = run_module(vm, args, check=True, diff=True)
    assert not failed and res["changed"] and res["actions"] == ["create", "start"]
    assert res["diff"]["before"] == {"state": "absent"}
    failed, res = run_module(vm_info, dict(url=sim_url, name="web-1"))
    assert res["vms"] == []  # check mode made nothing

    failed, res = run_module(vm, args, diff=True)
    assert not failed and res["changed"] and res["actions"] == ["create", "start"]
    assert res["vm"]["power_state"] == "running" and res["vm"]["cpus"] == 2
    assert res["diff"]["after"]["power_state"] == "running"

    failed, res = run_module(vm, args, diff=True)
    assert not failed and not res["changed"] and res["actions"] == []
    assert res["diff"]["before"] == res["diff"]["after"]


def test_power_cycle_and_delete(run_module, sim_url):
    run_module(vm, dict(SPEC, url=sim_url, state="running"))
    assert run_module(vm, dict(url=sim_url, name="web-1", state="paused"))[1]["actions"] == ["pause"]
    assert run_module(vm, dict(url=sim_url, name="web-1", state="running"))[1]["actions"] == ["resume"]
    failed, res = run_module(vm, dict(url=sim_url, name="web-1", state="stopped", force=True))
    assert res["vm"]["power_state"] == "stopped"
    failed, res = run_module(vm, dict(url=sim_url, name="web-1", state="present", cpus=4))
    assert res["actions"] == ["reconfigure"] and res["vm"]["cpus"] == 4
    failed, res = run_module(vm, dict(url=sim_url, name="web-1", state="absent"), check=True)
    assert res["changed"] and res["actions"] == ["delete"]
    failed, res = run_module(vm, dict(url=sim_url, name="web-1", state="absent"))
    assert res["changed"] and "vm" not in res
    failed, res = run_module(vm, dict(url=sim_url, name="web-1", state="absent"))
    assert not failed and not res["changed"]


def test_clone(run_module, sim_url):
    run_module(vm, dict(SPEC, url=sim_url))
    failed, res = run_module(vm, dict(url=sim_url, name="web-2", clone_from="web-1", linked_clone=True, memory_mib=512))
    assert not failed and res["actions"] == ["clone", "reconfigure"]
    assert res["vm"]["memory_mib"] == 512 and res["vm"]["cpus"] == 2
    failed, res = run_module(vm, dict(url=sim_url, name="web-2", clone_from="web-1", linked_clone=True, memory_mib=512))
    assert not res["changed"]


def test_bad_spec_fails_in_check_mode_before_anything(run_module, sim_url):
    failed, res = run_module(vm, dict(url=sim_url, name="bad", cpus=0), check=True)
    assert failed and res["error"] == "InvalidSpec"
    assert "checking the spec" in res["msg"]


def test_errors_are_one_line_without_the_password(run_module, sim_url):
    failed, res = run_module(vm, dict(url=sim_url, name="x", clone_from="no-such-vm", password="s3cret-pw"))
    assert failed and res["error"] == "NotFound"
    assert "s3cret-pw" not in str(res)
    assert "exception" not in res  # an hvkit error needs no traceback


def test_unreachable_hypervisor_is_a_clean_failure(run_module):
    failed, res = run_module(
        vm, dict(url="proxmox://root@pam@127.0.0.1:1", password="hunter2-pw", name="x", connect_timeout=2)
    )
    assert failed
    assert "hunter2-pw" not in str(res)
    assert res["msg"].startswith("connect failed:") or "failed:" in res["msg"]
