"""PNG plots of a projection (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_gap(result: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    years = np.array(result["years"])
    ax.plot(years, result["loss_gap"], label="training-loss gap (meek - frontier)")
    if result["loss_gap_band"]:
        b = result["loss_gap_band"]
        sampled = ", ".join(result["uncertainty"]["sampled"])
        ax.fill_between(years, b["low"], b["high"], alpha=0.25, label=f"{round(b['level'] * 100)}% band ({sampled})")
    t_star = years[0] + result["t_star_years"]
    ax.axvline(t_star, ls="--", c="grey", label=f"t* = {result['t_star_years']:.2f} y")
    for level, closing in result["closing_years"].items():
        ax.axhline(float(level), ls=":", c="k", lw=0.8)
        if closing is not None and closing <= years[-1] - years[0]:
            ax.axvline(years[0] + closing, ls=":", c="tab:green", lw=1, label=f"gap < {level} nats at {closing:.1f} y")
    ax.set(xlabel="year", ylabel="loss gap (nats/token)", title=f"Scaling gap: {result['scenario']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_law(result: dict[str, Any], family, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    pts = family.points
    n = np.array([p["non_embedding_params"] for p in pts], float)
    grid = np.logspace(np.log10(n.min() / 2), np.log10(n.max() * 4), 100)
    ax.scatter(n, [p["heldout_loss_nats"] for p in pts], zorder=3, label="measured (fp32 baseline)")
    for p in pts:
        ax.annotate(p["model"], (p["non_embedding_params"], p["heldout_loss_nats"]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    law_n = family.law_n
    ax.plot(grid, law_n.loss(grid), label=f"fit E={law_n.E:.2f} + {law_n.A:.3g} N^-{law_n.a:.3f}")
    if family.fit.bootstrap:
        from harness.projector.laws import PowerLaw

        curves = np.array([PowerLaw(**b).loss(grid) for b in family.fit.bootstrap])
        ax.fill_between(grid, np.quantile(curves, 0.05, 0), np.quantile(curves, 0.95, 0), alpha=0.2,
                        label="90% bootstrap band")
    for v in result["variants"]:
        ax.scatter([v["non_embedding_params"]], [v["heldout_loss_nats"]], marker="x", zorder=4)
        ax.annotate(v["variant"], (v["non_embedding_params"], v["heldout_loss_nats"]), fontsize=7,
                    xytext=(4, -8), textcoords="offset points")
    ax.set(xscale="log", xlabel="non-embedding parameters", ylabel="held-out loss (nats/token)",
           title="Family law with measured points")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_multipliers(result: dict[str, Any], path: Path) -> None:
    rows = [v for v in result["variants"] if v.get("multiplier") is not None and np.isfinite(v["multiplier"])]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.5))
    labels = [f"{v['model']} {v['variant']}" for v in rows]
    ax.barh(labels, [v["multiplier"] for v in rows])
    ax.axvline(1.0, c="grey", ls="--")
    ax.set(xscale="log", xlabel="effective / actual non-embedding parameters", title="Variant multipliers")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_tornado(result: dict[str, Any], path: Path) -> None:
    rows = result["uncertainty"]["tornado"][::-1]  # widest on top
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.5))
    t_star = result["t_star_years"]
    for i, r in enumerate(rows):
        lo, hi = sorted((r["t_star_at_low"], r["t_star_at_high"]))
        ax.barh(i, hi - lo, left=lo, color="tab:blue", alpha=0.6)
        ax.annotate(f"{r['low_value']:.3g} .. {r['high_value']:.3g}", (hi, i), xytext=(4, -3),
                    textcoords="offset points", fontsize=8)
    ax.set_yticks(range(len(rows)), [r["input"] for r in rows])
    ax.axvline(t_star, c="grey", ls="--")
    ax.set(xlabel="t* (years) with one input at the 5% and 95% quantiles of its draws", title="What moves t* most")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_all(result: dict[str, Any], family, out: Path) -> list[Path]:
    written = [out / "gap.png"]
    plot_gap(result, written[0])
    if result["uncertainty"]["tornado"]:
        written.append(out / "tornado.png")
        plot_tornado(result, written[-1])
    if family is not None:
        written.append(out / "law.png")
        plot_law(result, family, written[-1])
    if any(v.get("multiplier") is not None for v in result["variants"]):
        written.append(out / "multipliers.png")
        plot_multipliers(result, written[-1])
    return written
