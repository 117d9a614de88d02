# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

from ansible_collections.hvkit.hypervisor.plugins.modules import snapshot, vm, vm_info, volume


def test_snapshot_present_absent_reverted(run_module, sim_url):
    run_module(vm, dict(url=sim_url, name="db", disks=[dict(size_gib=1, pool="default")]))
    args = dict(url=sim_url, vm="db", name="before")
    failed, res = run_module(snapshot, args, check=True, diff=True)
    assert res["changed"] and res["actions"] == ["create"] and res["diff"]["before"]["state"] == "absent"
    failed, res = run_module(snapshot, args)
    assert res["changed"] and res["snapshot"]["name"] == "before"
    assert not run_module(snapshot, args)[1]["changed"]
    failed, res = run_module(vm_info, dict(url=sim_url, name="db", snapshots=True))
    assert [s["name"] for s in res["vms"][0]["snapshots"]] == ["before"]
    failed, res = run_module(snapshot, dict(args, state="reverted"))
    assert not failed and res["changed"] and res["actions"] == ["revert"]
    failed, res = run_module(snapshot, dict(args, name="nope", state="reverted"))
    assert failed and res["error"] == "NotFound"
    assert run_module(snapshot, dict(args, state="absent"))[1]["changed"]
    assert not run_module(snapshot, dict(args, state="absent"))[1]["changed"]


def test_volume(run_module, sim_url):
    args = dict(url=sim_url, pool="default", name="data-1", size_gib=1, format="qcow2")
    failed, res = run_module(volume, args, check=True)
    assert res["changed"] and "volume" not in res
    failed, res = run_module(volume, args)
    assert res["changed"] and res["volume"]["capacity_bytes"] == 1024**3
    failed, res = run_module(volume, dict(args, size_gib=2))
    assert not failed and not res["changed"], res
    failed, res = run_module(volume, dict(args, state="absent"))
    assert res["changed"]
    assert not run_module(volume, dict(args, state="absent"))[1]["changed"]


def test_vm_info_filters(run_module, sim_url):
    run_module(vm, dict(url=sim_url, name="web-1", tags=["web", "prod"], state="running"))
    run_module(vm, dict(url=sim_url, name="web-2", tags=["web"]))
    run_module(vm, dict(url=sim_url, name="db-1", tags=["prod"]))

    def names(res):
        return sorted(v["name"] for v in res["vms"])

    assert names(run_module(vm_info, dict(url=sim_url, name="web-*"))[1]) == ["web-1", "web-2"]
    assert names(run_module(vm_info, dict(url=sim_url, tags=["prod"]))[1]) == ["db-1", "web-1"]
    assert names(run_module(vm_info, dict(url=sim_url, power_state=["running"]))[1]) == ["web-1"]
