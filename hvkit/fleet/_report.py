"""The fleet report: one self-contained HTML file (charts by plotly, its JavaScript inlined; no network).

Per host, vCPUs per thread and memory allocated against physical memory, before and after a plan; pool
fullness; the plan's moves; the health findings. Every number shown in a table comes from the
:class:`~._capacity.CapacityReport` (before) and from the plan's moves applied to it (after).
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from .._units import format_bytes
from ..errors import InvalidSpec
from ..models import VM
from ._capacity import CapacityReport, Finding, HostCapacity
from ._plan import PlacementPlan

__all__ = ["HostAfter", "after_plan", "html_report"]

COLORS = {"before": "#9aa5b1", "after": "#2f6fde", "limit": "#d64545", "ok": "#2f9e62", "warn": "#e8a33d"}
CONFIG = {"displayModeBar": False, "responsive": True}
SEVERITY = {"critical": "#d64545", "warning": "#e8a33d", "info": "#5b7083"}


@attrs.frozen
class HostAfter:
    """A host's allocation once a plan has run."""

    vcpus_allocated: int
    memory_allocated_mib: int
    vms_running: int


def after_plan(
    report: CapacityReport, plan: PlacementPlan | None, vms: Iterable[VM]
) -> dict[tuple[str, str], HostAfter]:
    """Each host's allocation after the plan's host moves: (hypervisor, host id) -> HostAfter."""
    rows = {(h.hypervisor, h.host): [h.vcpus_allocated, h.memory_allocated_mib, h.vms_running] for h in report.hosts}
    if plan is not None:
        sizes = {(str(v.hypervisor), v.id): (v.cpus, v.memory_mib) for v in vms}
        for m in plan.moves:
            if m.kind != "host" or m.hypervisor is None or m.vm is None:
                continue
            cpus, mem = sizes.get((m.hypervisor, m.vm), (0, 0))
            for host, sign in ((m.source, -1), (m.target, 1)):
                row = rows.get((m.hypervisor, host))
                if row is not None:
                    row[0] += sign * cpus
                    row[1] += sign * mem
                    row[2] += sign
    return {k: HostAfter(*v) for k, v in rows.items()}


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go  # type: ignore[import-untyped]
        from plotly.subplots import make_subplots  # type: ignore[import-untyped]
    except ImportError:
        raise InvalidSpec("the HTML report draws with plotly: pip install 'hvkit[report]'") from None
    return go, make_subplots


def _label(h: HostCapacity, many: bool) -> str:
    return f"{h.name} ({h.hypervisor})" if many else h.name


def _host_figure(
    hosts: Sequence[HostCapacity], after: dict[tuple[str, str], HostAfter], plan: PlacementPlan | None, cpu_limit: float
) -> Any:
    go, make_subplots = _plotly()
    many = len({h.hypervisor for h in hosts}) > 1
    names = [_label(h, many) for h in hosts]
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("vCPUs per thread", "Memory allocated (% of physical)"),
    )
    cpu_before = [h.cpu_overcommit for h in hosts]
    mem_before = [h.memory_overcommit * 100 for h in hosts]
    fig.add_trace(go.Bar(name="before", x=names, y=cpu_before, marker_color=COLORS["before"]), row=1, col=1)
    fig.add_trace(go.Bar(name="before", x=names, y=mem_before, marker_color=COLORS["before"], showlegend=False), 2, 1)
    if plan is not None:
        cpu_after = [after[(h.hypervisor, h.host)].vcpus_allocated / h.cpus if h.cpus else 0.0 for h in hosts]
        mem_after = [
            after[(h.hypervisor, h.host)].memory_allocated_mib * 100 / h.memory_mib if h.memory_mib else 0.0
            for h in hosts
        ]
        fig.add_trace(go.Bar(name="after the plan", x=names, y=cpu_after, marker_color=COLORS["after"]), row=1, col=1)
        fig.add_trace(
            go.Bar(name="after", x=names, y=mem_after, marker_color=COLORS["after"], showlegend=False), row=2, col=1
        )
        for row, y in ((1, plan.target * cpu_limit), (2, plan.target * 100)):
            fig.add_hline(
                y=y,
                line_dash="dot",
                line_color=COLORS["limit"],
                row=row,
                col=1,
                annotation_text="target",
                annotation_position="top left",
                annotation_font_color=COLORS["limit"],
            )
    fig.update_layout(
        barmode="group",
        height=520,
        margin={"l": 60, "r": 20, "t": 40, "b": 40},
        legend={"orientation": "h", "y": 1.1, "x": 0, "xanchor": "left"},
        plot_bgcolor="#ffffff",
        paper_bgcolor="#ffffff",
        font={"family": "system-ui, sans-serif", "size": 12},
    )
    fig.update_yaxes(gridcolor="#e6e9ee")
    return fig


def _pool_figure(report: CapacityReport) -> Any:
    go, _ = _plotly()
    pools = sorted(report.pools, key=lambda p: p.used_ratio)
    names = [f"{p.name} ({p.hypervisor})" for p in pools]
    used = [p.used_ratio * 100 for p in pools]
    colors = [COLORS["limit"] if u >= 90 else COLORS["warn"] if u >= 75 else COLORS["ok"] for u in used]
    text = [f"{format_bytes(p.used_bytes)} of {format_bytes(p.capacity_bytes)}" for p in pools]
    bar = go.Bar(
        x=used, y=names, orientation="h", marker_color=colors, text=text, textposition="outside", cliponaxis=False
    )
    fig = go.Figure(bar)
    fig.update_layout(
        height=max(160, 36 * len(pools) + 80),
        margin={"l": 20, "r": 20, "t": 30, "b": 40},
        xaxis={"title": "used (%)", "range": [0, 100], "gridcolor": "#e6e9ee"},
        plot_bgcolor="#ffffff",
        paper_bgcolor="#ffffff",
        font={"family": "system-ui, sans-serif", "size": 12},
        title={"text": "Pool fullness", "font": {"size": 14}},
    )
    return fig


def _cell(value: object, key: str | None = None) -> str:
    attr = f' data-k="{html.escape(key)}"' if key else ""
    return f"<td{attr}>{html.escape(str(value))}</td>"


def _hosts_table(hosts: Sequence[HostCapacity], after: dict[tuple[str, str], HostAfter], planned: bool) -> str:
    head = "<th>Host</th><th>Hypervisor</th><th>Threads</th><th>vCPUs</th><th>Memory MiB</th><th>Allocated MiB</th>"
    head += "<th>VMs running</th>" + (
        "<th>vCPUs after</th><th>Allocated MiB after</th><th>VMs after</th>" if planned else ""
    )
    rows = []
    for h in hosts:
        a = after[(h.hypervisor, h.host)]
        cells = [
            _cell(h.name, "name"),
            _cell(h.hypervisor, "hypervisor"),
            _cell(h.cpus, "cpus"),
            _cell(h.vcpus_allocated, "vcpus"),
            _cell(h.memory_mib, "memory"),
            _cell(h.memory_allocated_mib, "allocated"),
            _cell(h.vms_running, "running"),
        ]
        if planned:
            cells += [
                _cell(a.vcpus_allocated, "vcpus_after"),
                _cell(a.memory_allocated_mib, "allocated_after"),
                _cell(a.vms_running, "running_after"),
            ]
        rows.append(f'<tr data-host="{html.escape(h.host)}">{"".join(cells)}</tr>')
    return f'<table id="hosts"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _pools_table(report: CapacityReport) -> str:
    rows = [
        f'<tr data-pool="{html.escape(p.pool)}">'
        + "".join(
            [
                _cell(p.name, "name"),
                _cell(p.hypervisor, "hypervisor"),
                _cell(p.capacity_bytes, "capacity"),
                _cell(p.used_bytes, "used"),
                _cell(f"{p.used_ratio:.1%}", "ratio"),
                _cell(p.provisioned_bytes, "provisioned"),
            ]
        )
        + "</tr>"
        for p in report.pools
    ]
    head = "<th>Pool</th><th>Hypervisor</th><th>Capacity B</th><th>Used B</th><th>Used</th><th>Provisioned B</th>"
    return f'<table id="pools"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _moves_table(plan: PlacementPlan) -> str:
    if not plan.moves:
        return '<p class="quiet" id="moves-none">The plan moves nothing.</p>'
    rows = []
    for n, m in enumerate(plan.moves, 1):
        cells = [
            _cell(n),
            _cell(m.vm_name or m.item, "vm"),
            _cell(m.source_name or m.source, "source"),
            _cell(m.target_name or m.target, "target"),
            _cell(format_bytes(m.data_bytes)),
            _cell(m.data_bytes, "bytes"),
            _cell(m.reason, "reason"),
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "<th>#</th><th>VM</th><th>From</th><th>To</th><th>Data</th><th>Bytes</th><th>Why</th>"
    return f'<table id="moves"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _findings_table(findings: Sequence[Finding]) -> str:
    if not findings:
        return '<p class="quiet" id="findings-none">No findings.</p>'
    rows = []
    for f in findings:
        color = SEVERITY.get(f.severity, "#5b7083")
        badge = f'<span class="badge" style="background:{color}">{html.escape(f.severity)}</span>'
        rows.append(
            f"<tr><td>{badge}</td>" + _cell(f.check, "check") + _cell(f.hypervisor or "-") + _cell(f.message) + "</tr>"
        )
    head = "<th>Severity</th><th>Check</th><th>Hypervisor</th><th>Finding</th>"
    return f'<table id="findings"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f6f9;color:#1f2933}
header{background:#1f2933;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:4px 0 0;color:#cbd2d9;font-size:13px}main{padding:20px 32px;max-width:1200px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:18px}
.card{background:#fff;border-radius:8px;padding:12px 18px;box-shadow:0 1px 2px rgba(0,0,0,.08);min-width:130px}
.card b{display:block;font-size:24px;font-weight:600}.card span{color:#616e7c;font-size:12px}
section{background:#fff;border-radius:8px;padding:16px 20px;margin-bottom:18px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
section h2{font-size:16px;margin:0 0 10px}table{border-collapse:collapse;width:100%;font-size:12.5px}
th{text-align:left;color:#616e7c;font-weight:600;border-bottom:1px solid #e4e7eb;padding:6px 8px}
td{border-bottom:1px solid #f0f2f5;padding:5px 8px;font-variant-numeric:tabular-nums}
.badge{color:#fff;border-radius:10px;padding:1px 8px;font-size:11px}.quiet{color:#616e7c}
details summary{cursor:pointer;color:#2f6fde;margin:8px 0}
"""


def html_report(
    report: CapacityReport,
    findings: Sequence[Finding] = (),
    plan: PlacementPlan | None = None,
    vms: Iterable[VM] = (),
    *,
    title: str = "Fleet report",
    cpu_overcommit: float = 4.0,
    now: dt.datetime | None = None,
) -> str:
    """The report as one HTML document (about 5 MB: plotly's JavaScript is inlined, so it opens offline).

    ``vms`` (the inventory's) size the plan's moves for the "after" figures; ``cpu_overcommit`` is the
    ratio the plan was made with (its target line on the vCPU chart).
    """
    hosts = sorted(report.hosts, key=lambda h: (h.hypervisor, h.name))
    after = after_plan(report, plan, vms)
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    host_fig = _host_figure(hosts, after, plan, cpu_overcommit)
    parts = [host_fig.to_html(full_html=False, include_plotlyjs=True, config=CONFIG, div_id="hosts-chart")]
    pool_html = ""
    if report.pools:
        pool_fig = _pool_figure(report)
        pool_html = pool_fig.to_html(full_html=False, include_plotlyjs=False, config=CONFIG, div_id="pools-chart")
    cards: list[tuple[int | str, str]] = [
        (len(hosts), "hosts"),
        (sum(h.vms_running for h in hosts), "VMs running"),
        (len(report.pools), "pools"),
        (sum(1 for f in findings if f.severity == "critical"), "critical findings"),
    ]
    plan_html = ""
    if plan is not None:
        cards += [(len(plan.moves), f"moves ({plan.kind})"), (format_bytes(plan.data_bytes), "to copy")]
        if plan.bins_used is not None:
            cards.append((len(plan.freed), "hosts freed"))
        extra = "".join(f"<li>{html.escape(u)}</li>" for u in plan.unresolved)
        plan_html = (
            f'<section id="plan"><h2>Plan: {html.escape(plan.kind)} to {plan.target:.0%}</h2>'
            + (f'<ul class="quiet">{extra}</ul>' if extra else "")
            + _moves_table(plan)
            + "</section>"
        )
    card_html = "".join(
        f'<div class="card" data-card="{html.escape(label)}">'
        f"<b>{html.escape(str(v))}</b><span>{html.escape(label)}</span></div>"
        for v, label in cards
    )
    data = {"hosts": len(hosts), "pools": len(report.pools), "moves": 0 if plan is None else len(plan.moves)}
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>hvkit · {stamp}</p></header><main>"
        f'<div class="cards">{card_html}</div>'
        f"<section><h2>Hosts</h2>{parts[0]}<details><summary>Numbers</summary>"
        f"{_hosts_table(hosts, after, plan is not None)}</details></section>"
        + (
            f"<section><h2>Pools</h2>{pool_html}<details><summary>Numbers</summary>{_pools_table(report)}</details></section>"
            if report.pools
            else ""
        )
        + plan_html
        + f'<section id="health"><h2>Health</h2>{_findings_table(findings)}</section>'
        + f'<script type="application/json" id="report-summary">{json.dumps(data)}</script>'
        + "</main></body></html>"
    )
