"""The plotly figures of report.html, each from records or from a law's or projection's JSON.

Every point says on hover what it is (model, engine, variant, hardware, run id) and its figures
with their intervals; harness/report/html.py lays the figures out on the page.
"""
from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from harness.report.pareto import pareto_front, retention_front
from harness.projector.laws import Chinchilla
from harness.results.schema import RunRecord, Stats, engine_name, variant_label
from harness.report.scorecard import Scorecard

LATENCIES = (("ttft_ms", "TTFT ms"), ("tpot_ms", "TPOT ms"), ("itl_ms", "ITL ms"))
LAYOUT = dict(template="plotly_white", height=430, margin=dict(l=70, r=20, t=50, b=60),
              legend=dict(font=dict(size=10)), hoverlabel=dict(align="left"))

# Click a header to sort its table (numbers numerically, the rest as text); click again to reverse.

def _who(r: RunRecord) -> str:
    """The hover header: what the point is."""
    return (f"<b>{html.escape(r.model.name)} · {html.escape(r.variant.name)}</b><br>engine {engine_name(r)} · "
            f"{html.escape(r.hardware.label)}<br>run {html.escape(r.run_id)}")


def _stat(s: Stats | None, unit: str = "ms") -> str:
    if s is None:
        return "-"
    return f"{s.median:.4g} {unit} [{s.ci_low:.4g}, {s.ci_high:.4g}] (median, {s.ci_level:.0%} interval, n={s.n})"


def fmt_value(x: float | None, fmt: str = ".4g") -> str:
    """A figure, or "-" where there is none."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _hover(r: RunRecord) -> str:
    q, lat, mem = r.quality, r.latency, r.memory
    lines = [_who(r),
             f"held-out {fmt_value(q.bits_per_byte if q else None)} bits/byte, "
             f"{fmt_value(q.heldout_loss_nats if q else None)} nats/token (one pass over the text)",
             f"TPOT {_stat(lat.tpot_ms if lat else None)}", f"TTFT {_stat(lat.ttft_ms if lat else None)}",
             f"weights {fmt_value(mem.weights_bytes / 2**20 if mem and mem.weights_bytes else None)} MiB, "
             f"peak RSS {fmt_value(mem.peak_rss_bytes / 2**30 if mem and mem.peak_rss_bytes else None)} GiB"]
    return "<br>".join(lines)


def _figure(fig: go.Figure, title: str, xlabel: str, ylabel: str, **axes) -> go.Figure:
    fig.update_layout(**{**LAYOUT, "title": title, "xaxis_title": xlabel, "yaxis_title": ylabel, **axes})
    return fig


def pareto_figures(records: list[RunRecord]) -> list[go.Figure]:
    """Bits per byte against TPOT (with TPOT's interval) and against weight bytes, per variant."""
    figs = []
    for axis, label, value, error in (
            ("TPOT", "TPOT ms (median over requests, 95% interval)",
             lambda r: r.latency.tpot_ms.median if r.latency and r.latency.tpot_ms else None,
             lambda r: (r.latency.tpot_ms.median - r.latency.tpot_ms.ci_low,
                        r.latency.tpot_ms.ci_high - r.latency.tpot_ms.median)),
            ("weights", "weights (MiB)",
             lambda r: r.memory.weights_bytes / 2**20 if r.memory and r.memory.weights_bytes else None, None)):
        have = [r for r in records if value(r) is not None and r.quality and r.quality.bits_per_byte is not None]
        if not have:
            continue
        fig = go.Figure()
        for variant in sorted({variant_label(r) for r in have}):
            rs = [r for r in have if variant_label(r) == variant]
            err = None
            if error is not None:
                lo, hi = zip(*(error(r) for r in rs))
                err = dict(type="data", array=list(hi), arrayminus=list(lo), thickness=1)
            fig.add_scatter(x=[value(r) for r in rs], y=[r.quality.bits_per_byte for r in rs], mode="markers",
                            name=variant, error_x=err, text=[_hover(r) for r in rs],
                            hovertemplate="%{text}<extra></extra>", marker=dict(size=9))
        front = pareto_front(pd.DataFrame({"x": [value(r) for r in have],
                                           "y": [r.quality.bits_per_byte for r in have]}), "x", "y")
        fig.add_scatter(x=front["x"], y=front["y"], mode="lines", line=dict(shape="hv", color="black", width=1),
                        name="Pareto front", hoverinfo="skip")
        figs.append(_figure(fig, f"held-out bits per byte against {axis}", label, "held-out bits per byte",
                            xaxis_type="log"))
    return figs


def scorecard_figures(card: Scorecard, by_run: dict[str, RunRecord]) -> list[go.Figure]:
    """Retention against dollars per million tokens, and KL against weight bytes, with intervals."""
    d = pd.DataFrame(card.points)
    figs = []
    if {"usd", "retention"} <= set(d.columns) and d[["usd", "retention"]].notna().all(axis=1).any():
        r = d.dropna(subset=["usd", "retention"])
        fig = go.Figure()
        fig.add_scatter(x=r["usd"], y=r["retention"], mode="markers+text", text=r["variant"],
                        textposition="top center", textfont=dict(size=10), name="variant (95% intervals)",
                        error_y=dict(type="data", array=(r["retention_hi"] - r["retention"]).tolist(),
                                     arrayminus=(r["retention"] - r["retention_lo"]).tolist(), thickness=1),
                        error_x=dict(type="data", array=(r["usd_hi"] - r["usd"]).tolist(),
                                     arrayminus=(r["usd"] - r["usd_lo"]).tolist(), thickness=1),
                        customdata=[_point_hover(p, by_run) for p in r.to_dict("records")],
                        hovertemplate="%{customdata}<extra></extra>", marker=dict(size=9))
        front = retention_front(r)
        fig.add_scatter(x=front["usd"], y=front["retention"], mode="lines", name="Pareto front",
                        line=dict(shape="hv", color="black", width=1), hoverinfo="skip")
        figs.append(_figure(fig, f"{card.model} on {card.hardware}: loss retention against cost",
                            "$ per million generated tokens (decode, first batch size)",
                            "loss retention (baseline / variant)", xaxis_type="log"))
    if {"kl", "bytes"} <= set(d.columns):
        k = d.dropna(subset=["kl", "bytes"])
        k = k[k["kl"] > 0]
        if len(k):
            fig = go.Figure()
            fig.add_scatter(x=k["bytes"] / 2**20, y=k["kl"], mode="markers+text", text=k["variant"],
                            textposition="top center", textfont=dict(size=10), name="variant (95% interval)",
                            error_y=dict(type="data", array=(k["kl_hi"] - k["kl"]).tolist(),
                                         arrayminus=(k["kl"] - k["kl_lo"]).tolist(), thickness=1),
                            customdata=[_point_hover(p, by_run) for p in k.to_dict("records")],
                            hovertemplate="%{customdata}<extra></extra>", marker=dict(size=9))
            figs.append(_figure(fig, f"{card.model} on {card.hardware}: fidelity against size", "weights (MiB)",
                                "mean KL(baseline || variant), nats/token", yaxis_type="log"))
    return figs


def _point_hover(p: dict, by_run: dict[str, RunRecord]) -> str:
    r = by_run.get(p.get("run_id"))
    head = _who(r) if r else f"<b>{html.escape(str(p['variant']))}</b>"
    kl = "-" if p.get("kl") is None or pd.isna(p.get("kl")) else \
        f"{p['kl']:.4g} [{p['kl_lo']:.4g}, {p['kl_hi']:.4g}] nats/token"
    usd = fmt_value(p.get("usd"))
    if usd != "-":
        usd += f" [{fmt_value(p.get('usd_lo'))}, {fmt_value(p.get('usd_hi'))}]"
    return "<br>".join([head, f"loss retention {fmt_value(p.get('retention'), '.5g')} "
                              f"[{fmt_value(p.get('retention_lo'), '.5g')}, {fmt_value(p.get('retention_hi'), '.5g')}]",
                        f"KL {kl}", f"$ per M tokens {usd}",
                        f"weights {fmt_value(p['bytes'] / 2**20 if p.get('bytes') else None)} MiB"])


def latency_figure(records: list[RunRecord]) -> go.Figure | None:
    """One box per point and latency figure, from the record's raw samples."""
    have = [r for r in records if r.latency and r.latency.tpot_ms]
    if not have:
        return None
    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for _, t in LATENCIES], horizontal_spacing=0.12)
    for col, (field, title) in enumerate(LATENCIES, start=1):
        for r in have:
            s: Stats | None = getattr(r.latency, field)
            if s is None:
                continue
            fig.add_box(x=s.samples, name=f"{r.model.name} · {variant_label(r)} · {r.hardware.label}",
                        boxpoints="outliers", showlegend=False, row=1, col=col, orientation="h",
                        marker=dict(size=3), line=dict(width=1), hoverinfo="x",
                        hovertext=f"{_who(r)}<br>{title} {_stat(s)}")
        fig.update_xaxes(title_text=title, type="log", row=1, col=col)
    fig.update_yaxes(showticklabels=False, col=2)
    fig.update_yaxes(showticklabels=False, col=3)
    fig.update_layout(**{**LAYOUT, "height": max(300, 28 * len(have) + 120)},
                      title="latency per request (TTFT, TPOT) and per token (ITL): raw samples")
    return fig


def law_figures(law: dict, name: str) -> list[go.Figure]:
    """A fit-law result: IsoFLOP curves with their parabolas and vertices, and approach 3's residuals."""
    runs = law.get("fitted_runs")
    if not runs:
        return []
    fig = go.Figure()
    optima = {o["budget_flops"]: o for o in law.get("approach2", {}).get("optima", [])}
    for c in sorted({r["budget"] for r in runs}):
        rs = [r for r in runs if r["budget"] == c]
        group = "runs (no budgets)" if c is None else f"C = {c:.2g}"
        fig.add_scatter(x=[r["n"] for r in rs], y=[r["loss"] for r in rs], mode="markers", name=group,
                        legendgroup=group, customdata=[[r["name"], r["seed"], r["d"], r["flops"]] for r in rs],
                        hovertemplate="run %{customdata[0]} (seed %{customdata[1]})<br>N %{x:.4g}, "
                                      "D %{customdata[2]:.4g}, %{customdata[3]:.3g} FLOPs<br>"
                                      "loss %{y:.4f} nats<extra></extra>")
        opt = optima.get(c)
        if opt:
            x = np.linspace(math.log(min(r["n"] for r in rs)), math.log(max(r["n"] for r in rs)), 50)
            p0, p1, p2 = opt["parabola"]
            fig.add_scatter(x=np.exp(x), y=p0 + p1 * x + p2 * x**2, mode="lines", legendgroup=group,
                            showlegend=False, line=dict(width=1), hoverinfo="skip")
            fig.add_scatter(x=[opt["n_opt"]], y=[opt["loss"]], mode="markers", legendgroup=group, showlegend=False,
                            marker=dict(symbol="star", size=13),
                            hovertemplate=f"{group}: parabola vertex<br>N* %{{x:.4g}}, loss %{{y:.4f}}<extra></extra>")
    figs = [_figure(fig, f"law {name}: IsoFLOP curves (stars: parabola vertices)", "parameters N (total)",
                    "held-out loss (nats/token)", xaxis_type="log")]
    if "approach3" in law:
        fit = Chinchilla(**law["approach3"]["params"])
        resid = [math.log(fit.loss(r["n"], r["d"])) - math.log(r["loss"]) for r in runs]
        fig = go.Figure(go.Scatter(x=[r["flops"] for r in runs], y=resid, mode="markers", name="run",
                                   customdata=[r["name"] for r in runs],
                                   hovertemplate="run %{customdata}<br>%{x:.3g} FLOPs<br>log predicted - log "
                                                 "measured %{y:+.4f}<extra></extra>"))
        fig.add_hline(y=0, line=dict(color="black", width=1))
        figs.append(_figure(fig, f"law {name}: residuals of approach 3's L(N, D) fit", "run FLOPs",
                            "log predicted - log measured loss", xaxis_type="log"))
    return figs


def projection_figures(result: dict, name: str) -> list[go.Figure]:
    """A projection: the loss gap over time with its band, t*, the closing levels; and its tornado."""
    years = result["years"]
    fig = go.Figure()
    band = result.get("loss_gap_band")
    if band:
        sampled = ", ".join(result.get("uncertainty", {}).get("sampled", []))
        fig.add_scatter(x=years + years[::-1], y=band["high"] + band["low"][::-1], fill="toself", mode="lines",
                        line=dict(width=0), fillcolor="rgba(31,119,180,0.2)", hoverinfo="skip",
                        name=f"{round(band['level'] * 100)}% band ({sampled})")
        hover = [f"{y:.2f}: gap {g:.4f} nats [{lo:.4f}, {hi:.4f}]"
                 for y, g, lo, hi in zip(years, result["loss_gap"], band["low"], band["high"])]
    else:
        hover = [f"{y:.2f}: gap {g:.4f} nats (no band)" for y, g in zip(years, result["loss_gap"])]
    fig.add_scatter(x=years, y=result["loss_gap"], mode="lines", name="loss gap (meek - frontier)",
                    text=hover, hovertemplate="%{text}<extra></extra>")
    fig.add_vline(x=years[0] + result["t_star_years"], line=dict(dash="dash", color="grey"),
                  annotation_text=f"t* = {result['t_star_years']:.2f} y")
    for level in result.get("closing_years", {}):
        fig.add_hline(y=float(level), line=dict(dash="dot", color="black", width=1),
                      annotation_text=f"{level} nats", annotation_position="bottom right")
    figs = [_figure(fig, f"projection {name}: {result.get('scenario', '')}", "year", "loss gap (nats/token)")]
    rows = result.get("uncertainty", {}).get("tornado") or []
    if rows:
        rows = rows[::-1]  # widest on top
        lo = [min(r["t_star_at_low"], r["t_star_at_high"]) for r in rows]
        hi = [max(r["t_star_at_low"], r["t_star_at_high"]) for r in rows]
        fig = go.Figure(go.Bar(y=[r["input"] for r in rows], x=[h - low for h, low in zip(hi, lo)], base=lo,
                               orientation="h", name="t* range",
                               customdata=[[r["low_value"], r["high_value"], a, b] for r, a, b in zip(rows, lo, hi)],
                               hovertemplate="%{y}: %{customdata[0]:.3g} .. %{customdata[1]:.3g}<br>t* from "
                                             "%{customdata[2]:.3f} to %{customdata[3]:.3f} y<extra></extra>"))
        fig.add_vline(x=result["t_star_years"], line=dict(dash="dash", color="grey"))
        figs.append(_figure(fig, f"projection {name}: what moves t* most (each input at the 5% and 95% quantiles of its draws)",
                            "t* (years)", "", height=max(300, 40 * len(rows) + 120)))
    return figs


def serving_figure(curve, judging) -> go.Figure:
    """One serving curve (harness/results/serving.py): p99 TTFT and p99 TPOT against achieved output
    tokens/s, level by level, with the SLO lines, the operating point and the knee."""
    q = f"p{judging.slo_percentile:g}"
    fig = make_subplots(rows=1, cols=2, subplot_titles=[f"{q} TTFT ms", f"{q} TPOT ms"], horizontal_spacing=0.12)
    for col, (attr, slo) in enumerate((("ttft_at_percentile_ms", judging.slo_ttft_ms),
                                       ("tpot_at_percentile_ms", judging.slo_tpot_ms)), start=1):
        pts = [v for v in curve.levels if getattr(v, attr) is not None and v.output_token_throughput]
        marks = ["star" if v is curve.operating else "x" if v is curve.knee else "circle" for v in pts]
        fig.add_scatter(x=[v.output_token_throughput for v in pts], y=[getattr(v, attr) for v in pts],
                        mode="lines+markers", marker=dict(symbol=marks, size=10), showlegend=False, row=1, col=col,
                        hovertext=[f"level {v.level:g}: {v.completed}/{v.sent} completed, goodput "
                                   f"{fmt_value(v.goodput_rps)} req/s, SLO attainment {v.slo_attainment:.0%}"
                                   + (" (operating point)" if v is curve.operating else "")
                                   + (" (knee)" if v is curve.knee else "") for v in pts], hoverinfo="text+y")
        fig.add_hline(y=slo, line_dash="dash", line_color="red", row=1, col=col)
        fig.update_xaxes(title_text="achieved output tokens/s", row=1, col=col)
        fig.update_yaxes(type="log", row=1, col=col)
    fig.update_layout(**{**LAYOUT, "height": 380}, title=f"{curve.label}: star = operating point, x = knee")
    return fig
