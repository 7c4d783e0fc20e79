"""Run a projection scenario: resolve inputs (defaults or measured), project, write the outputs.

Every input carries its provenance ({"value", "source": "default" | "measured", "note"}), so a
reader can tell which numbers came from this harness's measurements.
"""
from __future__ import annotations

import json
import logging
import math
import statistics
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import COST_SOURCES, LAW_SOURCES, LAW_TRANSFERS, ProjectConfig, ProjectorConfig
from harness.projector import gap as G
from harness.projector.fit import FitError, FitResult, Sigmoid, fit_power_law, fit_sigmoid
from harness.projector import inference as I
from harness.projector import uncertainty as U
from harness.projector.laws import CHINCHILLA, CHINCHILLA_UNROUNDED, EPOCH_REFIT, Chinchilla, ComputeLaw, PowerLaw
from harness.io import write_atomic
from harness.results.comparison import baseline_of, baselines, price_of, ratio, speed_ratio, tpot_ms
from harness.results.store import load_records
from harness.results.schema import RunRecord

log = logging.getLogger(__name__)


PUBLISHED = {
    "chinchilla": (CHINCHILLA, "Hoffmann et al. 2022's fit of L(N, D), rounded as published (a=0.34, b=0.28)"),
    "chinchilla-unrounded": (CHINCHILLA_UNROUNDED, "Hoffmann et al. 2022's fit with unrounded E, a, b "
                             "(1.6934, 0.3392, 0.2849; TeX source via Besiroglu et al. 2024)"),
    "epoch": (EPOCH_REFIT, "the Epoch AI refit of L(N, D) (Besiroglu et al. 2024)"),
}


def _input(value: Any, source: str, note: str = "") -> dict[str, Any]:
    return {"value": value, "source": source, "note": note}


@dataclass
class FamilyFit:
    law_n: PowerLaw  # L(N_non_embedding) on the family's fixed D
    fit: FitResult
    tokens: float
    points: list[dict[str, Any]]


@dataclass
class GridLaw:
    """The measured compute-optimal law (approach 3 of `meekbench fit-law`) as the projection uses it."""
    law: ComputeLaw
    draws: list[ComputeLaw]  # one per bootstrap refit, under the same transfer
    flops_range: list[float]
    path: str
    transfer: str
    native: PowerLaw  # E + G C^-exponent on the grid's own loss scale (the tiny family's), whatever the transfer
    native_draws: list[PowerLaw]


def load_grid_law(p: ProjectorConfig) -> GridLaw:
    """The law at ``projector.law.measured_path`` under ``projector.law.transfer``; FitError when absent."""
    path = Path(p.law.measured_path)
    if not path.exists():
        raise FitError(f"no measured compute-optimal law at {path}: run `meekbench build-grid` then "
                       "`meekbench fit-law`")
    fits = json.loads(path.read_text())
    co = fits["approach3"]["compute_optimal"]

    def carried(e: float, g: float, exponent: float) -> ComputeLaw:
        if p.law.transfer == "exponent":
            return ComputeLaw(p.law.L0, p.law.A, exponent)  # A is anchored once FLOP/$ is known (resolve_inputs)
        if p.law.transfer == "full":
            return ComputeLaw(e, g, exponent)
        raise ValueError(f"projector.law.transfer={p.law.transfer!r}; valid: {', '.join(LAW_TRANSFERS)}")

    draws = fits["approach3"]["compute_optimal_draws"]
    return GridLaw(carried(co["E"], co["G"], co["exponent"]), [carried(d["E"], d["G"], d["exponent"]) for d in draws],
                   fits["flops_range"], str(path), p.law.transfer, PowerLaw(co["E"], co["G"], co["exponent"]),
                   [PowerLaw(d["E"], d["G"], d["exponent"]) for d in draws])


@dataclass
class Inputs:
    law: ComputeLaw
    growth: G.Growth
    flop_per_dollar: float
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)
    family: FamilyFit | None = None  # its size law (law_n) serves the variant multipliers only
    grid_law: GridLaw | None = None
    law_draws: list[ComputeLaw] | None = None  # the law's own uncertainty: bootstrap refits or published SEs
    law_draws_label: str = ""
    sigmoid: Sigmoid | None = None
    sigmoid_fit: FitResult | None = None


def _published_draws(base: Chinchilla, errors: dict[str, float], n: int, seed: int) -> list[ComputeLaw]:
    """Compute-optimal laws from a published L(N, D) fit with each parameter drawn from a normal of its
    standard error (draws with a non-positive parameter are drawn again)."""
    unknown = set(errors) - {"E", "A", "B", "a", "b"}
    if unknown or any(not (math.isfinite(v) and v >= 0) for v in errors.values()):
        raise ValueError(f"projector.law.standard_errors={errors}: keys among E, A, B, a, b, values finite and >= 0")
    rng = np.random.default_rng(seed)
    draws: list[ComputeLaw] = []
    while len(draws) < n:
        values = {k: rng.normal(getattr(base, k), errors.get(k, 0.0)) for k in ("E", "A", "B", "a", "b")}
        if min(values.values()) > 0:
            draws.append(Chinchilla(**values).compute_optimal())
    return draws


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


def family_sigmoid(records: list[RunRecord], p: ProjectorConfig) -> tuple[Sigmoid, FitResult, str]:
    """Accuracy on one task against held-out loss, for the points of one family only: losses of
    other families are per token of other tokenizers and texts, not on the same scale."""
    by_task: dict[str, list[tuple[float, float]]] = {}
    others = 0
    for r in records:
        if r.status != "ok" or not r.quality or r.quality.heldout_loss_nats is None:
            continue
        for name, score in r.quality.tasks.items():
            acc = score.metrics.get("acc")
            if acc is None or (p.task is not None and name != p.task):
                continue
            if r.model.family == p.family:
                by_task.setdefault(name, []).append((r.quality.heldout_loss_nats, acc))
            else:
                others += 1
    task = p.task or (max(by_task, key=lambda k: len(by_task[k])) if by_task else None)
    pts = by_task.get(task, []) if task else []
    if len(pts) < 4:
        raise FitError(f"needs >= 4 (loss, accuracy) points of family {p.family!r}"
                       + (f" on {task}" if task else "") + f"; found {len(pts)}"
                       + (f" ({others} points of other families are not pooled: their losses are on other scales)"
                          if others else ""))
    sig, fit = fit_sigmoid([a for a, _ in pts], [b for _, b in pts], resamples=p.bootstrap, seed=p.seed,
                           floor=p.task_chance)
    return sig, fit, f"fitted to {len(pts)} {p.family} points of {task}" + \
        (f", floor at chance {p.task_chance}" if p.task_chance is not None else "")


def resolve_inputs(p: ProjectorConfig, records: list[RunRecord]) -> Inputs:
    growth = G.Growth(p.growth.g_i, p.growth.g_h, p.growth.g_alg)
    prov: dict[str, dict[str, Any]] = {
        name: _input(getattr(growth, name), "default", "paper (Gundlach, Lynch & Thompson 2025)")
        for name in ("g_i", "g_h", "g_alg")
    }
    for name, r in p.uncertainty.items():
        prov[f"{name}.interval"] = _input([r.low, r.high], "default", f"{r.level:.0%} interval, sampled lognormally; "
                                                                      f"{r.source}")
    prov["budget_usd"] = _input(p.budget_usd, "default", "meek actor's fixed budget")
    prov["start_ratio"] = _input(p.start_ratio, "default", p.start_ratio_source)
    family = grid_law = published_draws = None
    if p.law.standard_errors and p.law.source not in PUBLISHED:
        raise ValueError(f"projector.law.standard_errors is for a published L(N, D) fit ({', '.join(PUBLISHED)}); "
                         f"law.source={p.law.source!r} (a measured law's band comes from its bootstrap)")
    if p.law.source == "paper":
        law = ComputeLaw(p.law.L0, p.law.A, p.law.alpha)
        src, note = "default", "paper default L(C) = L0 + A C^-alpha"
    elif p.law.source in PUBLISHED:
        base, label = PUBLISHED[p.law.source]
        law = base.compute_optimal()
        if p.law.standard_errors:
            published_draws = _published_draws(base, dict(p.law.standard_errors), p.monte_carlo, p.seed)
            prov["law.standard_errors"] = _input(dict(p.law.standard_errors), "default",
                                                 f"{p.law.standard_errors_source}; sampled as independent normals "
                                                 "(no covariance used), non-positive draws redrawn")
        src, note = "default", f"compute-optimal form of {label}"
    elif p.law.source == "measured":
        try:  # the family's loss-vs-size law: for variant multipliers, never as L(C)
            family = fit_family(records, p)
            prov["law_n"] = _input(asdict(family.law_n), "measured", f"fitted to {len(family.points)} measured "
                                   f"{p.family} points: the variant multipliers' size law")
        except FitError as e:
            log.warning("family law unavailable: %s", e)
        try:
            grid_law = load_grid_law(p)
            law, src = grid_law.law, "measured"
            note = (f"approach 3 of {grid_law.path} (an IsoFLOP grid), transfer={grid_law.transfer}: "
                    + ("the measured exponent on the paper's L0" if grid_law.transfer == "exponent"
                       else "every measured parameter (corpus- and tokenizer-specific E and G)"))
        except FitError as e:  # the scenario's own law values (the paper's, unless overridden)
            grid_law = None
            law = ComputeLaw(p.law.L0, p.law.A, p.law.alpha)
            src, note = "default", f"fell back to the paper's law (projector.law L0, A, alpha): {e}"
            log.warning("measured compute-optimal law unavailable, fell back to the paper's law: %s", e)
    else:
        raise ValueError(f"projector.law.source={p.law.source!r}; valid: {', '.join(LAW_SOURCES)}")
    for k in ("L0", "A", "alpha"):
        prov[f"law.{k}"] = _input(getattr(law, k), src, note)
    if grid_law is not None:
        fits = json.loads(Path(grid_law.path).read_text())["approach3"]
        prov["law.fit"] = _input(fits["fit"], "measured", "approach 3 (L(N, D) over the grid's runs): degrees of "
                                 "freedom, optimiser convergence and bootstrap resamples")

    flop_per_dollar, fsrc, fnote = p.flop_per_dollar, "default", "H100 989 TFLOP/s bf16, $2/h, 40% utilisation"
    if p.flop_per_dollar_from_hardware:
        probes = [r.hardware.probes.matmul_flops_per_s for r in records if r.hardware.probes]
        # the projector's price, else the points' (projector.prices or hardware.price_per_hour_usd)
        recorded = [price_of(r, p.prices) for r in records if r.hardware.probes]
        recorded = [x for x in recorded if x]
        price = p.price_per_hour_usd or (statistics.median(recorded) if recorded else None)
        if probes and price:
            flop_per_dollar = statistics.median(probes) * p.utilisation * 3600 / price
            labels = sorted({r.hardware.label for r in records if r.hardware.probes})
            fsrc, fnote = "measured", (f"median matmul FLOP/s of {labels} x utilisation {p.utilisation} "
                                       f"(projector.utilisation) at ${price}/h")
        else:
            why = "no hardware probes in the records" if not probes else \
                "no price: set projector.price_per_hour_usd or run points with hardware.price_per_hour_usd"
            fnote = f"default kept ({why}); " + fnote
    prov["flop_per_dollar"] = _input(flop_per_dollar, fsrc, fnote)

    if grid_law is not None and grid_law.transfer == "exponent":
        # the paper's A belongs to the paper's exponent: keep the paper's L0 and its loss at the meek
        # actor's starting compute, and let the measured exponent set the slope from there
        c0, paper = p.budget_usd * flop_per_dollar, ComputeLaw(p.law.L0, p.law.A, p.law.alpha)

        def anchored(m: ComputeLaw) -> ComputeLaw:
            return ComputeLaw(m.L0, (float(paper.loss(c0)) - m.L0) * c0**m.alpha, m.alpha)

        grid_law.law, grid_law.draws = anchored(grid_law.law), [anchored(d) for d in grid_law.draws]
        law = grid_law.law
        for k in ("L0", "A", "alpha"):
            prov[f"law.{k}"] = _input(getattr(law, k), "measured" if k == "alpha" else "default",
                                      note + f"; A rescaled so the loss at the starting compute {c0:.3g} FLOPs is the "
                                      "paper's")
    inputs = Inputs(law=law, growth=growth, flop_per_dollar=flop_per_dollar, provenance=prov,
                    family=family, grid_law=grid_law)
    if grid_law is not None and grid_law.draws:
        inputs.law_draws, inputs.law_draws_label = grid_law.draws, "law (bootstrap refits)"
    elif published_draws:
        inputs.law_draws, inputs.law_draws_label = published_draws, "law (published standard errors)"
    same_scale = family is not None and grid_law is not None and grid_law.transfer == "full"
    if not same_scale:
        why = (f"this scenario's law ({p.law.source}) is on another loss scale" if family is None else
               "the law is on another loss scale than the family's (a measured grid law with law.transfer=full "
               "is on it)")
        prov["sigmoid"] = _input(None, "unavailable", "the sigmoid maps a measured family's held-out loss to "
                                 f"accuracy; {why}")
    else:
        try:
            inputs.sigmoid, inputs.sigmoid_fit, note = family_sigmoid(records, p)
            prov["sigmoid"] = _input(inputs.sigmoid_fit.params, "measured", note)
        except FitError as e:
            prov["sigmoid"] = _input(None, "unavailable", str(e))
    return inputs


def _field(record: RunRecord, block: str, name: str) -> Any:
    """A record's ``block.name``, or None where the record has no such block."""
    return getattr(getattr(record, block), name, None) if getattr(record, block) is not None else None


def _invert(law: PowerLaw, draws: list[PowerLaw], loss: float) -> tuple[float, list[float] | None]:
    """Where ``law`` reaches ``loss``, with a 90% band over its bootstrap ``draws`` (None without
    any); inf where the law never gets there."""
    at = float(law.invert(loss))
    values = np.array([float(d.invert(loss)) for d in draws])
    values = values[np.isfinite(values)]
    return at, [float(np.quantile(values, U.BAND[0])), float(np.quantile(values, U.BAND[1]))] if values.size else None


def _effective_params(loss: float, inputs: Inputs) -> tuple[float, list[float] | None]:  # inputs.family set
    """The family baseline size that reaches ``loss`` on its law, with a band from its refits."""
    return _invert(inputs.family.law_n, [PowerLaw(**d) for d in inputs.family.fit.bootstrap], loss)


def _compute_needed(loss: float, grid_law: GridLaw) -> tuple[float, list[float] | None]:
    """The compute the grid's compute-optimal law needs to reach ``loss`` (on its own scale), with a
    band from its bootstrap refits."""
    return _invert(grid_law.native, grid_law.native_draws, loss)


def _compute_optimal_gains(r: RunRecord, b: RunRecord | None, teacher: float, grid_law: GridLaw) -> dict[str, Any]:
    """Against the measured compute-optimal law: the compute it needs for the point's loss over the
    compute the point's weights cost (6 x total parameters x tokens seen, as the grid counts its
    runs' dominant terms; a KD teacher's forward passes added), with and without the teacher, and
    over the baseline's need (the share of the baseline's effective compute a variant keeps)."""
    need, band = _compute_needed(r.quality.heldout_loss_nats, grid_law)
    spent = 6 * r.model.params * (r.model.train_tokens or 0)
    row: dict[str, Any] = {"optimal_compute_gain": ratio(need, spent + teacher),
                           "optimal_compute_gain_band": [x / (spent + teacher) for x in band]
                           if band and spent + teacher else None}
    if teacher:
        row["optimal_compute_gain_without_teacher"] = ratio(need, spent)
    if b is not None:
        row["optimal_compute_vs_baseline"] = ratio(need, _compute_needed(b.quality.heldout_loss_nats, grid_law)[0])
    return row


def variant_multipliers(records: list[RunRecord], inputs: Inputs, p: ProjectorConfig) -> list[dict[str, Any]]:
    """Each non-baseline point of the fitted family, against the family's law (its fixed-D path):

    - ``multiplier``: effective / actual non-embedding parameters (the baseline size that reaches
      the point's loss), with a band from the law's bootstrap when it has one; and
      ``multiplier_vs_baseline``: over the same model's baseline point's effective size, so the
      law's misfit at that size cancels;
    - ``effective_compute_gain``: the compute the family's path needs to reach that loss (6 N_eff D)
      over the compute the point's weights actually cost, counted the same way (6 N D over every
      token they saw, plus a KD teacher's forward passes); for a student also without the teacher;
    - ``vs_control``: a KD student's effective size over its continue-ce control's (same start,
      tokens and schedule), the distillation gain net of the extra training;
    - ``effective_params_per_byte`` / ``per_tpot_ms``: quantisation's measured bytes and time folded in;
    - with a measured grid law, ``optimal_compute_gain`` (band, without the teacher, vs the baseline):
      the same gain against the compute-optimal law (``_compute_optimal_gains``), whose loss scale is
      the family's own (same tokenizer and held-out text), whatever the projection's transfer.
    """
    if inputs.family is None:
        return []
    tokens = inputs.family.tokens
    base = baselines(records, p.baseline_variant)
    family = [r for r in records if r.status == "ok" and r.model.family == p.family and r.quality
              and r.quality.heldout_loss_nats is not None and r.model.non_embedding_params]
    controls = {(r.model.name, r.hardware.id): r for r in family if r.variant.method == "continue-ce"}
    out = []
    for r in family:
        if r.variant.name == p.baseline_variant:
            continue
        n_eff, band = _effective_params(r.quality.heldout_loss_nats, inputs)
        b = baseline_of(r, base)
        speed = speed_ratio(r, b)
        distil = r.variant.extra.get("distillation") or {}
        # counted as the law counts: non-embedding parameters x all tokens the weights saw, plus,
        # for a KD student, the teacher's forward passes (2 N_teacher D_distil)
        spent = 6 * r.model.non_embedding_params * (r.model.train_tokens or 0)
        teacher = distil["distil_flops"] - 6 * r.model.params * distil["distil_tokens"] if distil else 0
        row = {"model": r.model.name, "variant": r.variant.name, "kind": r.variant.kind,
               "hardware": r.hardware.label, "heldout_loss_nats": r.quality.heldout_loss_nats,
               "non_embedding_params": r.model.non_embedding_params, "effective_params": n_eff,
               "multiplier": n_eff / r.model.non_embedding_params,
               "multiplier_band": [x / r.model.non_embedding_params for x in band] if band else None,
               "effective_compute_gain": ratio(6 * n_eff * tokens, spent + teacher),
               "decode_time_ratio": speed.tpot_ratio if speed else None,
               "decode_time_ratio_kind": speed.kind if speed else None,
               "effective_params_per_byte": ratio(n_eff, _field(r, "memory", "weights_bytes")),
               "effective_params_per_tpot_ms": ratio(n_eff, tpot_ms(r))}
        if b:
            # against the baseline's own effective size: the law's residual at this size cancels
            row |= {"multiplier_vs_baseline": ratio(n_eff, _effective_params(b.quality.heldout_loss_nats, inputs)[0]),
                    "weights_bytes_ratio": ratio(_field(r, "memory", "weights_bytes"), _field(b, "memory", "weights_bytes")),
                    "energy_ratio": ratio(_field(r, "energy", "j_per_token"), _field(b, "energy", "j_per_token"))}
        if distil:
            row |= {"extra_training_flops": distil["distil_flops"],
                    "effective_compute_gain_without_teacher": ratio(6 * n_eff * tokens, spent)}
            control = controls.get((r.model.name, r.hardware.id))
            if distil.get("method") == "kd" and control is not None:
                n_ctrl, _ = _effective_params(control.quality.heldout_loss_nats, inputs)
                row |= {"vs_control": ratio(n_eff, n_ctrl), "control_variant": control.variant.name}
                if inputs.grid_law is not None:
                    row["optimal_compute_vs_control"] = ratio(
                        _compute_needed(r.quality.heldout_loss_nats, inputs.grid_law)[0],
                        _compute_needed(control.quality.heldout_loss_nats, inputs.grid_law)[0])
        if inputs.grid_law is not None:
            row |= _compute_optimal_gains(r, b, teacher, inputs.grid_law)
        out.append(row)
    return out


def _extrapolation(inputs: Inputs, c0: float, p: ProjectorConfig, start_ratio: float) -> dict[str, Any] | None:
    """How far beyond its data a measured law is read: the compute its points span (6 N D) and the
    largest compute the projection evaluates it at (the frontier at the horizon)."""
    if inputs.grid_law is None:
        return None
    spanned = inputs.grid_law.flops_range
    read = float(G.frontier_compute(c0, inputs.growth, p.horizon_years, start_ratio))
    return {"fitted_compute_flops": list(spanned), "read_from_flops": c0, "read_to_flops": read,
            "decades_beyond_data": math.log10(read / max(spanned)), "transfer": inputs.grid_law.transfer}


def _inference(p: ProjectorConfig, inputs: Inputs, records: list[RunRecord], variants: list[dict[str, Any]],
               t: np.ndarray) -> tuple[dict[str, Any], I.InferenceGap]:
    """The inference gap (harness/projector/inference.py): the rate from measured decode costs where
    the records have them, else the assumed FLOP/$; read on the projection's own law."""
    inf = p.inference
    if inf.cost_source not in COST_SOURCES:
        raise ValueError(f"projector.inference.cost_source={inf.cost_source!r}; valid: {', '.join(COST_SOURCES)}")
    multipliers = {(v["model"], v["variant"], v["hardware"]): v.get("multiplier_vs_baseline") for v in variants
                   if v.get("multiplier_vs_baseline")}
    rates = I.decode_rates(records, inf.batch_size, multipliers, p.baseline_variant, p.prices) \
        if inf.cost_source == "measured" else []
    if rates:
        best = rates[0]
        per_usd = best.effective_params_per_usd
        src, note = "measured", (f"read from {best.model} ({best.family}) {best.variant} on {best.hardware} at batch "
                                 f"{best.batch_size}: ${best.usd_per_token:.3g}/token for {best.params:,} parameters "
                                 f"x multiplier {best.multiplier:.3g}, the cheapest of {len(rates)} measured options "
                                 "per effective parameter; cost taken as linear in N from the largest model "
                                 "measured (small models' per-token overhead makes this conservative)"
                                 + (f"; its weights: {best.weights}" if best.weights else ""))
    else:
        per_usd = inputs.flop_per_dollar / inf.flops_per_param
        why = "projector.inference.cost_source=assumed" if inf.cost_source == "assumed" else \
            f"no record has a priced decode cost at batch {inf.batch_size} (run points with " \
            "hardware.price_per_hour_usd)"
        src, note = "default", f"flop_per_dollar / flops_per_param ({inf.flops_per_param}): {why}"
        if inf.cost_source == "measured":
            log.warning("inference gap: %s; using the assumed FLOP/$", why)
    model = I.InferenceGap(inputs.law, per_usd, inf.price_per_token_usd, inf.g_cost, inf.frontier_spend_growth,
                           inf.tokens_per_param)
    out = {"price_per_token_usd": inf.price_per_token_usd, "g_cost": inf.g_cost,
           "effective_params_per_usd": _input(per_usd, src, note),
           "frontier_spend_growth": _input(inf.frontier_spend_growth, "default", inf.frontier_spend_source),
           "tokens_per_param": _input(inf.tokens_per_param, "default", inf.tokens_per_param_source),
           "measured_rates": I.rate_rows(rates), **model.summary(t),
           "note": "loss of the largest model each actor can run at its price per token, as if trained "
                   "compute-optimally, on the projection's law (the training gap's own)"}
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
    mc = U.sample(inputs.law, inputs.growth, ranges, law_draws, n, p.seed, p.inference.g_cost)
    out = U.summarise(mc, c0, t, p.start_ratio, list(p.closing_levels), p.horizon_years,
                      lambda d: replace(inference_gap, law=d.law, g_cost=d.g_cost).gap(t))
    out["sampled"] = sorted(ranges) + ([inputs.law_draws_label] if law_draws else [])
    out["tornado"] = U.tornado(inputs.law, inputs.growth, ranges, alpha_range, p.start_ratio)
    return out


def project(p: ProjectorConfig, records: list[RunRecord]) -> dict[str, Any]:
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
    inference, inference_gap = _inference(p, inputs, records, variants, t)
    unc = _uncertainty(p, inputs, c0, t, inference_gap)
    t_star = G.peak_time_closed_form(inputs.law.alpha, inputs.growth, r0)
    window = max(50.0, p.horizon_years)
    t_star_numerical = G.peak_time_numerical(inputs.law, c0, inputs.growth, horizon=window, start_ratio=r0)

    score = None
    if inputs.sigmoid:
        ms, fs = inputs.sigmoid.score(meek), inputs.sigmoid.score(frontier)
        score = {"meek": ms.tolist(), "frontier": fs.tolist(), "gap": (fs - ms).tolist(),
                 "p_step": {str(k): {"meek": G.p_step_success(np.clip(ms, 0, 1), k).tolist(),
                                     "frontier": G.p_step_success(np.clip(fs, 0, 1), k).tolist()}
                            for k in p.p_steps}}
    return {
        "scenario": p.name,
        "t_star_years": t_star,
        "t_star_numerical_years": t_star_numerical,
        "t_star_note": None if t_star_numerical is not None else
        f"the gap's maximum over [0, {window:g}] years lies at the window's edge: the peak is outside it",
        "t_star_interval": [unc["t_star_years"].get("low"), unc["t_star_years"].get("high")]
        if unc["t_star_years"].get("low") != unc["t_star_years"].get("high") else None,
        "peak_gap_nats": float(G.loss_gap(inputs.law, c0, inputs.growth, max(t_star, 0.0), r0)),
        "closing_years": {str(level): G.closing_time(inputs.law, c0, inputs.growth, level, r0)
                          for level in p.closing_levels},
        "lag_years": G.lag_years(inputs.growth, t, r0).tolist(),
        "reducible_loss_ratio": G.reducible_loss_ratio(inputs.law, inputs.growth, t, r0).tolist(),
        "uncertainty": {k: v for k, v in unc.items() if k not in ("loss_gap_band", "inference_gap_band")},
        "extrapolation": _extrapolation(inputs, c0, p, r0),
        "meek_compute_flops_at_start": c0,
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
        "family_points": inputs.family.points if inputs.family else [],
        "variants": variants,
        "_family": inputs.family,
    }


def _with_band(value: float | None, band: dict[str, Any] | None, unit: str = " y") -> str:
    text = "not within 200 years" if value is None else f"{value:.2f}{unit}"
    if band and "low" in band and band["high"] - band["low"] > 1e-9 * max(1.0, abs(band["high"])):
        text += f" (90% band {band['low']:.2f} to {band['high']:.2f}"
        text += f"; {band['not_reached']} of {band['samples']} draws never reach it)" if band["not_reached"] else ")"
    return text


def headline(result: dict[str, Any]) -> list[str]:
    """The answers a reader asks for first: peak, closing times, lag, and what moves t* most."""
    unc = result["uncertainty"]
    lines = [f"- Peak of the training-loss gap t* = {_with_band(result['t_star_years'], unc['t_star_years'])} "
             f"(numerical: {'%.4f y' % result['t_star_numerical_years'] if result['t_star_numerical_years'] is not None else result['t_star_note']})."]
    for level, years in result["closing_years"].items():
        lines.append(f"- Gap below {level} nats after {_with_band(years, unc['closing_years'][level])}.")
    horizon = result["t"][-1]
    lines.append(f"- Lag of the meek actor at year {horizon:g}: {_with_band(result['lag_years'][-1], unc['lag_years_at_horizon'])} "
                 f"behind the frontier; its reducible loss is {_with_band(result['reducible_loss_ratio'][-1], unc['reducible_loss_ratio_at_horizon'], 'x')} the frontier's.")
    if unc["sampled"]:
        top = unc["tornado"][0] if unc["tornado"] else None
        lines.append(f"- Sampled jointly ({unc['draws']['kept']} of {unc['draws']['attempted']} draws kept): "
                     f"{', '.join(unc['sampled'])}; everything else at its point value."
                     + (f" Moves t* most: {top['input']} ({top['low_value']:.3g} -> t* {top['t_star_at_low']:.2f} y, "
                        f"{top['high_value']:.3g} -> {top['t_star_at_high']:.2f} y)." if top else ""))
    inf = result["inference"]
    band = inf.get("loss_gap_band")
    spread = f" (90% band {band['low'][-1]:.3g} to {band['high'][-1]:.3g})" \
        if band and band["high"][-1] - band["low"][-1] > 1e-12 else ""
    rate = inf["effective_params_per_usd"]
    lines.append(f"- Inference gap at year {horizon:g}: {inf['loss_gap'][-1]:.3g} nats{spread} between "
                 f"the largest models each actor runs at ${inf['price_per_token_usd']:.3g}/token (meek "
                 f"{inf['meek_params'][-1]:.3g} parameters); rate {rate['value']:.3g} effective parameters per "
                 f"$/token ({rate['source']}: {rate['note']}).")
    law_src = result["inputs"].get("law.alpha", {})
    lines.append(f"- Law: alpha = {law_src.get('value', float('nan')):.4f} ({law_src.get('source')}): "
                 f"{law_src.get('note', '')}.")
    if result.get("extrapolation"):
        e = result["extrapolation"]
        lines.append(f"- Extrapolation: the measured law spans {e['fitted_compute_flops'][0]:.2g} to "
                     f"{e['fitted_compute_flops'][1]:.2g} FLOPs and is read from {e['read_from_flops']:.2g} to "
                     f"{e['read_to_flops']:.2g}: {e['decades_beyond_data']:.1f} decades beyond its data "
                     f"(transfer: {e['transfer']}).")
        top = unc["tornado"][0] if unc["tornado"] else None
        if top and top["input"] == "law.alpha":
            decades = math.log10(e["fitted_compute_flops"][1] / e["fitted_compute_flops"][0])
            lines.append(f"- Why t*'s band is this wide: the grid's {decades:.2f} decades of FLOPs pin the "
                         f"compute exponent only to {top['low_value']:.3g}-{top['high_value']:.3g} (90%), and t* "
                         f"scales as 1/alpha; a grid over more decades narrows it.")
    if not unc["sampled"]:
        lines.append("- No input is sampled in this scenario (point values throughout); see projector=paper-uncertain."
                     + (f" The law's {result['inputs']['law.fit']['value']['bootstrap_note']}."
                        if result["inputs"].get("law.fit", {}).get("value", {}).get("bootstrap_note") else ""))
    return lines


def markdown_table(result: dict[str, Any], steps_per_year: int) -> str:
    lines = [f"# Projection: {result['scenario']}", "", *headline(result), "",
             "| year | frontier loss | meek loss | gap (nats) | lag (years) | tokens to tell apart |",
             "|---|---|---|---|---|---|"]
    for i in range(0, len(result["years"]), steps_per_year):
        w = result["wald_tokens"][i]
        lines.append(f"| {result['years'][i]:.0f} | {result['frontier_loss'][i]:.4f} | {result['meek_loss'][i]:.4f} "
                     f"| {result['loss_gap'][i]:.4f} | {result['lag_years'][i]:.2f} | {'inf' if w is None else f'{w:.3g}'} |")
    rates = result["inference"]["measured_rates"]
    if rates:
        lines += ["", "## Measured decode cost per effective parameter (the inference gap's rate)", "",
                  "| hardware | variant | model | family | params | batch | $/token | multiplier | effective params per $/token |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['hardware']} | {r['variant']} | {r['model']} | {r['family']} | {r['params']} | {r['batch_size']} | "
                  f"{r['usd_per_token']:.3g} | {r['multiplier']:.3g} | {r['effective_params_per_usd']:.3g} |"
                  for r in rates]
    lines += ["", "## Inputs", "", "| input | value | source | note |", "|---|---|---|---|"]
    for k, v in result["inputs"].items():
        val = v["value"]
        val = f"{val:.4g}" if isinstance(val, float) else json.dumps(val, default=str)[:80]
        lines.append(f"| {k} | {val} | {v['source']} | {v['note']} |")
    if result["variants"]:
        lines += ["", "## Variants of the fitted family against its law", "",
                  "multiplier: effective / actual non-embedding parameters; vs baseline: over the same model's "
                  "baseline point's effective size; compute gain: compute the family's "
                  "path needs for that loss / compute the weights cost (distillation included); vs control: "
                  "a KD student's effective size over its continue-ce control's. Optimal: the compute the "
                  "measured compute-optimal law needs for that loss over the compute spent (90% band from its "
                  "bootstrap), and over what it needs for the baseline's loss.", "",
                  "| model | variant | hardware | loss | multiplier | vs baseline | compute gain | optimal gain "
                  "[90%] | optimal vs baseline | vs control | weights ratio | TPOT ratio |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for v in result["variants"]:
            f = lambda x: "-" if x is None else f"{x:.3g}"  # noqa: E731
            band = v.get("optimal_compute_gain_band")
            lines.append(f"| {v['model']} | {v['variant']} | {v['hardware']} | {v['heldout_loss_nats']:.4f} | "
                         f"{f(v['multiplier'])} | {f(v.get('multiplier_vs_baseline'))} | "
                         f"{f(v.get('effective_compute_gain'))} | {f(v.get('optimal_compute_gain'))}"
                         f"{f' [{band[0]:.3g}, {band[1]:.3g}]' if band else ''} | "
                         f"{f(v.get('optimal_compute_vs_baseline'))} | {f(v.get('vs_control'))} | "
                         f"{f(v.get('weights_bytes_ratio'))} | {f(v.get('decode_time_ratio'))} "
                         f"{(v.get('decode_time_ratio_kind') or '')[:1]} |")
    return "\n".join(lines) + "\n"


def write_projection(cfg: ProjectConfig) -> Path:
    from harness.projector.plots import plot_all

    records = load_records(list(cfg.results_dirs)).records
    result = project(cfg.projector, records)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    family = result.pop("_family")
    write_atomic(out / "projection.json", json.dumps(result, indent=1))
    (out / "projection.md").write_text(markdown_table(result, cfg.projector.steps_per_year))
    plot_all(result, family, out)
    return out
