"""Run a projection scenario: resolve inputs (defaults or measured), project, write the outputs.

Every input carries its provenance ({"value", "source": "default" | "measured", "note"}), so a
reader can tell which numbers came from this harness's measurements.
"""
from __future__ import annotations

import json
import logging
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import ProjectConfig, ProjectorConfig
from harness.projector import gap as G
from harness.projector.fit import FitError, FitResult, Sigmoid, fit_power_law, fit_sigmoid
from harness.projector.laws import CHINCHILLA, EPOCH_REFIT, ComputeLaw, PowerLaw
from harness.results.compare import baseline_of, baselines, load_records, ratio, speed_ratio
from harness.results.schema import RunRecord
from harness.results.store import write_atomic

log = logging.getLogger(__name__)


def _input(value: Any, source: str, note: str = "") -> dict[str, Any]:
    return {"value": value, "source": source, "note": note}


@dataclass
class FamilyFit:
    law_n: PowerLaw  # L(N_non_embedding) on the family's fixed D
    fit: FitResult
    tokens: float
    points: list[dict[str, Any]]


@dataclass
class Inputs:
    law: ComputeLaw
    law_n: PowerLaw  # loss against parameters, for multipliers and the inference gap
    growth: G.Growth
    flop_per_dollar: float
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)
    family: FamilyFit | None = None
    sigmoid: Sigmoid | None = None
    sigmoid_fit: FitResult | None = None


def fit_family(records: list[RunRecord], p: ProjectorConfig) -> FamilyFit:
    base = [r for r in records if r.status == "ok" and r.model.family == p.family
            and r.variant.name == p.baseline_variant and r.quality and r.quality.heldout_loss_nats
            and r.model.non_embedding_params]
    by_model: dict[str, list[RunRecord]] = {}
    for r in base:
        by_model.setdefault(r.model.name, []).append(r)
    if not by_model:
        raise FitError(f"no ok {p.baseline_variant!r} records of family {p.family!r} to fit")
    tokens = {r.model.train_tokens for r in base}
    if len(tokens) != 1 or None in tokens:
        raise FitError(f"family {p.family!r} points differ in training tokens {sorted(map(str, tokens))}: "
                       "a law in N needs one fixed D")
    points = [{"model": name, "non_embedding_params": rs[0].model.non_embedding_params,
               "heldout_loss_nats": statistics.median(r.quality.heldout_loss_nats for r in rs)}
              for name, rs in sorted(by_model.items())]
    law_n, fit = fit_power_law([q["non_embedding_params"] for q in points],
                               [q["heldout_loss_nats"] for q in points], resamples=p.bootstrap, seed=p.seed)
    return FamilyFit(law_n, fit, float(tokens.pop()), points)


def _task_points(records: list[RunRecord], task: str | None) -> tuple[str | None, list[tuple[float, float]]]:
    pts: dict[str, list[tuple[float, float]]] = {}
    for r in records:
        if r.status != "ok" or not r.quality or r.quality.heldout_loss_nats is None:
            continue
        for name, score in r.quality.tasks.items():
            acc = score.metrics.get("acc")
            if acc is not None and (task is None or name == task):
                pts.setdefault(name, []).append((r.quality.heldout_loss_nats, acc))
    if not pts:
        return task, []
    name = task or max(pts, key=lambda k: len(pts[k]))
    return name, pts.get(name, [])


def resolve_inputs(p: ProjectorConfig, records: list[RunRecord]) -> Inputs:
    growth = G.Growth(p.growth.g_i, p.growth.g_h, p.growth.g_alg)
    prov: dict[str, dict[str, Any]] = {
        name: _input(getattr(growth, name), "default", "paper (Gundlach, Lynch & Thompson 2025)")
        for name in ("g_i", "g_h", "g_alg")
    }
    prov["budget_usd"] = _input(p.budget_usd, "default", "meek actor's fixed budget")
    family = None
    law_n = PowerLaw(E=CHINCHILLA.E, A=CHINCHILLA.A, a=CHINCHILLA.a)  # data not binding (D -> inf)
    law_n_note = "Chinchilla E + A/N^a (data term dropped)"
    if p.law.source == "paper":
        law = ComputeLaw(p.law.L0, p.law.A, p.law.alpha)
        src, note = "default", "paper default L(C) = L0 + A C^-alpha"
    elif p.law.source in ("chinchilla", "epoch"):
        base = CHINCHILLA if p.law.source == "chinchilla" else EPOCH_REFIT
        law = base.compute_optimal()
        if p.law.source == "epoch":
            law_n, law_n_note = PowerLaw(E=base.E, A=base.A, a=base.a), "Epoch refit E + A/N^a (data term dropped)"
        src, note = "default", f"compute-optimal form of the {p.law.source} fit of L(N, D)"
    elif p.law.source == "measured":
        try:
            family = fit_family(records, p)
            law = family.law_n.as_compute_law(family.tokens)
            law_n, law_n_note = family.law_n, f"fitted to {len(family.points)} measured {p.family} points"
            src = "measured"
            note = (f"fitted to {len(family.points)} {p.family} points on a fixed D={family.tokens:.0f} tokens: "
                    "the family's path L(6ND), not a compute-optimal frontier")
        except FitError as e:
            law = ComputeLaw(1.7, 1070.0, 0.155)
            src, note = "default", f"fell back to the paper law: {e}"
            log.warning("measured law unavailable, using the paper default: %s", e)
    else:
        raise ValueError(f"projector.law.source={p.law.source!r}; valid: paper, chinchilla, epoch, measured")
    for k in ("L0", "A", "alpha"):
        prov[f"law.{k}"] = _input(getattr(law, k), src, note)
    prov["law_n"] = _input(asdict(law_n), "measured" if family else "default", law_n_note)

    flop_per_dollar, fsrc, fnote = p.flop_per_dollar, "default", "H100 989 TFLOP/s bf16, $2/h, 40% utilisation"
    if p.flop_per_dollar_from_hardware:
        probes = [r.hardware.probes.matmul_flops_per_s for r in records if r.hardware.probes]
        # the projector's price, else the price the points were run with (hardware.price_per_hour_usd)
        recorded = [r.config.get("hardware", {}).get("price_per_hour_usd") for r in records if r.hardware.probes]
        recorded = [x for x in recorded if x]
        price = p.price_per_hour_usd or (statistics.median(recorded) if recorded else None)
        if probes and price:
            flop_per_dollar = statistics.median(probes) * 3600 / price
            labels = sorted({r.hardware.label for r in records if r.hardware.probes})
            fsrc, fnote = "measured", f"median matmul FLOP/s of {labels} at ${price}/h"
        else:
            why = "no hardware probes in the records" if not probes else \
                "no price: set projector.price_per_hour_usd or run points with hardware.price_per_hour_usd"
            fnote = f"default kept ({why}); " + fnote
    prov["flop_per_dollar"] = _input(flop_per_dollar, fsrc, fnote)

    inputs = Inputs(law=law, law_n=law_n, growth=growth, flop_per_dollar=flop_per_dollar, provenance=prov,
                    family=family)
    task, pts = _task_points(records, p.task)
    if len(pts) >= 4:
        try:
            inputs.sigmoid, inputs.sigmoid_fit = fit_sigmoid([a for a, _ in pts], [b for _, b in pts],
                                                             resamples=p.bootstrap, seed=p.seed)
            prov["sigmoid"] = _input(inputs.sigmoid_fit.params, "measured", f"fitted to {len(pts)} points of {task}")
        except FitError as e:
            prov["sigmoid"] = _input(None, "unavailable", f"sigmoid fit failed on {task}: {e}")
    else:
        prov["sigmoid"] = _input(None, "unavailable",
                                 f"needs >= 4 (loss, accuracy) points; found {len(pts)}" + (f" for {task}" if task else ""))
    return inputs


def variant_multipliers(records: list[RunRecord], inputs: Inputs, p: ProjectorConfig) -> list[dict[str, Any]]:
    """Effective-size multiplier of each non-baseline point: the baseline size reaching its loss."""
    if inputs.family is None:
        return []
    base = baselines(records, p.baseline_variant)
    out = []
    for r in records:
        if r.status != "ok" or r.variant.name == p.baseline_variant or not r.quality \
                or r.quality.heldout_loss_nats is None or not r.model.non_embedding_params:
            continue
        n_eff = float(inputs.law_n.invert(r.quality.heldout_loss_nats))
        b = baseline_of(r, base)
        row = {"model": r.model.name, "variant": r.variant.name, "kind": r.variant.kind,
               "hardware": r.hardware.label, "heldout_loss_nats": r.quality.heldout_loss_nats,
               "non_embedding_params": r.model.non_embedding_params, "effective_params": n_eff,
               "multiplier": n_eff / r.model.non_embedding_params}
        speed = speed_ratio(r, b)
        row |= {"decode_time_ratio": speed.tpot_ratio if speed else None,
                "decode_time_ratio_kind": speed.kind if speed else None}
        if b:
            row |= {"weights_bytes_ratio": ratio(r.memory.weights_bytes, b.memory.weights_bytes),
                    "energy_ratio": ratio(r.energy.j_per_token, b.energy.j_per_token)}
        if flops := (r.variant.extra.get("distillation") or {}).get("distil_flops"):
            row["extra_training_flops"] = flops
        out.append(row)
    return out


def _band(p: ProjectorConfig, inputs: Inputs, c0: float, t: np.ndarray):
    if inputs.family is None or not inputs.family.fit.bootstrap:
        return None, None
    gaps, stars = [], []
    for params in inputs.family.fit.bootstrap:
        law = PowerLaw(**params).as_compute_law(inputs.family.tokens)
        gaps.append(G.loss_gap(law, c0, inputs.growth, t))
        stars.append(G.peak_time_closed_form(law.alpha, inputs.growth))
    gaps = np.array(gaps)
    band = {"level": 0.9, "low": np.quantile(gaps, 0.05, axis=0).tolist(),
            "high": np.quantile(gaps, 0.95, axis=0).tolist(), "resamples": len(gaps)}
    return band, [float(np.quantile(stars, 0.05)), float(np.quantile(stars, 0.95))]


def project(p: ProjectorConfig, records: list[RunRecord]) -> dict[str, Any]:
    if p.horizon_years <= 0 or p.steps_per_year < 1:
        raise ValueError(f"horizon_years={p.horizon_years}, steps_per_year={p.steps_per_year}: both must be positive")
    if p.budget_usd <= 0:
        raise ValueError(f"budget_usd={p.budget_usd}: must be > 0")
    inputs = resolve_inputs(p, records)
    c0 = p.budget_usd * inputs.flop_per_dollar
    t = np.linspace(0.0, p.horizon_years, int(round(p.horizon_years * p.steps_per_year)) + 1)
    frontier = inputs.law.loss(G.frontier_compute(c0, inputs.growth, t))
    meek = inputs.law.loss(G.meek_compute(c0, inputs.growth, t))
    gap = meek - frontier
    band, t_star_interval = _band(p, inputs, c0, t)

    inf = p.inference
    meek_n = G.InferenceCost(inf.price_per_token_usd, inputs.flop_per_dollar, inf.g_cost,
                             inf.flops_per_param).runnable_params(t)
    frontier_n = meek_n * np.power(inputs.growth.g_i, t)  # the frontier's spend per token grows with investment
    inference = {"price_per_token_usd": inf.price_per_token_usd, "g_cost": inf.g_cost,
                 "meek_params": meek_n.tolist(), "frontier_params": frontier_n.tolist(),
                 "meek_loss": inputs.law_n.loss(meek_n).tolist(),
                 "loss_gap": (inputs.law_n.loss(meek_n) - inputs.law_n.loss(frontier_n)).tolist(),
                 "note": "loss of the largest model each can run at its price per token, via law_n"}

    score = None
    if inputs.sigmoid:
        ms, fs = inputs.sigmoid.score(meek), inputs.sigmoid.score(frontier)
        score = {"meek": ms.tolist(), "frontier": fs.tolist(), "gap": (fs - ms).tolist(),
                 "p_step": {str(k): {"meek": G.p_step_success(np.clip(ms, 0, 1), k).tolist(),
                                     "frontier": G.p_step_success(np.clip(fs, 0, 1), k).tolist()}
                            for k in p.p_steps}}
    return {
        "scenario": p.name,
        "t_star_years": G.peak_time_closed_form(inputs.law.alpha, inputs.growth),
        "t_star_numerical_years": G.peak_time_numerical(inputs.law, c0, inputs.growth,
                                                        horizon=max(50.0, p.horizon_years)),
        "t_star_interval": t_star_interval,
        "peak_gap_nats": float(G.loss_gap(inputs.law, c0, inputs.growth,
                                          G.peak_time_closed_form(inputs.law.alpha, inputs.growth))),
        "meek_compute_flops_at_start": c0,
        "t": t.tolist(),
        "years": (p.start_year + t).tolist(),
        "frontier_loss": frontier.tolist(),
        "meek_loss": meek.tolist(),
        "loss_gap": gap.tolist(),
        "loss_gap_band": band,
        "wald_tokens": [x if math.isfinite(x) else None for x in G.wald_tokens(gap, p.error_rate).tolist()],
        "wald_error_rate": p.error_rate,
        "inference": inference,
        "score": score,
        "inputs": inputs.provenance,
        "family_points": inputs.family.points if inputs.family else [],
        "variants": variant_multipliers(records, inputs, p),
        "_law_n": inputs.law_n,
        "_family": inputs.family,
    }


def markdown_table(result: dict[str, Any], steps_per_year: int) -> str:
    lines = [f"# Projection: {result['scenario']}", "",
             f"Peak of the training-loss gap: t* = {result['t_star_years']:.2f} years (closed form), "
             f"{result['t_star_numerical_years']:.2f} (numerical)"
             + (f", 90% band [{result['t_star_interval'][0]:.2f}, {result['t_star_interval'][1]:.2f}]"
                if result["t_star_interval"] else "") + ".", "",
             "| year | frontier loss | meek loss | gap (nats) | tokens to tell apart |", "|---|---|---|---|---|"]
    for i in range(0, len(result["years"]), steps_per_year):
        w = result["wald_tokens"][i]
        lines.append(f"| {result['years'][i]:.0f} | {result['frontier_loss'][i]:.4f} | {result['meek_loss'][i]:.4f} "
                     f"| {result['loss_gap'][i]:.4f} | {'inf' if w is None else f'{w:.3g}'} |")
    lines += ["", "## Inputs", "", "| input | value | source | note |", "|---|---|---|---|"]
    for k, v in result["inputs"].items():
        val = v["value"]
        val = f"{val:.4g}" if isinstance(val, float) else json.dumps(val, default=str)[:80]
        lines.append(f"| {k} | {val} | {v['source']} | {v['note']} |")
    if result["variants"]:
        lines += ["", "## Variant effective-size multipliers", "",
                  "| model | variant | hardware | loss | multiplier | weights ratio | decode time ratio |",
                  "|---|---|---|---|---|---|---|"]
        for v in result["variants"]:
            f = lambda x: "-" if x is None else f"{x:.3g}"  # noqa: E731
            lines.append(f"| {v['model']} | {v['variant']} | {v['hardware']} | {v['heldout_loss_nats']:.4f} | "
                         f"{f(v['multiplier'])} | {f(v.get('weights_bytes_ratio'))} | {f(v.get('decode_time_ratio'))} |")
    return "\n".join(lines) + "\n"


def write_projection(cfg: ProjectConfig) -> Path:
    from harness.projector.plots import plot_all

    records = load_records(list(cfg.results_dirs)).records
    result = project(cfg.projector, records)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    law_n, family = result.pop("_law_n"), result.pop("_family")
    write_atomic(out / "projection.json", json.dumps(result, indent=1))
    (out / "projection.md").write_text(markdown_table(result, cfg.projector.steps_per_year))
    plot_all(result, law_n, family, out)
    return out
