"""``report.html``: the report as one self-contained page (plotly.js inlined: no network at view time).

Every plotted point says on hover what it is (model, engine, variant, hardware, run id) and its
figures with their intervals; every table sorts on a click of its header. What the page holds, in
order: points by status; per hardware target, held-out bits per byte against TPOT and against
weight bytes with the Pareto front; each model's scorecard (tables, retention against cost, KL
against bytes); the latency distributions of every point (TTFT, TPOT, ITL: the raw samples); TPOT
across hardware; the measured laws (IsoFLOP curves, residuals) and the projections (gap with its
band, tornado) found under the results directories. The PNGs of report.md stay for papers.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from harness.report.figures import (fmt_value, latency_figure, law_figures, pareto_figures,
                                    projection_figures, scorecard_figures, serving_figure)
from harness.report.depth import TITLE as DEPTH_TITLE, depth_table
from harness.report.hardware import TITLE as CROSS_HARDWARE_TITLE
from harness.report.serving import level_table
from harness.results.comparison import Judging
from harness.results.serving import Curve
from harness.results.schema import RunRecord, engine_name
from harness.report.scorecard import GLANCE_NOTE, HOW_TO_READ, Scorecard
from harness.report.verdict import verdict_lines

SORT_JS = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var body = th.closest("table").tBodies[0], rows = Array.from(body.rows);
    var up = th.dataset.order !== "asc";
    th.closest("tr").querySelectorAll("th").forEach(function (h) { delete h.dataset.order; });
    th.dataset.order = up ? "asc" : "desc";
    var key = function (r) { var t = r.cells[col].textContent.trim(), x = parseFloat(t.replace(/[^0-9eE.+-].*$/, ""));
                             return isNaN(x) ? t : x; };
    rows.sort(function (a, b) { var x = key(a), y = key(b);
      var c = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
      return up ? c : -c; });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""
CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1, h2, h3 { font-weight: 600; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 13px; margin: .6em 0 1.2em; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; }
th { background: #f4f4f4; cursor: pointer; user-select: none; }
th[data-order=asc]::after { content: " \\25B2"; } th[data-order=desc]::after { content: " \\25BC"; }
td:first-child, th:first-child { text-align: left; }
.note { color: #555; font-size: 13px; max-width: 60em; }
"""


def points_table(records: list[RunRecord]) -> pd.DataFrame:
    """One row per ok point, leaderboard-style: what it is and its headline figures."""
    rows = []
    for r in records:
        q, lat, mem = r.quality, r.latency, r.memory
        tpot = lat.tpot_ms if lat else None
        rows.append({"model": r.model.name, "variant": r.variant.name, "engine": engine_name(r), "hardware": r.hardware.label,
                     "params": r.model.params, "bits/byte": q.bits_per_byte if q else None,
                     "nats/token": q.heldout_loss_nats if q else None,
                     "TPOT ms": tpot.median if tpot else None,
                     "TPOT 95% interval": f"[{tpot.ci_low:.4g}, {tpot.ci_high:.4g}]" if tpot else "-",
                     "weights MiB": mem.weights_bytes / 2**20 if mem and mem.weights_bytes else None,
                     "peak RSS GiB": mem.peak_rss_bytes / 2**30 if mem and mem.peak_rss_bytes else None,
                     "run id": r.run_id})
    return pd.DataFrame(rows)


def _table(df: pd.DataFrame, index: bool = False) -> str:
    if df.empty:
        return "<p class=note><i>none</i></p>"
    return df.to_html(index=index, classes="sortable", border=0, na_rep="-", escape=True,
                      float_format=lambda x: format(x, ".5g"))


def _div(fig: go.Figure, n: int) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{n}",
                       config={"displaylogo": False, "responsive": True})


def _artifacts(dirs: list[str | Path], pattern: str) -> list[tuple[Path, dict | None, str]]:
    """JSON files a results directory holds beside its records (laws, projections): each path with
    its content, or None and why it could not be read."""
    found = []
    for d in dirs:
        for path in sorted(Path(d).glob(pattern)):
            try:
                found.append((path, json.loads(path.read_text()), ""))
            except (OSError, json.JSONDecodeError) as e:
                found.append((path, None, str(e)))
    return found


class _Page:
    """The page's body as it is built: HTML fragments, and the figures placed in it (numbered in order)."""

    def __init__(self, intro: str):
        self.body: list[str] = [intro]
        self.plots: list[go.Figure] = []

    def text(self, fragment: str) -> None:
        self.body.append(fragment)

    def add(self, fig: go.Figure | None) -> None:
        if fig is not None:
            self.plots.append(fig)
            self.body.append(_div(fig, len(self.plots)))


def _hardware_sections(page: _Page, ok: list[RunRecord]) -> None:
    for label in sorted({r.hardware.label for r in ok}):
        group = [r for r in ok if r.hardware.label == label]
        hw = group[0].hardware
        page.text(f"<h2>Hardware target: {html.escape(label)}</h2><p class=note>{html.escape(hw.cpu_model)} "
                  f"({hw.cpu_cores_logical} logical cores){', ' + html.escape(hw.gpu_name) if hw.gpu_name else ''}"
                  f"; torch {html.escape(str(group[0].software.get('torch')))}. Energy: "
                  f"{html.escape(_energy_line(group))}.</p>")
        for fig in pareto_figures(group):
            page.add(fig)


def _scorecard_sections(page: _Page, cards: list[Scorecard], by_run: dict[str, RunRecord]) -> None:
    page.text(f"<h2>Variant scorecards</h2><p class=note>{html.escape(HOW_TO_READ)}</p>")
    if not cards:
        page.text("<p class=note>No variant point to compare (only baselines, or no ok records).</p>")
    for card in cards:
        page.text(f"<h3>{html.escape(card.model)} on {html.escape(card.hardware)}</h3><p class=note>Compared with: "
                  f"{html.escape(', '.join(card.baseline_run_ids))}.</p>")
        for title, table in (("Fidelity and loss retention", card.fidelity), ("Tasks (paired on items)", card.tasks),
                             (f"Cost. {card.prices}", card.cost)):
            page.text(f"<p class=note><b>{title}</b></p>{_table(table)}")
        for fig in scorecard_figures(card, by_run):
            page.add(fig)


def _serving_sections(page: _Page, serving: list[Curve], judging: Judging) -> None:
    page.text("<h2>Serving under load</h2>")
    if not serving:
        page.text("<p class=note>No serving record here (meekbench run scenario=server|concurrency|offline), so "
                  "there is no latency-throughput curve.</p>")
    for curve in serving:
        op = curve.operating
        page.text(f"<h3>{html.escape(curve.label)}</h3><p class=note>Operating point: "
                  + (f"level {op.level:g}, {fmt_value(op.cost_per_m_output_tokens)} $/M output tokens"
                     if op else "none (no level meets the SLOs)") + ".</p>")
        page.add(serving_figure(curve, judging))
        page.text(_table(level_table(curve, judging), index=True))


def _artifact_sections(page: _Page, dirs: list[str | Path], pattern: str, heading: str, missing: str,
                       describe: Any, figures: Any) -> None:
    """One line per JSON artifact under ``dirs`` (``describe(data, error) -> (line, drawable)``), with its figures."""
    found = _artifacts(dirs, pattern)
    page.text(f"<h2>{heading}</h2>")
    if not found:
        page.text(f"<p class=note>{missing}</p>")
    for source, data, error in found:
        name = source.parent.name
        line, drawable = describe(data, error)
        page.text(f"<p class=note>{html.escape(name)} ({html.escape(str(source))}): {html.escape(line)}</p>")
        for fig in figures(data, name) if drawable else []:
            page.add(fig)


def _law_description(law: dict | None, error: str | None) -> tuple[str, bool]:
    return (_law_line(law), True) if law else (f"unreadable: {error}", False)


def _projection_description(result: dict | None, error: str | None) -> tuple[str, bool]:
    if not result or not result.get("years"):
        return ("unreadable: " + error if error else "no projection in it") + ".", False
    return f"t* = {result['t_star_years']:.3f} y; {_closing_line(result)}.", True


def write_html(path: Path, dirs: list[str | Path], records: list[RunRecord], df: pd.DataFrame,
               cards: list[Scorecard], cross_hw: pd.DataFrame, serving: list[Curve] = (),
               judging: Judging = Judging()) -> Path:
    """The page, beside report.md; ``df`` is the report's flat table, ``cards`` its scorecards."""
    page = _Page(f"<h1>meekbench report</h1><p class=note>Sources: {html.escape(', '.join(map(str, dirs)))}. "
                 f"{len(records)} records. Hover a point for what it is and its intervals; click a table "
                 "header to sort.</p>")
    ok = [r for r in records if r.status == "ok"]
    _verdict_section(page, cards, judging.gates[0])
    if not df.empty:
        page.text("<h2>Points by status</h2>")
        page.text(_table(df.groupby(["hardware.label", "status"]).size().unstack(fill_value=0), index=True))
        page.text("<h2>Points</h2>" + _table(points_table(ok)))
    _hardware_sections(page, ok)
    _scorecard_sections(page, cards, {r.run_id: r for r in ok})
    page.text("<h2>Latency distributions</h2>")
    page.add(latency_figure(ok))
    _serving_sections(page, serving, judging)
    page.text(f"<h2>{html.escape(CROSS_HARDWARE_TITLE)}</h2>")
    page.text(_table(cross_hw))
    page.text(f"<h2>{html.escape(DEPTH_TITLE)}</h2>")
    page.text(_table(depth_table(records)))
    _artifact_sections(page, dirs, "scaling/*/law.json", "Measured laws",
                       "No law.json under scaling/ (meekbench fit-law writes one).", _law_description, law_figures)
    _artifact_sections(page, dirs, "projections/*/projection.json", "Projections",
                       "No projection.json under projections/ (meekbench project writes one).",
                       _projection_description, projection_figures)
    html_page = ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>meekbench report</title>"
                 f"<style>{CSS}</style><script>{get_plotlyjs()}</script></head><body>"
                 + "\n".join(page.body) + f"<script>{SORT_JS}</script></body></html>")
    path.write_text(html_page)
    return path


def _verdict_section(page: "_Page", cards: list[Scorecard], gate: float) -> None:
    """What to look at first, as report.md and the terminal say it, each model's sentence above its
    one-row-per-variant table: the page's first screen."""
    items = []
    for card in cards:
        said = [line[2:] for line in verdict_lines([card], gate) if line.startswith("- ")]
        if said:
            sentence = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(said[0]))
            items.append(f"<p>{sentence}</p>" + ("" if card.glance.empty else _table(card.glance)))
    if items:
        page.text("<h2>What to look at first</h2>" + "".join(items) + f"<p class=note>{html.escape(GLANCE_NOTE)}</p>")


def _energy_line(group: list[RunRecord]) -> str:
    measured = [r for r in group if r.energy and r.energy.joules is not None]
    if measured:
        return f"measured on {len(measured)} of {len(group)} points ({measured[0].energy.source})"
    reasons = {r.energy.reason for r in group if r.energy and r.energy.reason}
    return "not measured (" + ("; ".join(sorted(reasons)) or "no energy counter") + ")"


def _law_line(law: dict) -> str:
    a3 = law.get("approach3", {})
    p = a3.get("params")
    if not p:
        return "no approach-3 fit"
    co = a3.get("compute_optimal", {})
    return (f"L(N, D) = {p['E']:.3f} + {p['A']:.3g}/N^{p['a']:.3f} + {p['B']:.3g}/D^{p['b']:.3f}; "
            f"compute-optimal exponent {fmt_value(co.get('exponent'))}, N* ~ C^{fmt_value(co.get('a'), '.3f')}; "
            f"{law.get('runs')} runs")


def _closing_line(result: dict) -> str:
    parts = [f"gap below {level} nats at {'never in the window' if y is None else f'{y:.2f} y'}"
             for level, y in result.get("closing_years", {}).items()]
    return "; ".join(parts) or "no closing levels"
