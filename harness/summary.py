"""Print a table of the records in a results directory (the demo's closing view)."""
from __future__ import annotations

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from harness.results.schema import RunRecord
from harness.results.store import Skipped, baselines, iter_records


def _mb(n: int | None) -> str:
    return f"{n / 2**20:.2f}" if n is not None else "-"


def _num(x: float | None, fmt: str = ".4f") -> str:
    return format(x, fmt) if x is not None else "-"


def _ratio(a: float | None, b: float | None, fmt: str = ".2f") -> str:
    return format(a / b, fmt) + "x" if a is not None and b else "-"


def _acc(q, task: str) -> str:
    score = q.tasks.get(task)
    if not score or score.metrics.get("acc") is None:
        return "-"
    se = score.metrics.get("acc_stderr")
    return f"{score.metrics['acc']:.3f} ± {se:.3f}" if se is not None else f"{score.metrics['acc']:.3f}"


def summary_table(records: list[RunRecord], baseline_variant: str = "fp32") -> Table:
    base = baselines(records, baseline_variant)
    table = Table(title="meekbench points", show_lines=False)
    for col in ("model", "variant", "hardware", "status", "non-emb params", "loss nats", "Δloss", "bits/byte",
                "decode ms/tok [95% CI]", "speed-up", "weights MB", "mem ratio", "ci mc acc ± se", "ci cloze acc ± se"):
        table.add_column(col, justify="left" if col in ("model", "variant", "hardware", "status") else "right")
    order = sorted(records, key=lambda r: (r.hardware.label, r.model.non_embedding_params or 0, r.model.name,
                                           r.variant.name))
    for r in order:
        if r.status != "ok":  # the reason is printed under the table, not squeezed into a cell
            table.add_row(r.model.name, r.variant.name, r.hardware.label, f"[red]{r.status}[/]",
                          *["-"] * (len(table.columns) - 4))
            continue
        b = base.get((r.model.name, r.hardware.id))
        q, lat, mem = r.quality, r.latency, r.memory
        d = lat.decode_ms_per_token if lat else None
        dloss = (q.heldout_loss_nats - b.quality.heldout_loss_nats) if b and b is not r else None
        table.add_row(
            r.model.name, r.variant.name, r.hardware.label, r.status,
            f"{r.model.non_embedding_params:,}" if r.model.non_embedding_params else "-",
            _num(q.heldout_loss_nats), _num(dloss, "+.4f"), _num(q.bits_per_byte),
            f"{d.median:.3f} [{d.ci_low:.3f}, {d.ci_high:.3f}]" if d else "-",
            _ratio(b.latency.decode_ms_per_token.median, d.median) if b and b is not r and d else "-",
            _mb(mem.weights_bytes),
            _ratio(mem.weights_bytes, b.memory.weights_bytes) if b and b is not r else "-",
            _acc(q, "meek_ci_mc"), _acc(q, "meek_ci_cloze"),
        )
    return table


def print_summary(cfg: DictConfig) -> None:
    console = Console(width=None if Console().is_terminal else 200)
    records: list[RunRecord] = []
    for item in iter_records([cfg.results_dir]):
        if isinstance(item, Skipped):
            console.print(f"[yellow]skipped[/] {item.path}: {item.reason}")
        else:
            records.append(item)
    if not records:
        console.print(f"no records under {cfg.results_dir}/runs; run `meekbench run` first")
        return
    console.print(summary_table(records, cfg.baseline_variant))
    for r in records:
        if r.status != "ok":
            console.print(f"[red]{r.status}[/] {r.model.name} {r.variant.name}: {r.error}", soft_wrap=True)
