"""The report's serving section: per target, the latency-throughput curve (p99 TTFT and p99 TPOT
against achieved output throughput, with the SLO lines, the operating point and the knee), a table
of every level, and what a million output tokens cost at the operating point."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harness.results.comparison import Judging  # noqa: E402
from harness.results.serving import Curve, curves  # noqa: E402
from harness.results.store import load_serving_records  # noqa: E402


def _fmt(x, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def level_table(curve: Curve, judging: Judging) -> pd.DataFrame:
    q = f"p{judging.slo_percentile:g}"
    rows = []
    for v in curve.levels:
        s = v.record.serving
        rows.append({"level": v.level, "status": v.record.status, "sent": v.sent, "completed": v.completed,
                     "req/s": v.request_throughput, "output tok/s": v.output_token_throughput,
                     "runs": v.runs, "output tok/s 95% CI (runs)": (f"[{v.throughput_ci[0]:.3g}, {v.throughput_ci[1]:.3g}]"
                                                                    if v.throughput_ci else None),
                     "TTFT p50 ms": s.ttft_ms.median if s.ttft_ms else None, f"TTFT {q} ms": v.ttft_at_percentile_ms,
                     "TPOT p50 ms": s.tpot_ms.median if s.tpot_ms else None, f"TPOT {q} ms": v.tpot_at_percentile_ms,
                     "ITL p99 ms": s.itl_ms.p99 if s.itl_ms else None, "meets SLOs": "yes" if v.meets_slo else "no",
                     "goodput req/s": v.goodput_rps, "SLO attainment": v.slo_attainment,
                     "$/M output tok": v.cost_per_m_output_tokens,
                     "send lag p99 ms": s.send_lag_ms.p99 if s.send_lag_ms else None})
    table = pd.DataFrame(rows).set_index("level")
    if all(v.runs == 1 for v in curve.levels):  # one run per level: no across-run columns
        table = table.drop(columns=["runs", "output tok/s 95% CI (runs)"])
    return table


def curve_figure(curve: Curve, judging: Judging, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    x = [v.output_token_throughput or 0 for v in curve.levels]
    q = f"p{judging.slo_percentile:g}"
    for ax, values, slo, name in ((axes[0], [v.ttft_at_percentile_ms for v in curve.levels], judging.slo_ttft_ms,
                                   f"{q} TTFT ms"),
                                  (axes[1], [v.tpot_at_percentile_ms for v in curve.levels], judging.slo_tpot_ms,
                                   f"{q} TPOT ms")):
        pts = [(a, b, v) for a, b, v in zip(x, values, curve.levels) if b is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-")
        for a, b, v in pts:
            ax.annotate(f"{v.level:g}", (a, b), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.axhline(slo, color="red", linestyle="--", label=f"SLO {slo:g} ms")
        for mark, style, text in ((curve.operating, "g*", "operating point"), (curve.knee, "kx", "knee")):
            if mark is not None and mark.output_token_throughput:
                value = mark.ttft_at_percentile_ms if ax is axes[0] else mark.tpot_at_percentile_ms
                if value is not None:
                    ax.plot([mark.output_token_throughput], [value], style, markersize=12, label=text)
        ax.set_xlabel("achieved output tokens/s")
        ax.set_ylabel(name)
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.suptitle(f"{curve.label} (labels: {'requests/s offered' if curve.kind == 'server' else 'level'})",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fidelity_sentence(f) -> str:
    """A curve's served fidelity in words: its KL lower bound and its method, or why it has none."""
    if f is None:
        return "Served fidelity: not measured (scenario.fidelity=false, or records written before it existed)."
    if f.greedy_matched_share is not None:
        return (f"Served fidelity: greedy agreement with the model's fp32 reference {f.greedy_matched_share:.3f} "
                f"[{f.greedy_ci_low:.3f}, {f.greedy_ci_high:.3f}] (the share of the reference's {f.greedy_new_tokens}-token "
                f"greedy continuation reproduced before the first difference, as text, mean over {f.greedy_prompts} "
                "prompts); "
                f"{f.reason}.")
    if f.fidelity is None:
        return f"Served fidelity: none: {f.reason}"
    x = f.fidelity
    return (f"Served fidelity against the model's fp32 reference: KL >= {x.kl_mean_nats:.3g} nats "
            f"[{x.kl_ci_low:.3g}, {x.kl_ci_high:.3g}], top-1 same {x.same_top_rate:.4f}, served held-out loss "
            f"{f.heldout_loss_nats:.4f} nats over {f.tokens} tokens ({f.method}; top {x.top_k}, so the KL is a "
            "lower bound).")


def summary_table(view: "ServingView", judging: Judging) -> pd.DataFrame:
    """One row per served engine x variant: its fidelity, and its latency, throughput and cost at its operating
    point (the most load meeting the SLOs)."""
    q = f"p{judging.slo_percentile:g}"
    rows = []
    for c in view.curves:
        f, op = c.fidelity, c.operating
        fid = f.fidelity if f else None
        started = [v.record.target.startup_s for v in c.levels if v.record.target and v.record.target.startup_s]
        greedy = f"{f.greedy_matched_share:.3f}" if f and f.greedy_matched_share is not None else "-"
        rows.append({"target": c.label, "KL vs fp32 (nats)": f">={fid.kl_mean_nats:.3g}" if fid else "-",
                     "greedy agreement": greedy,
                     "top-1 same": _fmt(fid.same_top_rate if fid else None, ".4f"),
                     "operating level": _fmt(op.level if op else None, "g"),
                     "output tok/s": _fmt(op.output_token_throughput if op else None),
                     f"{q} TTFT ms": _fmt(op.ttft_at_percentile_ms if op else None),
                     f"{q} TPOT ms": _fmt(op.tpot_at_percentile_ms if op else None),
                     "$/M output tokens": _fmt(op.cost_per_m_output_tokens if op else None),
                     "start-up s (median)": _fmt(float(np.median(started)) if started else None)})
    return pd.DataFrame(rows)


@dataclass
class ServingView:
    curves: list[Curve]
    skipped: list


def serving_curves(dirs: list, judging: Judging) -> ServingView:
    """The serving records under ``dirs`` as judged curves, and the files that were not records."""
    records, skipped = load_serving_records(dirs)
    return ServingView(curves(records, judging), skipped)


def serving_markdown(view: ServingView, out: Path, judging: Judging) -> list[str]:
    """The section's lines (empty when the directories hold no serving records)."""
    if not view.curves and not view.skipped:
        return []
    q = f"p{judging.slo_percentile:g}"
    lines = ["## Serving under load", "",
             f"SLOs: {q} TTFT <= {judging.slo_ttft_ms:g} ms and {q} TPOT <= {judging.slo_tpot_ms:g} ms (judge.slo; "
             "a failed request counts as infinitely slow). Goodput: completed requests per second that met both. "
             "Definitions: docs/serving.md.", ""]
    lines += [f"- skipped `{s.path}`: {s.reason}" for s in view.skipped]
    if view.curves:
        lines += ["Each served engine x variant: its fidelity against the model's fp32 reference through the server's "
                  "API, and at its operating point its latency, output throughput and cost ('-': no level met the "
                  "SLOs, or no fidelity: its section says why).", "",
                  summary_table(view, judging).to_markdown(index=False, disable_numparse=True), ""]
    for i, curve in enumerate(view.curves):
        png = out / f"serving-{i}.png"
        curve_figure(curve, judging, png)
        first = curve.levels[0].record
        target = first.target
        lines += [f"### {curve.label}", "",
                  f"Target: {target.url if target else '?'} ({'started by meekbench' if target and target.launched else 'given by URL'}"
                  f"; load generator: {first.serving.load_generator if first.serving else '?'}).", "",
                  fidelity_sentence(curve.fidelity), "",
                  f"![latency-throughput]({png.name})", "", level_table(curve, judging).to_markdown(floatfmt=".4g"), ""]
        op, knee = curve.operating, curve.knee
        if op is None:
            lines.append("Operating point: none; no level meets the SLOs.")
        else:
            cost = f"${_fmt(op.cost_per_m_output_tokens)} per million output tokens" \
                if op.cost_per_m_output_tokens is not None else "not priced (hardware.price_per_hour_usd or judge.prices)"
            lines.append(f"Operating point: level {op.level:g}, {_fmt(op.output_token_throughput)} output tok/s, "
                         f"goodput {_fmt(op.goodput_rps)} req/s: {cost}.")
        lines += ["", f"Knee: {'level ' + format(knee.level, 'g') if knee else 'not reached in these levels'}"
                  " (server: achieved request rate below 90% of the rate requests were sent at; closed loop: throughput up "
                  "less than 10% over the level before).", ""]
    return lines
