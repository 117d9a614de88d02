# Copyright: hvkit contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import json
import os

from ansible_collections.hvkit.hypervisor.plugins.modules import fleet_execute, fleet_plan, migrate, vm, vm_info


def test_migrate_plan_run_and_done(run_module, sim_url, tmp_path):
    src = sim_url
    dst = sim_url.replace("sim://unit", "sim://dst")
    run_module(vm, dict(url=src, name="app", disks=[dict(size_gib=1, pool="default")], nics=[dict(network="default")]))
    journal = str(tmp_path / "journal-app")
    args = dict(vm="app", source=dict(url=src), target=dict(url=dst), journal_dir=journal)
    failed, res = run_module(migrate, args, check=True, diff=True)
    assert not failed and res["changed"] and res["action"] == "migrate"
    assert res["plan"]["problems"] == [] and res["plan"]["steps"]
    assert not os.path.exists(journal)
    failed, res = run_module(migrate, args)
    assert not failed and res["changed"], res
    assert res["result"]["verified"] and res["result"]["vm"]["name"] == "app"
    failed, res = run_module(migrate, args)
    assert not failed and not res["changed"] and res["action"] == "none"
    assert run_module(vm_info, dict(url=dst, name="app"))[1]["vms"][0]["name"] == "app"


def test_migrate_resumes_an_unfinished_journal(run_module, sim_url, tmp_path):
    src = sim_url
    dst = sim_url.replace("sim://unit", "sim://dst")
    run_module(vm, dict(url=src, name="app", disks=[dict(size_gib=1, pool="default")]))
    journal = tmp_path / "j"
    args = dict(vm="app", source=dict(url=src), target=dict(url=dst), journal_dir=str(journal))
    run_module(migrate, args)
    # cut the journal back to its plan and start records: as if the worker died before the first step
    lines = (journal / "journal.jsonl").read_text().splitlines()
    kept = [ln for ln in lines if json.loads(ln)["kind"] in ("plan",)] + [
        json.dumps({"kind": "status", "status": "started"})
    ]
    run_module(vm, dict(url=dst, name="app", state="absent"))
    (journal / "journal.jsonl").write_text("\n".join(kept) + "\n")
    failed, res = run_module(migrate, args, check=True)
    assert res["changed"] and res["action"] == "resume"
    failed, res = run_module(migrate, args)
    assert not failed and res["action"] == "resume" and res["result"]["vm"]["name"] == "app", res
    assert not run_module(migrate, args)[1]["changed"]


def test_migrate_plan_problems_fail_in_check_mode(run_module, sim_url, tmp_path):
    dst = sim_url.replace("sim://unit", "sim://dst")
    run_module(vm, dict(url=sim_url, name="app", nics=[dict(network="lan")], state="running"))
    args = dict(
        vm="app",
        source=dict(url=sim_url),
        target=dict(url=dst, password="pw-never-shown"),
        journal_dir=str(tmp_path / "j"),
    )
    failed, res = run_module(migrate, args, check=True)
    assert failed and res["error"] == "PlanProblems" and "is running" in res["msg"]
    assert "pw-never-shown" not in str(res)


def test_fleet_plan_and_execute(run_module, sim_url):
    for i in range(4):
        run_module(vm, dict(url=sim_url, name="vm%d" % i, cpus=2, memory_mib=1024, host="host-1", state="running"))
    members = {"lab": sim_url}
    failed, res = run_module(fleet_plan, dict(members=members, kind="balance", evacuate=["sim-host-1"]))
    assert not failed and not res["changed"] and len(res["plan"]["moves"]) == 4
    failed, res = run_module(
        fleet_execute, dict(members=members, kind="balance", evacuate=["sim-host-1"]), check=True, diff=True
    )
    assert res["changed"] and "sim-host-1" in res["diff"]["before"]
    failed, res = run_module(fleet_execute, dict(members=members, kind="balance", evacuate=["sim-host-1"]))
    assert not failed and res["changed"] and res["outcome"]["ok"], res
    failed, res = run_module(fleet_execute, dict(members=members, kind="balance", evacuate=["sim-host-1"]))
    assert not failed and not res["changed"]
