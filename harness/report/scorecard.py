"""The variant scorecard: per model and hardware target, every variant against its baseline.

Lays out each record's comparison with its baseline (``compare_records``: computed from the two
records, with the report's judging settings): fidelity and loss retention, paired task tests,
cost. The one thing computed here is Holm's correction, because its family is the set of variants shown together: for each model,
hardware and task, the McNemar p-values of all its variants are adjusted as one family.
The baseline's own cost row is derived from its latency block the same way as a variant's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from harness.report.pareto import retention_front  # noqa: E402
from harness.results.comparison import (ComparisonBlock, CostBlock, Judging, SpeedRatio, baselines,  # noqa: E402
                                        cost_rows, holm, price_of, price_sentence)
from harness.results.schema import RunRecord, variant_label  # noqa: E402

SIG = 5  # significant figures for retention (as MLPerf reports accuracy)

HOW_TO_READ = (
    "KL: mean KL(baseline || variant) per held-out token in nats, [95% interval resampling windows], "
    "and the same per byte of the held-out text in bits (KL bits/B: comparable across tokenizers); "
    "'>=' marks a lower bound (the tokens both points kept plus the rest's mass; exact when both kept the "
    "whole vocabulary); KL 99.9%: the per-token KL's 99.9th percentile. top-1: share of tokens whose most "
    "probable next token is unchanged (llama-perplexity's 'same top p'). Δp: the variant's probability of "
    "the true next token minus the baseline's, mean [interval] and RMS, in percentage points as "
    "llama-perplexity prints them; percentiles interpolate linearly between tokens. moved: share whose "
    "log p(true token) moved by more than the threshold. Retention: baseline / variant held-out loss "
    "(loss) or variant / baseline accuracy (tasks), 5 significant figures, with gates: pass when the "
    "whole interval is at or above the gate, fail when it is all below, ? (undecided) when it straddles. "
    "Tasks are paired on the items both points logged: flips right->wrong / wrong->right, McNemar's "
    "exact p (Holm-adjusted across the variants of this model and hardware, per task). Cost: decode "
    "tokens/s at batch size b and dollars per million generated tokens, each from the point's own median "
    "TPOT with its 95% interval: across runs where the point ran several (bench.runs: runs, then requests "
    "in each: what the next run would read), else within its one run (its rounds and requests: noise "
    "within one process, not the drift between processes; the 'intervals' column says which); "
    "speed-up: baseline / variant TPOT, "
    "r = paired in each of the point's runs, geometric mean with its interval across runs; "
    "p = paired (interleaved inside the variant's point, with its interval: free of drift between "
    "points, so it is the figure to compare two rows' dollars by), u = unpaired (two points' medians, "
    "drift included, no interval); joules per million generated tokens where energy was measured.")


def _sig(x: float | None) -> str:
    return "-" if x is None else f"{x:#.{SIG}g}"


def _interval(x: float | None, lo: float | None, hi: float | None, fmt=_sig) -> str:
    if x is None:
        return "-"
    return f"{fmt(x)} [{fmt(lo)}, {fmt(hi)}]" if lo is not None and hi is not None else fmt(x)


def _g4(x: float) -> str:
    return f"{x:.4g}"


def _gates(g: dict[str, str]) -> str:
    marks = {"pass": "pass", "fail": "fail", "undecided": "?"}
    return " ".join(f"{k}:{marks[v]}" for k, v in g.items()) or "-"


def _short(x: float | None, fmt: str = ".3g") -> str:
    return "-" if x is None else format(x, fmt)


@dataclass
class Scorecard:
    hardware: str
    model: str
    baseline_run_ids: list[str]  # the baseline records the rows were compared with
    fidelity: pd.DataFrame
    tasks: pd.DataFrame
    glance: pd.DataFrame  # one row per engine x variant, the baseline first: the card's headline figures
    cost: pd.DataFrame
    points: list[dict] = field(default_factory=list)  # plot data: variant, retention, usd/M, KL, bytes
    prices: str = ""  # what the dollar figures are priced at, with each price's source


def _holm_by_task(compared: list[RunRecord], comparisons: dict[str, ComparisonBlock]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    tasks = {t for r in compared for t in comparisons[r.run_id].tasks}
    for task in tasks:
        have = [r for r in compared if task in comparisons[r.run_id].tasks]
        for r, p in zip(have, holm([comparisons[r.run_id].tasks[task].mcnemar_p for r in have])):
            out[(r.run_id, task)] = p
    return out


def _bits_per_byte_of_nats(r: RunRecord) -> float | None:
    """Nats per token -> bits per byte of the same held-out text (tokens / bytes / ln 2), so models
    with different tokenizers share one axis."""
    q = r.quality
    if not q or not q.heldout_tokens or not q.heldout_bytes:
        return None
    return q.heldout_tokens / q.heldout_bytes / math.log(2)


def _speed(head: CostBlock | None) -> str:
    """The speed-up at the first measured shape as tables print it, or '-' where none was measured."""
    if not head or not head.tpot_ratio:
        return "-"
    return SpeedRatio(head.tpot_ratio, head.tpot_ratio_kind, head.tpot_ratio_ci_low, head.tpot_ratio_ci_high).label


def _dollars(head: CostBlock | None) -> str:
    return _interval(head.usd_per_million_tokens, head.usd_per_million_tokens_ci_low,
                     head.usd_per_million_tokens_ci_high, _g4) if head else "-"


def _cost_row(variant: str, rows: list[CostBlock], weights_per_param, extra_usd=None) -> dict:
    head = rows[0] if rows else None
    return {"variant": variant,
            **{f"tok/s b={c.batch_size}": _interval(c.output_tokens_per_s, c.output_tokens_per_s_ci_low,
                                                    c.output_tokens_per_s_ci_high, _g4) for c in rows},
            "speed-up": _speed(head), "intervals": head.intervals if head else "-",
            "$/M tok": _dollars(head),
            "J/M tok": _short(head.j_per_million_tokens if head else None, ".4g"),
            "weights B/param": _short(weights_per_param, ".3g"), "extra training $": _short(extra_usd, ".3g")}


def _usd(rows: list[CostBlock]) -> dict:
    """A plot point's dollars per million tokens at the first measured shape, with their interval."""
    head = rows[0] if rows else None
    return {"usd": head.usd_per_million_tokens if head else None,
            "usd_lo": head.usd_per_million_tokens_ci_low if head else None,
            "usd_hi": head.usd_per_million_tokens_ci_high if head else None}


def _mib(n: int | None) -> str:
    return "-" if not n else f"{n / 2**20:.3g}"


def _glance_row(variant: str, r: RunRecord, c: ComparisonBlock | None, cost: list[CostBlock]) -> dict[str, Any]:
    """The row a reader compares engines x variants by: fidelity, the point's own bits per byte,
    speed against the baseline, size, memory, how much of the memory bandwidth decoding used, and
    dollars. Peak RSS marked * holds the paired baseline alongside (bench.paired_baseline)."""
    f = c.fidelity if c else None
    head = cost[0] if cost else None
    speed = "1 (reference)" if c is None else _speed(head)
    m, q = r.memory, r.quality
    return {"engine · variant": variant,
            "KL nats [95%]": ("-" if c is None else "missing" if f is None else
                              ("" if f.exact else ">=") + _interval(f.kl_mean_nats, f.kl_ci_low, f.kl_ci_high,
                                                                    lambda x: f"{x:.3g}")),
            "loss retention": "1 (reference)" if c is None else _short(f.loss_retention if f else None, ".4f"),
            "bits/byte": _short(q.bits_per_byte if q else None, ".4f"),
            "speed-up": speed + (f" ({head.intervals})" if head and c is not None and head.tpot_ratio else ""),
            "weights MiB": _mib(m.weights_bytes if m else None),
            "peak RSS MiB": _mib(m.peak_rss_bytes if m else None)
            + ("*" if m and m.peak_rss_bytes and "paired baseline" in m.peak_rss_scope else ""),
            "roofline": _short(r.roofline.fraction_of_bandwidth if r.roofline else None, ".2f"),
            "$/M tok [95%]": _dollars(head)}


def _fidelity_row(variant: str, r: RunRecord, c: ComparisonBlock) -> dict[str, Any]:
    f = c.fidelity
    per_byte = _bits_per_byte_of_nats(r)
    lower = "" if f is None or f.exact else ">="
    return {
        "variant": variant,
        "KL nats": lower + _interval(f.kl_mean_nats, f.kl_ci_low, f.kl_ci_high, lambda x: f"{x:.3g}")
        if f else "missing",
        "KL bits/B": lower + _interval(*(x * per_byte for x in (f.kl_mean_nats, f.kl_ci_low, f.kl_ci_high)),
                                       lambda x: f"{x:.3g}") if f and per_byte else "-",
        "KL 99.9%": (lower + f"{f.kl_percentiles_nats['99.9']:.3g}") if f and f.kl_percentiles_nats else "-",
        "top-1 same": _interval(f.same_top_rate, f.same_top_ci_low, f.same_top_ci_high,
                                lambda x: f"{x:.4f}") if f else "-",
        "Δp % [CI]": _interval(*(100 * x for x in (f.delta_p_mean, f.delta_p_ci_low, f.delta_p_ci_high)),
                               lambda x: f"{x:+.3g}") if f and f.delta_p_mean is not None else "-",
        "RMS Δp %": f"{100 * f.delta_p_rms:.3g}" if f and f.delta_p_rms is not None else "-",
        "moved": f"{f.shifted_share:.4f} (>{f.logprob_shift_nats:g} nats)" if f else "-",
        "loss retention": _interval(f.loss_retention, f.loss_retention_ci_low, f.loss_retention_ci_high)
        if f else "-",
        "loss gates": _gates(c.loss_gates)}


def _task_rows(variant: str, run_id: str, c: ComparisonBlock, holm_p: dict) -> list[dict[str, Any]]:
    return [{"variant": variant, "task": task, "items": t.items,
             f"Δ{t.metric}": _interval(t.difference, t.difference_ci_low, t.difference_ci_high, lambda x: f"{x:+.4f}"),
             "r→w / w→r": f"{t.right_to_wrong} / {t.wrong_to_right}",
             "McNemar p": f"{t.mcnemar_p:.3g}", "p (Holm)": f"{holm_p[(run_id, task)]:.3g}",
             "retention": _interval(t.retention, t.retention_ci_low, t.retention_ci_high),
             "gates": _gates(t.gates)} for task, t in c.tasks.items()]


def _point(variant: str, r: RunRecord, f: Any, cost: Any) -> dict[str, Any]:
    """One plot point: a variant's retention, KL and cost."""
    return {"variant": variant, "run_id": r.run_id,
            "retention": f.loss_retention if f else None, "retention_lo": f.loss_retention_ci_low if f else None,
            "retention_hi": f.loss_retention_ci_high if f else None,
            "kl": f.kl_mean_nats if f else None, "kl_lo": f.kl_ci_low if f else None,
            "kl_hi": f.kl_ci_high if f else None, **_usd(cost), "bytes": r.memory.weights_bytes if r.memory else None,
            # the paired speed-up's low end (baseline / variant TPOT): what says a variant is measurably cheaper
            "speedup_lo": 1 / cost[0].tpot_ratio_ci_high if cost and cost[0].tpot_ratio_ci_high else None}


def _card(hardware: str, model: str, compared: list[RunRecord], b: RunRecord | None,
          comparisons: dict[str, ComparisonBlock], judging: Judging) -> Scorecard:
    compared.sort(key=lambda r: (variant_label(r), r.run_id))
    names = [variant_label(r) for r in compared]
    # two points of one variant (different settings) are told apart by their run id's key
    label = {r.run_id: name + (f" ({r.point_key[:6]})" if names.count(name) > 1 else "")
             for r, name in zip(compared, names)}
    holm_p = _holm_by_task(compared, comparisons)
    fid_rows, task_rows, cost, points, glance = [], [], [], [], []
    if b is not None:
        b_cost = cost_rows(b.latency, None, price_of(b, judging.prices))
        b_bytes = b.memory.weights_bytes if b.memory else None
        name = judging.baseline_variant
        cost.append(_cost_row(f"{name} (baseline)", b_cost, b_bytes / b.model.params if b_bytes and b.model.params
                              else None))
        glance.append(_glance_row(f"{name} (baseline)", b, None, b_cost))
        points.append({"variant": name, "run_id": b.run_id, "retention": 1.0, "retention_lo": 1.0, "retention_hi": 1.0,
                       "kl": None, **_usd(b_cost), "bytes": b_bytes})
    for r in compared:
        c = comparisons[r.run_id]
        fid_rows.append(_fidelity_row(label[r.run_id], r, c))
        task_rows += _task_rows(label[r.run_id], r.run_id, c, holm_p)
        cost.append(_cost_row(label[r.run_id], c.cost, c.weights_bytes_per_param, c.extra_training_usd))
        glance.append(_glance_row(label[r.run_id], r, c, c.cost))
        points.append(_point(label[r.run_id], r, c.fidelity, c.cost))
    compared_with = sorted({comparisons[r.run_id].baseline_run_id or "none (no baseline record)" for r in compared})
    return Scorecard(hardware, model, compared_with, pd.DataFrame(fid_rows), pd.DataFrame(task_rows),
                     pd.DataFrame(glance), pd.DataFrame(cost), points, price_sentence(compared + ([b] if b else []), judging.prices))


def scorecards(records: list[RunRecord], comparisons: dict[str, ComparisonBlock], judging: Judging) -> list[Scorecard]:
    """``comparisons``: ``compare_records(records, judging)``, by run id."""
    base = baselines(records, judging.baseline_variant)
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for r in records:
        if r.run_id in comparisons:
            groups.setdefault((r.hardware.id, r.model.name), []).append(r)
    return [_card(compared[0].hardware.label, model, compared, base.get((model, hw_id)), comparisons, judging)
            for (hw_id, model), compared in sorted(groups.items(), key=lambda kv: (kv[1][0].hardware.label, kv[0][1]))]


def retention_cost_plot(card: Scorecard, path: Path) -> bool:
    d = pd.DataFrame(card.points).dropna(subset=["usd", "retention"])
    if d.empty:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.errorbar(d["usd"], d["retention"], yerr=[d["retention"] - d["retention_lo"], d["retention_hi"] - d["retention"]],
                xerr=[d["usd"] - d["usd_lo"], d["usd_hi"] - d["usd"]], fmt="o", ms=4, capsize=2,
                label="variant (95% intervals)")
    for _, row in d.iterrows():
        ax.annotate(row["variant"], (row["usd"], row["retention"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    front = retention_front(d)
    ax.step(front["usd"], front["retention"], where="post", c="k", lw=1)
    ax.scatter(front["usd"], front["retention"], s=90, facecolors="none", edgecolors="k", label="Pareto front")
    ax.set(xlabel="$ per million generated tokens (decode, b=first measured)",
           ylabel="loss retention (baseline / variant)", title=f"{card.model} on {card.hardware}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def kl_bytes_plot(card: Scorecard, path: Path) -> bool:
    d = pd.DataFrame(card.points).dropna(subset=["kl", "bytes"])
    d = d[d["kl"] > 0]
    if d.empty:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.errorbar(d["bytes"] / 2**20, d["kl"], yerr=[d["kl"] - d["kl_lo"], d["kl_hi"] - d["kl"]], fmt="o", ms=4,
                capsize=2)
    for _, row in d.iterrows():
        ax.annotate(row["variant"], (row["bytes"] / 2**20, row["kl"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set(xlabel="weights (MiB)", ylabel="mean KL(baseline || variant), nats/token", yscale="log",
           title=f"{card.model} on {card.hardware}: fidelity against size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _table(df: pd.DataFrame) -> str:
    return (df.to_markdown(index=False) if not df.empty else "_none_") + "\n"


GLANCE_NOTE = ("One row per engine x variant: KL and loss retention against the baseline's held-out "
               "distributions, the point's own held-out bits per byte, speed-up over the baseline's TPOT "
               "(p paired, r across runs, u unpaired; the interval and what it resamples), weights, peak RSS "
               "(* includes the paired baseline held alongside), the decode's share of the machine's measured "
               "memory bandwidth (roofline) and dollars per million generated tokens.")


def glance_markdown(card: Scorecard) -> list[str]:
    """The card's one-row-per-variant table, with its key; nothing when the card has no rows."""
    return [] if card.glance.empty else [GLANCE_NOTE, "", card.glance.to_markdown(index=False), ""]


def scorecard_markdown(cards: list[Scorecard], out: Path | None, baseline_variant: str) -> list[str]:
    """The report's scorecard section, with its plots written into ``out`` (None: tables only)."""
    lines = [f"## Variant scorecards against `{baseline_variant}`", "", HOW_TO_READ, ""]
    if not cards:
        return lines + ["No variant point to compare (only baselines, or no ok records).", ""]
    for card in cards:
        slug = "".join(ch if ch.isalnum() else "-" for ch in f"{card.model}-{card.hardware}")
        lines += [f"### {card.model} on {card.hardware}", "",
                  "Compared with: " + ", ".join(f"`{b}`" for b in card.baseline_run_ids) + ".", "",
                  *glance_markdown(card), "Fidelity and loss retention (held-out windows):", "", _table(card.fidelity),
                  "Tasks (paired on items):", "", _table(card.tasks), f"Cost. {card.prices}", "", _table(card.cost)]
        for name, plot in (("retention-cost", retention_cost_plot), ("kl-bytes", kl_bytes_plot)) if out else ():
            png = out / f"scorecard-{name}-{slug}.png"
            if plot(card, png):
                lines += [f"![{name}]({png.name})", ""]
            else:
                lines += [f"({name} plot: no point has both figures"
                          + (": set hardware.price_per_hour_usd for dollars" if name == "retention-cost" else "")
                          + ")", ""]
    return lines
