"""``meekbench report [DIR ...]``: gather records from results directories into one view.

Writes, under ``out_dir``: ``points.parquet`` and ``points.csv`` (one row per record, columns
named by dotted record keys, raw sample lists left out), ``report.md`` with PNG plots, and
``report.html`` (harness/report/html.py: the same as one self-contained interactive page).
A file that is not a valid record is reported by path and skipped; the report still comes out.
"""
from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from harness.results.comparison import (ComparisonBlock, Judging, baseline_of, baselines,  # noqa: E402
                                        compare_records, ratio, speed_ratio)
from harness.results.store import load_records, load_serving_records, require_valid  # noqa: E402
from harness.results.schema import RunRecord, is_baseline, variant_label  # noqa: E402
from harness.report.depth import TITLE as DEPTH_TITLE, depth_plot, depth_table  # noqa: E402
from harness.report.hardware import TITLE as CROSS_HARDWARE_TITLE, cross_hardware  # noqa: E402
from harness.report.pareto import pareto_front  # noqa: E402
from harness.report.html import write_html  # noqa: E402
from harness.report.scorecard import scorecard_markdown, scorecards  # noqa: E402
from harness.report.serving import serving_curves, serving_markdown  # noqa: E402
from harness.report.verdict import verdict_lines  # noqa: E402

log = logging.getLogger(__name__)

BPB = "quality.bits_per_byte"  # the quality axis of plots: per byte, so models of any tokenizer share it
TPOT = "latency.tpot_ms.median"
WEIGHTS = "memory.weights_bytes"
ENERGY = "energy.j_per_token"


_RAW = object()  # a cell the table leaves to the records


def _cell(value):
    """Short lists of scalars (batch sizes...) stay readable as text; raw sample lists and
    scenario lists stay in the records, the table keeps their summaries."""
    if isinstance(value, list):
        if value and len(value) <= 8 and all(isinstance(x, (int, float, str, bool)) or x is None for x in value):
            return ",".join(map(str, value))
        return _RAW
    return _RAW if isinstance(value, dict) else value


def flat_table(records: list[RunRecord]) -> pd.DataFrame:
    """One row per record, columns named by dotted record keys (pandas.json_normalize)."""
    cells = pd.json_normalize([r.model_dump(mode="json") for r in records], sep=".").map(_cell)
    raw = cells.map(lambda v: v is _RAW)
    lists_only = (raw | cells.isna()).all() & raw.any()
    df = cells.loc[:, ~lists_only].mask(raw.loc[:, ~lists_only], None)
    if len(df):
        df["variant.label"] = [variant_label(r) for r in records]  # the variant with its engine (schema.variant_label)
    return df.sort_values(["hardware.label", "model.name", "variant.label"], ignore_index=True) if len(df) else df


def _pareto_plot(df: pd.DataFrame, x: str, xlabel: str, path: Path, title: str) -> bool:
    d = df.dropna(subset=[x, BPB])
    if d.empty:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    lo, hi = x.replace(".median", ".ci_low"), x.replace(".median", ".ci_high")  # TPOT has its interval
    for variant, grp in d.groupby("variant.label"):
        err = [grp[x] - grp[lo], grp[hi] - grp[x]] if lo in grp and hi in grp and lo != x else None
        ax.errorbar(grp[x], grp[BPB], xerr=err, fmt="o", ms=4, capsize=2, elinewidth=0.8, label=variant)
    front = pareto_front(d, x, BPB)
    ax.step(front[x], front[BPB], where="post", c="k", lw=1, label="Pareto front")
    # Labels on the front's points only, alternating above and below, so they do not overlap;
    # report.html names every point on hover.
    for i, (_, row) in enumerate(front.iterrows()):
        ax.annotate(f"{row['model.name']} {row['variant.label']}", (row[x], row[BPB]), fontsize=6,
                    xytext=(4, 6 if i % 2 else -9), textcoords="offset points")
    ax.set(xscale="log", xlabel=xlabel, ylabel="held-out bits per byte", title=title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def variant_effects(records: list[RunRecord], comparisons: dict[str, ComparisonBlock],
                    baseline_variant: str) -> pd.DataFrame:
    """Each non-baseline point against its model's baseline on the same hardware."""
    base = baselines(records, baseline_variant)
    rows = []
    for r in records:
        b = baseline_of(r, base) if r.status == "ok" else None
        if b is None:
            continue
        row = {"hardware": r.hardware.label, "model": r.model.name, "variant": variant_label(r),
               "delta_loss_nats": r.quality.heldout_loss_nats - b.quality.heldout_loss_nats,
               "delta_bits_per_byte": _difference(r.quality.bits_per_byte, b.quality.bits_per_byte),
               **_speed(speed_ratio(r, b)),
               "weights_saved_bytes": b.memory.weights_bytes - r.memory.weights_bytes,
               "weights_ratio": ratio(r.memory.weights_bytes, b.memory.weights_bytes)}
        for task, score in r.quality.tasks.items():
            other = b.quality.tasks.get(task)
            acc, b_acc = score.metrics.get("acc"), other.metrics.get("acc") if other else None
            if acc is None or b_acc is None:
                continue
            row[f"delta_acc.{task}"] = acc - b_acc
            paired = comparisons[r.run_id].tasks.get(task) if r.run_id in comparisons else None
            if paired is not None:  # the paired interval over items (the scorecard has the full test)
                row[f"delta_acc_ci.{task}"] = f"[{paired.difference_ci_low:+.4f}, {paired.difference_ci_high:+.4f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def _difference(x: float | None, y: float | None) -> float | None:
    return None if x is None or y is None else x - y


def models_table(records: list[RunRecord], baseline_variant: str) -> tuple[pd.DataFrame, list[str]]:
    """One row per model: its counts and its baseline's held-out quality per token and per byte (the
    axis on which models of different tokenizers compare), and the lines that say what a model's
    weights are where they are not the publisher's (a dequantised GGUF, say)."""
    rows, notes = {}, {}
    for r in records:
        if r.status != "ok" or not is_baseline(r, baseline_variant) or not r.quality:
            continue
        rows.setdefault((r.model.name, r.hardware.label), {
            "model": r.model.name, "family": r.model.family, "hardware": r.hardware.label,
            "params": r.model.params, "non-embedding params": r.model.non_embedding_params,
            "train tokens": r.model.train_tokens, "held-out loss nats/token": r.quality.heldout_loss_nats,
            "held-out bits/byte": r.quality.bits_per_byte,
            "bytes/token": r.quality.heldout_bytes / r.quality.heldout_tokens
            if r.quality.heldout_bytes and r.quality.heldout_tokens else None})
        if r.model.weights:
            notes[r.model.name] = r.model.weights
    df = pd.DataFrame(sorted(rows.values(), key=lambda x: (x["hardware"], x["params"] or 0)))
    return df, [f"- **{m}**: {w}" for m, w in sorted(notes.items())]


def _speed(s) -> dict:
    if s is None:
        return {"speedup": None, "speed_kind": None}
    return {"speedup": s.speedup, "speed_kind": s.kind,  # paired: interleaved in one point; else two points
            "speedup_ci_low": 1 / s.ci_high if s.ci_high else None, "speedup_ci_high": 1 / s.ci_low if s.ci_low else None}


def _md(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A table as Markdown: a multi-level index as its own columns (not Python tuples), a default
    numbered index left out."""
    if df.empty:
        return "_none_\n"
    if isinstance(df.index, pd.MultiIndex):
        df = df.reset_index()
    index = not isinstance(df.index, pd.RangeIndex)
    return df.to_markdown(floatfmt=floatfmt, index=index) + "\n"


def _hardware_lines(ok: pd.DataFrame, out: Path) -> list[str]:
    """Per hardware target: the machine, and loss against latency, memory and energy with their Pareto fronts."""
    lines: list[str] = []
    for label, grp in ok.groupby("hardware.label"):
        slug = "".join(c if c.isalnum() else "-" for c in str(label))
        lines += [f"## Hardware target: {label}", ""]
        hw = grp.iloc[0]
        lines.append(f"{hw.get('hardware.cpu_model')} ({hw.get('hardware.cpu_cores_logical')} logical cores)"
                     + (f", {hw.get('hardware.gpu_name')}" if pd.notna(hw.get("hardware.gpu_name")) else "")
                     + f"; torch {hw.get('software.torch')}, transformers {hw.get('software.transformers')}.")
        lines.append("")
        for x, xlabel, name in ((TPOT, "TPOT ms (median)", "latency"),
                                (WEIGHTS, "weights bytes", "memory"), (ENERGY, "J per token", "energy")):
            png = out / f"pareto-{name}-{slug}.png"
            if x in grp.columns and _pareto_plot(grp, x, xlabel, png, f"{label}: loss vs {name}"):
                front = pareto_front(grp, x, BPB)
                lines += [f"![loss vs {name}]({png.name})", "",
                          "Pareto front: " + ", ".join(f"{m} {v}" for m, v in
                                                       zip(front["model.name"], front["variant.label"])), ""]
            elif name == "energy":
                reason = grp["energy.reason"].dropna().iloc[0] if "energy.reason" in grp and \
                    grp["energy.reason"].notna().any() else "not measured"
                lines += [f"Energy: not measured on this target ({reason}).", ""]
    return lines


def write_report(dirs: list[str | Path], out_dir: str | Path, judging: Judging = Judging()) -> Path:
    """Every table, plot and the page, from the records under ``dirs``; records are compared with
    their baselines here (``judging``), not when their points ran."""
    for d in map(Path, dirs):  # a mistyped folder is said, not reported on as an empty one
        if not d.is_dir():
            raise FileNotFoundError(f"results_dirs: {d} {'is a file' if d.exists() else 'does not exist'}; valid: a "
                                    "folder `meekbench run` wrote records into (it holds runs/ or serving/)")
    g = load_records(dirs)
    require_valid(dirs, g, 0 if g.records else len(load_serving_records(dirs)[0]))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    baseline_variant = judging.baseline_variant
    comparisons = compare_records(g.records, judging)
    df = flat_table(g.records)
    if not df.empty:
        df.to_parquet(out / "points.parquet", index=False)
    df.to_csv(out / "points.csv", index=False)

    lines = ["# meekbench report", "", f"Sources: {', '.join(map(str, dirs))}. "
             f"{len(g.records)} records, {len(g.skipped)} files skipped.", "",
             "The same report as one interactive page: [report.html](report.html) "
             "(self-contained, works offline; hover a point for what it is).", ""]
    verdict_at = len(lines)  # "What to look at first" goes here once the scorecards exist
    if g.skipped:
        lines += ["## Skipped files", ""] + [f"- `{s.path}`: {s.reason}" for s in g.skipped] + [""]
    cards, cross, verdict = [], pd.DataFrame(), []
    if df.empty:
        lines.append("No valid records.")
    else:
        status = df.groupby(["hardware.label", "status"]).size().unstack(fill_value=0)
        lines += ["## Points by status", "", _md(status)]
        bad = df[df["status"] != "ok"][["hardware.label", "model.name", "variant.label", "status", "error"]]
        if not bad.empty:
            lines += ["### Not ok", "", _md(bad.set_index("model.name"))]
        ok = df[df["status"] == "ok"]
        lines += _hardware_lines(ok, out)
        models, weights = models_table(g.records, baseline_variant)
        lines += [f"## Models ({baseline_variant} baselines; bits per byte of the same held-out text compare "
                  "across tokenizers, nats per token do not)", "", _md(models.set_index("model") if len(models)
                                                                     else models, ".5g")]
        if weights:
            lines += ["What the weights are, where they are not the publisher's:", "", *weights, ""]
        effects = variant_effects(g.records, comparisons, baseline_variant)
        lines += [f"## Variant effects against `{baseline_variant}` on the same hardware", "", _md(effects)]
        cards, cross = scorecards(g.records, comparisons, judging), cross_hardware(g.records, judging)
        verdict = verdict_lines(cards, judging.gates[0])
        lines += scorecard_markdown(cards, out, baseline_variant)
        lines += [f"## {CROSS_HARDWARE_TITLE}", "", _md(cross)]
        depths = depth_table(g.records)
        lines += [f"## {DEPTH_TITLE}", "", _md(depths)]
        if depth_plot(depths, out / "depth-decode.png"):
            lines += ["![decode against depth](depth-decode.png)", ""]
    (out / "verdict.md").write_text("".join(f"{line}\n" for line in verdict))  # the CLI prints it
    if verdict:
        lines[verdict_at:verdict_at] = ["## What to look at first", "", *verdict, ""]
    serving = serving_curves(dirs, judging)
    lines += serving_markdown(serving, out, judging)
    write_html(out / "report.html", dirs, g.records, df, cards, cross, serving.curves, judging)
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out / "report.md"
