"""Prefill and decode throughput against context depth, llama-bench's two axes, for every engine x
variant whose point timed several prompt lengths (bench.prompt_tokens=[16, 512, 2048]).

A point's shape with a P-token prompt gives both: prefill throughput = batch x P / TTFT (the whole
prompt processed from an empty cache, as llama-bench's ``pp<P>``), and decode throughput = batch /
TPOT, each generated token attending to the P prompt tokens already in the cache (as
llama-bench's ``tg<N> -d <P>``, which also leaves the prefill out). Differences from llama-bench:
TTFT includes sampling the first token, and decode at depth P here also sees the tokens generated
so far (P to P + N - 1), where llama-bench's depth is fixed before its N tokens.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from harness.results.schema import RunRecord, variant_label

TITLE = ("Prefill and decode throughput against context depth (tokens/s; decode with its 95% interval, "
         "from the point's median TPOT)")


def depth_table(records: list[RunRecord]) -> pd.DataFrame:
    """One row per ok shape of every ok record that timed two or more prompt lengths."""
    rows = []
    for r in records:
        shapes = [sc for sc in (r.latency.scenarios if r.status == "ok" and r.latency else [])
                  if sc.status == "ok" and sc.tpot_ms and sc.ttft_ms]
        if len({sc.prompt_tokens for sc in shapes}) < 2:
            continue
        for sc in shapes:
            t = sc.tpot_ms
            rows.append({"model": r.model.name, "engine x variant": variant_label(r), "hardware": r.hardware.label,
                         "batch": sc.batch_size, "depth (prompt tokens)": sc.prompt_tokens,
                         "prefill tok/s": round(sc.batch_size * sc.prompt_tokens * 1000 / sc.ttft_ms.median, 1),
                         "decode tok/s": round(sc.batch_size * 1000 / t.median, 2),
                         "decode CI": f"[{sc.batch_size * 1000 / t.ci_high:.4g}, {sc.batch_size * 1000 / t.ci_low:.4g}]"})
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).sort_values(["hardware", "model", "engine x variant", "batch", "depth (prompt tokens)"],
                                          ignore_index=True)


def depth_plot(table: pd.DataFrame, path: Path) -> bool:
    """Decode tokens/s against depth, one line per model x engine x variant (batch 1 where timed)."""
    if table.empty:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for (model, label, hw), g in table[table["batch"] == table["batch"].min()].groupby(
            ["model", "engine x variant", "hardware"]):
        ax.plot(g["depth (prompt tokens)"], g["decode tok/s"], marker="o", label=f"{model} · {label} · {hw}")
    ax.set(xscale="log", xlabel="context depth (prompt tokens)", ylabel="decode tokens/s",
           title="Decode speed against context depth")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
