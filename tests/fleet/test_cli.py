"""``hvkit fleet`` on a persistent sim."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

import hvkit
from hvkit.cli import main
from hvkit.models import VMSpec


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HVKIT_SIM_STATE_DIR", str(tmp_path))
    name = f"cli-{uuid.uuid4().hex[:6]}"
    hv = hvkit.connect(
        f"sim://{name}", state_dir=str(tmp_path), hosts=3, host_cpus=8, host_memory_mib=32768, task_delay=0
    )
    for i in range(5):
        hv.vms.create(
            VMSpec(name=f"v{i}", cpus=2, memory_mib=4096, host="host-1", tags=frozenset({"web"} if i < 2 else set()))
        )
        hv.vms.start(f"v{i}")
    return f"sim://{name}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_hosts_capacity_health(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "fleet", "list", "-m", f"lab={url}", "--tag", "web", "--json")
    assert code == 0
    rows = json.loads(out)
    assert sorted(r["name"] for r in rows) == ["v0", "v1"] and {r["hypervisor"] for r in rows} == {"lab"}
    code, out, _ = run(capsys, "--json", "fleet", "hosts", "-m", url)
    assert code == 0 and len(json.loads(out)) == 3
    code, out, _ = run(capsys, "fleet", "capacity", "-m", url, "--json")
    data = json.loads(out)
    assert code == 0 and sum(h["vcpus_allocated"] for h in data["hosts"]) == 10
    code, out, _ = run(capsys, "fleet", "health", "-m", url, "--host-threshold", "0.5", "--json")
    assert code == 0 and any(f["check"] == "host-overloaded" for f in json.loads(out))
    code, out, err = run(capsys, "fleet", "list", "-m", url, "-m", "bogus://x")
    assert code == 0 and "bogus://x" in err and "v4" in out


def test_balance_dry_run_then_run(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "fleet", "balance", "-m", url, "--target", "0.4", "--dry-run", "--json")
    plan = json.loads(out)
    assert code == 0 and plan["moves"] and plan["kind"] == "balance"
    code, out, _ = run(capsys, "fleet", "balance", "-m", url, "--target", "0.4", "--dry-run")
    assert "migrate v" in out and "move(s)" in out
    code, out, err = run(capsys, "fleet", "balance", "-m", url, "--target", "0.4", "--anti-affinity", "v0,v1")
    assert code == 0 and "done" in err
    code, out, _ = run(capsys, "fleet", "balance", "-m", url, "--target", "0.4", "--dry-run")
    assert "nothing to move" in out
    code, out, _ = run(capsys, "fleet", "consolidate", "-m", url, "--headroom", "0.9", "--watts", "300", "--dry-run")
    assert code == 0 and "estimated power saved" in out
    code, out, _ = run(
        capsys, "fleet", "consolidate", "-m", url, "--headroom", "0.9", "--solver", "greedy", "--dry-run", "--json"
    )
    assert code == 0 and json.loads(out)["planner"] == "greedy"


def test_report_writes_a_page(url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    page = tmp_path / "r.html"
    argv = ["fleet", "report", "-m", url, "--html", str(page), "--plan", "consolidate", "--target", "0.5", "--json"]
    code, out, _ = run(capsys, *argv)
    data = json.loads(out)
    assert code == 0 and data["plan"]["kind"] == "consolidate" and data["bytes"] == len(page.read_text())
    assert 'id="moves"' in page.read_text() and "Plan: consolidate" in page.read_text()
    code, out, _ = run(capsys, "fleet", "report", "-m", url, "--html", str(page), "--plan", "none")
    assert code == 0 and 'id="plan"' not in page.read_text()


def test_bad_input_exit_code(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "fleet", "balance", "-m", url, "--target", "3")
    assert code == 2 and "target" in err
    code, _, err = run(capsys, "fleet", "balance", "-m", url, "--anti-affinity", "v0,ghost")
    assert code == 2 and "ghost" in err
