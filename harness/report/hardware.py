"""The same model x engine x variant on several hardware targets, from records of any number of
results directories (one per machine, merged by ``meekbench report A B``): decode TPOT, output
tokens per second, dollars and joules per million output tokens, side by side by hardware label.

Each figure is the record's own, at its first measured shape (the scorecard's headline shape), with
the interval of its median TPOT mapped end to end (harness/results/comparison.cost_rows). A row is
shown only where at least two hardware targets measured the same triple at the same shape.
"""
from __future__ import annotations

import pandas as pd

from harness.results.comparison import Judging, cost_rows, price_of
from harness.results.schema import RunRecord, engine_name

TITLE = ("Same model, engine and variant across hardware (decode at the first measured shape: TPOT median "
         "[95% CI] over requests; $/M and J/M output tokens at that rate; '-' where a machine has no price "
         "or no energy counter)")


def _interval(value: float, low: float | None, high: float | None) -> str:
    return f"{value:.4g} [{low:.4g}, {high:.4g}]" if low is not None and high is not None else f"{value:.4g}"


def _row(r: RunRecord, judging: Judging) -> dict | None:
    price = price_of(r, judging.prices)
    rows = cost_rows(r.latency, None, price)
    scenario = next((sc for sc in r.latency.scenarios if sc.status == "ok" and sc.tpot_ms), None) if r.latency else None
    if not rows or scenario is None:
        return None
    head, t = rows[0], scenario.tpot_ms
    return {"model": r.model.name, "engine": engine_name(r), "variant": r.variant.name,
            "shape": f"b={head.batch_size} p={head.prompt_tokens} n={head.new_tokens}",
            "hardware": r.hardware.label, "device": r.hardware.gpu_name or r.hardware.cpu_model,
            "TPOT ms": _interval(t.median, t.ci_low, t.ci_high),
            "out tok/s": round(head.output_tokens_per_s, 4),
            "$/h": price,
            "price source": ("judge.prices" if r.hardware.label in judging.prices else
                             (r.config.get("hardware") or {}).get("price_source") or "-") if price else "-",
            "$/M tok": (_interval(head.usd_per_million_tokens, head.usd_per_million_tokens_ci_low,
                                  head.usd_per_million_tokens_ci_high) if head.usd_per_million_tokens else None),
            "J/M tok": head.j_per_million_tokens}


def cross_hardware(records: list[RunRecord], judging: Judging) -> pd.DataFrame:
    """One row per (model, engine, variant, shape, hardware) where the triple ran on two or more
    hardware labels; empty when none did."""
    rows = [row for r in records if r.status == "ok" and (row := _row(r, judging))]
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    key = ["model", "engine", "variant", "shape"]
    shared = df.groupby(key)["hardware"].transform("nunique") >= 2
    return df[shared].sort_values(key + ["hardware"], ignore_index=True)
