"""Run a projection scenario: resolve its inputs (projector/inputs.py), project the gaps with
their bands, read the variants' gains (projector/gains.py), write projection.json, projection.md
(projector/markdown.py) and the plots.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import COST_SOURCES, ProjectConfig, ProjectorConfig
from harness.io import write_atomic
from harness.projector import gap as G
from harness.projector import inference as I
from harness.projector import uncertainty as U
from harness.projector.gains import variant_multipliers
from harness.projector.inputs import Inputs, resolve_inputs, sourced
from harness.projector.markdown import markdown_table
from harness.results.schema import RunRecord, ServingRecord
from harness.results.comparison import Judging
from harness.results.store import load_records, load_serving_records

log = logging.getLogger(__name__)


def _extrapolation(inputs: Inputs, c0: float, reads: dict[str, float | None]) -> dict[str, Any]:
    """How far beyond its data the law is read: for each number read off it (t*, each closing
    time, the horizon, the inference gap), the largest compute at which it is read (the frontier's),
    and how many decades that is beyond the compute the law's own runs span (None where the law
    gives no data range, as the paper's)."""
    span = inputs.data_flops

    def beyond(flops: float | None) -> float | None:
        return math.log10(flops / span[1]) if span and flops else None

    out = {"fitted_compute_flops": list(span) if span else None, "data": inputs.data_source or
           "not known: the scenario's law comes without the runs it was fitted to", "read_from_flops": c0,
           "reads": {k: {"flops": v, "decades_beyond_data": beyond(v)} for k, v in reads.items()},
           "transfer": inputs.grid_law.transfer if inputs.grid_law else None}
    read_to = max(v for v in reads.values() if v is not None)
    return out | {"read_to_flops": read_to, "decades_beyond_data": beyond(read_to)}


def _reads(inputs: Inputs, c0: float, r0: float, t_star: float, closing: dict[str, float | None], horizon: float,
           inference: dict[str, Any]) -> dict[str, float | None]:
    """The frontier's compute where each number is read off the law (the meek actor's is less)."""
    def frontier(t: float | None) -> float | None:  # None: not read, or beyond float range
        if t is None:
            return None
        with np.errstate(over="ignore"):
            flops = float(G.frontier_compute(c0, inputs.growth, max(t, 0.0), r0))
        return flops if math.isfinite(flops) else None

    return {"t_star": frontier(t_star), **{f"closing_{k}_nats": frontier(v) for k, v in closing.items()},
            "horizon": frontier(horizon), "inference_gap_at_horizon": inference["frontier_training_flops"][-1]}


def _bandwidth_rate(inf) -> float:
    """Parameters one dollar runs for one token when every weight is read once per token at peak bandwidth."""
    return inf.memory_bandwidth_bytes_per_s * 3600 / (inf.bytes_per_param * inf.gpu_price_per_hour_usd)


def _assumed_rate(inf, flop_per_dollar: float) -> tuple[float, str, str]:
    """Effective parameters one dollar runs for one token, assumed: bandwidth-bound decode (every
    weight read once per token at batch 1) or compute-bound (the training FLOP/$)."""
    if inf.assumed_rate == "bandwidth":
        return _bandwidth_rate(inf), "default", (
            f"bandwidth-bound decode: {inf.memory_bandwidth_bytes_per_s:.3g} B/s ({inf.memory_bandwidth_source}) / "
            f"{inf.bytes_per_param:g} bytes per parameter at ${inf.gpu_price_per_hour_usd:g}/h, at peak bandwidth "
            "and batch 1: cheaper than batch 1 achieves (decode reads below peak bandwidth), dearer than batched "
            "serving (a batch reads the weights once for all its tokens); bracketed by both (rate_bounds); "
            "inference.cost_source=measured with measured_point=serving measures a served rate")
    return _compute_rate(inf, flop_per_dollar), "default", \
        f"compute-bound decode: flop_per_dollar / flops_per_param ({inf.flops_per_param})"


def _compute_rate(inf, flop_per_dollar: float) -> float:
    """Parameters one dollar runs for one token when decode is compute-bound at the training FLOP/$."""
    return flop_per_dollar / inf.flops_per_param


def _rate_bounds(model: I.InferenceGap, inf, flop_per_dollar: float, t: np.ndarray) -> dict[str, Any]:
    """The assumed rate's two physical limits and the inference gap at each: a bracket, not a band
    (nothing says how likely either end is); the gap falls as the rate rises, so the ends bound it."""
    ends = {"dear": (_bandwidth_rate(inf) * inf.batch1_bandwidth_share,
                     f"batch-1 decode at {inf.batch1_bandwidth_share:.0%} of peak bandwidth "
                     f"({inf.batch1_bandwidth_share_source})"),
            "cheap": (_compute_rate(inf, flop_per_dollar),
                      f"compute-bound serving: batches large enough that every FLOP bought at the training "
                      f"FLOP/$ goes to tokens, flop_per_dollar / flops_per_param ({inf.flops_per_param:g})")}
    return {k: {"effective_params_per_usd": rate, "note": note,
                "loss_gap": replace(model, params_per_usd=rate).gap(t).tolist()} for k, (rate, note) in ends.items()}


def _tokens_per_param(model: I.InferenceGap, t: np.ndarray, inf, allocation_draws: list | None) -> dict[str, Any]:
    """D/N of the runnable models: the law's own (varying with N; sampled with the law's draws
    where they carry their allocation) or the fixed one."""
    if model.allocation is None:
        return sourced(inf.tokens_per_param, "default", inf.tokens_per_param_source)
    sizes = (model.meek_params(t[0]), model.frontier_params(t[-1]))
    ratio = [float(model.training_compute(n) / (6 * n * n)) for n in sizes]
    note = (f"the law's own compute-optimal allocation: D/N = {ratio[0]:.3g} for the meek actor's model at t = 0, "
            f"{ratio[1]:.3g} for the frontier's at the horizon (point values)")
    if allocation_draws:
        at_start = [float(replace(model, allocation=a).training_compute(sizes[0]) / (6 * sizes[0] ** 2))
                    for a in allocation_draws]
        lo, hi = np.quantile(at_start, U.BAND)
        note += (f"; sampled with the law's draws, each draw its own allocation (at t = 0, D/N {lo:.3g} to {hi:.3g}, "
                 f"5-95% of {len(at_start)} draws)")
    else:
        note += "; not sampled: the law's draws carry no allocation of their own"
    return sourced(ratio[0], "default", note)


def _inference(p: ProjectorConfig, inputs: Inputs, records: list[RunRecord], variants: list[dict[str, Any]],
               t: np.ndarray, serving: list[ServingRecord]) -> tuple[dict[str, Any], I.InferenceGap]:
    """The inference gap (harness/projector/inference.py): the rate from measured decode costs where
    the records have them, else the assumed FLOP/$; read on the projection's own law."""
    inf = p.inference
    if inf.cost_source not in COST_SOURCES:
        raise ValueError(f"projector.inference.cost_source={inf.cost_source!r}; valid: {', '.join(COST_SOURCES)}")
    multipliers = {(v["model"], v["variant"], v["hardware"]): v.get("multiplier_vs_baseline") for v in variants
                   if v.get("multiplier_vs_baseline")}
    rates = []
    if inf.cost_source == "measured" and inf.measured_point == "serving":
        judging = Judging(p.baseline_variant, prices=p.prices, slo_ttft_ms=inf.slo.ttft_ms,
                          slo_tpot_ms=inf.slo.tpot_ms, slo_percentile=inf.slo.percentile)
        rates = I.serving_rates(serving, multipliers, p.baseline_variant, judging)
    elif inf.cost_source == "measured":
        rates = I.decode_rates(records, inf.batch_size, multipliers, p.baseline_variant, p.prices)
    if rates:
        best = rates[0]
        per_usd = best.effective_params_per_usd
        at = f"batch {best.batch_size}" if inf.measured_point == "single" else f"the {best.measured_at}"
        src, note = "measured", (f"read from {best.model} ({best.family}) {best.variant} on {best.hardware} at "
                                 f"{at}: ${best.usd_per_token:.3g}/token for {best.params:,} parameters "
                                 f"x multiplier {best.multiplier:.3g}, the cheapest of {len(rates)} measured options "
                                 "per effective parameter; cost taken as linear in N from the largest model "
                                 "measured (small models' per-token overhead makes this conservative)"
                                 + (f"; its weights: {best.weights}" if best.weights else ""))
    else:
        why = "projector.inference.cost_source=assumed" if inf.cost_source == "assumed" else \
            f"no record has a priced decode cost at batch {inf.batch_size} (run points with " \
            "hardware.price_per_hour_usd)" if inf.measured_point == "single" else \
            "no priced serving curve has a level meeting projector.inference.slo (with a variant multiplier)"
        per_usd, src, note = _assumed_rate(inf, inputs.flop_per_dollar)
        note += f": {why}"
        if inf.cost_source == "measured":
            log.warning("inference gap: %s; using the assumed rate", why)
    spend = inf.frontier_spend_growth or inputs.growth.g_i
    allocation = inputs.allocation if inf.tokens_per_param_from_law else None
    model = I.InferenceGap(inputs.law, per_usd, inf.price_per_token_usd, inf.g_cost, spend, inf.tokens_per_param,
                           allocation)
    out = {"price_per_token_usd": inf.price_per_token_usd, "g_cost": inf.g_cost, "g_cost_source": inf.g_cost_source,
           "effective_params_per_usd": sourced(per_usd, src, note),
           "frontier_spend_growth": sourced(spend, "default", inf.frontier_spend_source + (
               "" if inf.frontier_spend_growth else "; each draw's g_i where g_i is sampled")),
           "tokens_per_param": _tokens_per_param(model, t, inf, inputs.allocation_draws),
           "measured_rates": I.rate_rows(rates), **model.summary(t),
           "note": "loss of the largest model each actor can run at its price per token, as if trained "
                   "compute-optimally, on the projection's law (the training gap's own)"}
    if rates:  # how far the cost, linear in N, is carried beyond the largest model measured
        read_to = out["frontier_params"][-1]
        out["rate_extrapolation"] = {"measured_params": rates[0].params, "read_to_params": read_to,
                                     "decades_beyond": math.log10(read_to / rates[0].params)}
    else:
        out["rate_bounds"] = _rate_bounds(model, inf, inputs.flop_per_dollar, t)
    return out, model


def _uncertainty(p: ProjectorConfig, inputs: Inputs, c0: float, t: np.ndarray,
                 inference_gap: I.InferenceGap) -> dict[str, Any]:
    """Monte Carlo bands and the tornado of t*: sampled growth rates and inference price decline
    (configured intervals) and the law's draws (a measured law's bootstrap refits, or a published
    fit's standard errors); every other input at its point value."""
    ranges = {name: U.Range(r.low, r.high, r.level, r.source) for name, r in p.uncertainty.items()}
    law_draws, alpha_range = inputs.law_draws, None
    if law_draws:
        alphas = [d.alpha for d in law_draws]
        alpha_range = (float(np.quantile(alphas, U.BAND[0])), float(np.quantile(alphas, U.BAND[1])))
    n = p.monte_carlo if ranges or law_draws else 1  # nothing uncertain: one draw is every draw
    mc = U.sample(inputs.law, inputs.growth, ranges, law_draws, n, p.seed, p.inference.g_cost,
                  inputs.allocation_draws if inference_gap.allocation is not None else None)
    out = U.summarise(mc, c0, t, p.start_ratio, list(p.closing_levels), p.horizon_years,
                      lambda d: replace(inference_gap, law=d.law, g_cost=d.g_cost, frontier_spend_growth=(
                          p.inference.frontier_spend_growth or d.growth.g_i),
                          allocation=d.allocation or inference_gap.allocation).gap(t))
    out["sampled"] = sorted(ranges) + ([inputs.law_draws_label] if law_draws else [])
    out["tornado"] = U.tornado(inputs.law, inputs.growth, ranges, alpha_range, p.start_ratio)
    return out


def _sigmoid_reach(fitted: tuple[float, float], meek: np.ndarray, frontier: np.ndarray) -> dict[str, Any]:
    """How far beyond the losses it was fitted on the loss-to-score sigmoid is read: the projection's
    losses fall below the family's best measured one, where the curve is its floor-and-ceiling form,
    not a measurement."""
    read = (float(min(meek.min(), frontier.min())), float(max(meek.max(), frontier.max())))
    return {"fitted_loss_nats": list(fitted), "read_loss_nats": list(read),
            "nats_below_fitted": max(fitted[0] - read[0], 0.0), "nats_above_fitted": max(read[1] - fitted[1], 0.0)}


def _fit_warnings(inputs: Inputs) -> list[str]:
    """What the fits the projection reads say about themselves: forced below the 2x rule, or refused."""
    out = [f"{what}: {fit.warning}" for what, fit in (("family size law", inputs.family and inputs.family.fit),
                                                        ("loss-to-score sigmoid", inputs.sigmoid_fit))
           if fit and fit.warning]
    refused = inputs.provenance.get("law_n", {})
    if refused.get("source") == "unavailable":
        out.append(f"refused: {refused['note']}" + (" (projector.force_fits=true)" if "forcing it" in refused["note"]
                                                    else ""))
    return out


def _meek_actor(p: ProjectorConfig, inputs: Inputs, c0: float) -> dict[str, Any]:
    """The one scenario every number of the projection reads, with the source of each factor."""
    fpd = inputs.provenance["flop_per_dollar"]
    return {"budget_usd": p.budget_usd, "budget_source": p.budget_source, "flop_per_dollar": inputs.flop_per_dollar,
            "flop_per_dollar_source": fpd["source"], "flop_per_dollar_note": fpd["note"], "c0_flops": c0}


def project(p: ProjectorConfig, records: list[RunRecord], serving: list[ServingRecord] | None = None) -> dict[str, Any]:
    if p.horizon_years <= 0 or p.steps_per_year < 1:
        raise ValueError(f"horizon_years={p.horizon_years}, steps_per_year={p.steps_per_year}: both must be positive")
    if p.budget_usd <= 0:
        raise ValueError(f"budget_usd={p.budget_usd}: must be > 0")
    inputs = resolve_inputs(p, records)
    c0 = p.budget_usd * inputs.flop_per_dollar
    r0 = p.start_ratio
    t = np.linspace(0.0, p.horizon_years, int(round(p.horizon_years * p.steps_per_year)) + 1)
    frontier = inputs.law.loss(G.frontier_compute(c0, inputs.growth, t, r0))
    meek = inputs.law.loss(G.meek_compute(c0, inputs.growth, t))
    gap = meek - frontier
    variants = variant_multipliers(records, inputs, p)
    inference, inference_gap = _inference(p, inputs, records, variants, t, serving or [])
    unc = _uncertainty(p, inputs, c0, t, inference_gap)
    t_star = G.peak_time_closed_form(inputs.law.alpha, inputs.growth, r0)
    closing = {str(level): G.closing_time(inputs.law, c0, inputs.growth, level, r0) for level in p.closing_levels}
    window = max(50.0, p.horizon_years)
    t_star_numerical = G.peak_time_numerical(inputs.law, c0, inputs.growth, horizon=window, start_ratio=r0)

    score = None
    if inputs.sigmoid:
        ms, fs = inputs.sigmoid.score(meek), inputs.sigmoid.score(frontier)
        score = {"meek": ms.tolist(), "frontier": fs.tolist(), "gap": (fs - ms).tolist(),
                 "p_step": {str(k): {"meek": G.p_step_success(np.clip(ms, 0, 1), k).tolist(),
                                     "frontier": G.p_step_success(np.clip(fs, 0, 1), k).tolist()}
                            for k in p.p_steps},
                 "extrapolation": _sigmoid_reach(inputs.sigmoid_fit.x_range, meek, frontier)}
    return {
        "scenario": p.name,
        "t_star_years": t_star,
        "t_star_numerical_years": t_star_numerical,
        "t_star_note": None if t_star_numerical is not None else
        f"the gap's maximum over [0, {window:g}] years lies at the window's edge: the peak is outside it",
        "t_star_interval": [unc["t_star_years"].get("low"), unc["t_star_years"].get("high")]
        if unc["t_star_years"].get("low") != unc["t_star_years"].get("high") else None,
        "peak_gap_nats": float(G.loss_gap(inputs.law, c0, inputs.growth, max(t_star, 0.0), r0)),
        "closing_years": closing,
        "lag_years": G.lag_years(inputs.growth, t, r0).tolist(),
        "reducible_loss_ratio": G.reducible_loss_ratio(inputs.law, inputs.growth, t, r0).tolist(),
        "uncertainty": {k: v for k, v in unc.items() if k not in ("loss_gap_band", "inference_gap_band")},
        "extrapolation": _extrapolation(inputs, c0, _reads(inputs, c0, r0, t_star, closing, p.horizon_years,
                                                              inference)),
        "meek_compute_flops_at_start": c0,
        "meek_actor": _meek_actor(p, inputs, c0),
        "t": t.tolist(),
        "years": (p.start_year + t).tolist(),
        "frontier_loss": frontier.tolist(),
        "meek_loss": meek.tolist(),
        "loss_gap": gap.tolist(),
        "loss_gap_band": unc["loss_gap_band"] if unc["sampled"] else None,
        "wald_tokens": [x if math.isfinite(x) else None for x in G.wald_tokens(gap, p.error_rate).tolist()],
        "wald_error_rate": p.error_rate,
        "inference": inference | {"loss_gap_band": unc["inference_gap_band"] if unc["sampled"] else None},
        "score": score,
        "inputs": inputs.provenance,
        "fit_warnings": _fit_warnings(inputs),
        "law_regime": inputs.grid_law.regime if inputs.grid_law else None,
        "family_points": inputs.family.points if inputs.family else [],
        "variants": variants,
        "_family": inputs.family,
    }


def write_projection(cfg: ProjectConfig) -> Path:
    from harness.projector.plots import plot_all

    records = load_records(list(cfg.results_dirs)).records
    serving = load_serving_records(list(cfg.results_dirs))[0] if cfg.projector.inference.measured_point == "serving" \
        else []
    result = project(cfg.projector, records, serving)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    family = result.pop("_family")
    write_atomic(out / "projection.json", json.dumps(result, indent=1))
    (out / "projection.md").write_text(markdown_table(result, cfg.projector.steps_per_year))
    plot_all(result, family, out)
    return out
