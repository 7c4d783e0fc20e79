"""Print a table of the records in a results directory (the demo's closing view)."""
from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from harness.config import SummaryConfig
from harness.results.comparison import baseline_of, headline_runs, baselines, ratio, speed_ratio, task_names
from harness.results.store import load_records, load_serving_records, require_valid
from harness.results.schema import REFERENCE_ENGINE, Quality, RunRecord, engine_name

COLUMNS = ("model", "variant", "engine", "hardware", "status", "non-emb N", "loss nats", "Δloss", "bits/B",
           "TPOT ms [95% CI]", "spread", "gen/bare", "speed-up", "weights MB", "mem ratio")
NOTE = ("TPOT: median time per output token over requests, interval by resampling rounds and requests, or "
        "(Nr) runs and then requests across the point's N runs (bench.runs); spread: "
        "(max - min) / median of the rounds' TPOT; gen/bare: generate() over a bare KV-cache loop; speed-up: "
        "baseline TPOT / this TPOT, r = paired in each run, across runs; p = paired (interleaved inside the point, "
        "with its interval), "
        "u = unpaired (two points measured apart: drift included); task columns: accuracy ± stderr")


def _mb(n: int | None) -> str:
    return f"{n / 2**20:.2f}" if n is not None else "-"


def _num(x: float | None, fmt: str = ".4f") -> str:
    return format(x, fmt) if x is not None else "-"


def _times(x: float | None) -> str:
    return f"{x:.2f}x" if x is not None else "-"


def _acc(q: Quality, task: str) -> str:
    score = q.tasks.get(task)
    if not score or score.metrics.get("acc") is None:
        return "-"
    se = score.metrics.get("acc_stderr")
    return f"{score.metrics['acc']:.3f} ± {se:.3f}" if se is not None else f"{score.metrics['acc']:.3f}"


def summary_table(records: list[RunRecord], baseline_variant: str = "fp32") -> Table:
    """One row per record; each non-baseline row compared to its model's baseline on the same hardware;
    one accuracy column (± stderr) per lm-eval task with an accuracy in the records."""
    base = baselines(records, baseline_variant)
    tasks = [t for t in task_names(records) if any(_acc(r.quality, t) != "-" for r in records if r.quality)]
    labels = sorted({r.hardware.label for r in records})
    engines = {engine_name(r) for r in records}
    columns = [c for c in COLUMNS if (c != "hardware" or len(labels) > 1) and (c != "engine" or len(engines) > 1)] \
        + tasks
    table = Table(title="meekbench points" + (f" on {labels[0]}" if len(labels) == 1 else ""),
                  box=box.SIMPLE_HEAD, pad_edge=False)
    order = sorted(records, key=lambda r: (r.hardware.label, r.model.non_embedding_params or 0, r.model.name,
                                           engine_name(r) != REFERENCE_ENGINE, engine_name(r), r.variant.name))
    rows: list[list[str]] = []
    for r in order:
        cells = {"model": r.model.name, "variant": r.variant.name, "engine": engine_name(r),
                 "hardware": r.hardware.label}
        if r.status != "ok":  # the reason is printed under the table, not squeezed into a cell
            cells["status"] = r.status
        else:
            b = baseline_of(r, base)
            q, lat, mem = r.quality, r.latency, r.memory
            runs = headline_runs(r)
            d = runs.tpot_ms if runs else (lat.tpot_ms if lat else None)
            speed = speed_ratio(r, b)
            cells |= {
                "status": r.status,
                "non-emb N": f"{r.model.non_embedding_params:,}" if r.model.non_embedding_params else "-",
                "loss nats": _num(q.heldout_loss_nats),
                "Δloss": _num(q.heldout_loss_nats - b.quality.heldout_loss_nats if b else None, "+.4f"),
                "bits/B": _num(q.bits_per_byte),
                "TPOT ms [95% CI]": (f"{d.median:.3f} [{d.ci_low:.3f}, {d.ci_high:.3f}]" + (f" {runs.runs}r" if runs else "")
                                     if d else "-"),
                "spread": f"{lat.round_spread:.0%}" if lat and lat.round_spread is not None else "-",
                "gen/bare": _num(lat.generate_over_bare if lat else None, ".2f"),
                "speed-up": speed.label if speed else "-",
                "weights MB": _mb(mem.weights_bytes),
                "mem ratio": _times(ratio(mem.weights_bytes, b.memory.weights_bytes) if b else None),
                **{t: _acc(q, t) for t in tasks}}
        rows.append([cells.get(c, "-") for c in columns])
    for i, col in enumerate(columns):  # the widest cell sets the width: figures are never cut
        width = max([len(col)] + [len(row[i]) for row in rows])
        table.add_column(col, justify="left" if col in COLUMNS[:5] else "right", no_wrap=True, min_width=width)
    for row in rows:
        table.add_row(*row)
    return table


def print_summary(cfg: SummaryConfig) -> None:
    console = Console(width=None if Console().is_terminal else 260)
    loaded = load_records([cfg.results_dir])
    for item in loaded.skipped:
        console.print(f"[yellow]skipped[/] {item.path}: {item.reason}")
    if not loaded.records:
        serving, _ = load_serving_records([cfg.results_dir])
        require_valid([cfg.results_dir], loaded, len(serving))
        console.print(f"no single-point records under {cfg.results_dir}/runs; " + (
            f"{len(serving)} serving records under {cfg.results_dir}/serving: their curves are in "
            f"`meekbench report {cfg.results_dir}`" if serving else "run `meekbench run` first"))
        return
    console.print(summary_table(loaded.records, cfg.baseline_variant))
    console.print(NOTE, soft_wrap=True)
    for name, weights in sorted({(r.model.name, r.model.weights) for r in loaded.records if r.model.weights}):
        console.print(f"{name} weights: {weights}", soft_wrap=True)
    for r in loaded.records:
        if r.status != "ok":
            console.print(f"[red]{r.status}[/] {r.model.name} {r.variant.name}: {r.error}", soft_wrap=True)
