"""``hvkit fleet report --html``: one self-contained page, checked in a real headless Chromium."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

import hvkit
from hvkit.cli import main
from hvkit.fleet import Fleet, html_report
from hvkit.fleet._report import after_plan
from hvkit.models import VMSpec

from ._browser import chromium, load

pytest.importorskip("plotly")

READ = """JSON.stringify({
  hosts: [...document.querySelectorAll('#hosts tbody tr')].map(tr => Object.fromEntries(
    [['id', tr.dataset.host], ...[...tr.querySelectorAll('td[data-k]')].map(td => [td.dataset.k, td.textContent])])),
  pools: [...document.querySelectorAll('#pools tbody tr')].map(tr => Object.fromEntries(
    [['id', tr.dataset.pool], ...[...tr.querySelectorAll('td[data-k]')].map(td => [td.dataset.k, td.textContent])])),
  moves: [...document.querySelectorAll('#moves tbody tr')].map(tr => Object.fromEntries(
    [...tr.querySelectorAll('td[data-k]')].map(td => [td.dataset.k, td.textContent]))),
  findings: [...document.querySelectorAll('#findings tbody tr td[data-k=check]')].map(td => td.textContent),
  charts: document.querySelectorAll('.js-plotly-plot .main-svg').length,
  bars: document.querySelectorAll('#hosts-chart .bars .point').length,
})"""


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HVKIT_SIM_STATE_DIR", str(tmp_path))
    name = f"rep-{uuid.uuid4().hex[:6]}"
    hv = hvkit.connect(
        f"sim://{name}", state_dir=str(tmp_path), hosts=4, host_cpus=8, host_memory_mib=32768, task_delay=0
    )
    for i in range(6):
        hv.vms.create(VMSpec(name=f"web{i}", cpus=2 + i % 3, memory_mib=4096, host="host-1"))
        hv.vms.start(f"web{i}")
    hv.vms.create(VMSpec(name="idle", cpus=1, memory_mib=1024, host="host-2"))
    return f"sim://{name}"


def test_report_page_shows_the_capacity_report_and_the_plan(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fleet.html"
    assert main(["fleet", "report", "-m", url, "--html", str(out), "--target", "0.5", "--no-snapshots"]) == 0
    assert "wrote" in capsys.readouterr().out
    page = out.read_text()
    assert page.count("<script") == page.count("<script type") + page.count("<script>")  # no <script src=...>

    with Fleet([url]) as fleet:  # the same figures, through the API
        report = fleet.capacity()
        plan = fleet.balance(0.5)
        findings = fleet.health(snapshot_days=None)
        after = after_plan(report, plan, fleet.inventory.vms)
    assert plan.moves

    if chromium() is None:
        pytest.skip("chromium is not installed")
    shot = tmp_path / "fleet.png"
    got = load(out, READ, shot)
    assert got.errors == []
    assert all(u.startswith(("file:", "data:", "blob:", "about:")) for u in got.requests), got.requests
    data = json.loads(got.value)
    assert data["charts"] >= 2 and data["bars"] >= 2 * len(report.hosts)
    hosts = {h["id"]: h for h in data["hosts"]}
    assert set(hosts) == {h.host for h in report.hosts}
    for h in report.hosts:
        row, a = hosts[h.host], after[(h.hypervisor, h.host)]
        assert row["name"] == h.name and int(row["cpus"]) == h.cpus and int(row["memory"]) == h.memory_mib
        assert int(row["vcpus"]) == h.vcpus_allocated and int(row["allocated"]) == h.memory_allocated_mib
        assert int(row["vcpus_after"]) == a.vcpus_allocated and int(row["allocated_after"]) == a.memory_allocated_mib
    assert {p["id"]: int(p["used"]) for p in data["pools"]} == {p.pool: p.used_bytes for p in report.pools}
    assert [(m["vm"], m["target"], int(m["bytes"])) for m in data["moves"]] == [
        (m.vm_name, m.target_name, m.data_bytes) for m in plan.moves
    ]
    assert sorted(data["findings"]) == sorted(f.check for f in findings)
    # the plan brings every host under its target, as the page says
    for h in report.hosts:
        assert after[(h.hypervisor, h.host)].memory_allocated_mib <= 0.5 * h.memory_mib
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_without_a_plan_and_escaping(tmp_path: Path) -> None:
    from hvkit.fleet import CapacityReport, Finding, HostCapacity

    host = HostCapacity("<lab>", "h1", "<b>h1</b>", "sim", False, 8, 4, 0.5, 1024, 512, 0.5, None, None, 1, 1)
    finding = Finding("host-overloaded", "warning", "<lab>", "h1", "<script>alert(1)</script>")
    page = html_report(CapacityReport((host,), ()), [finding], None, title="<t>")
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "<b>h1</b>" not in page and 'id="moves"' not in page
