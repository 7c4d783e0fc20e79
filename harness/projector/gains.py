"""What each measured variant gains, read off the measured laws: the family baseline size that
reaches its loss (effective parameters), the compute the compute-optimal law needs for it, and
the comparison with a distilled student's control.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from harness.config import ProjectorConfig
from harness.projector import uncertainty as U
from harness.projector.fit import quantile_ends
from harness.projector.inputs import GridLaw, Inputs
from harness.projector.laws import PowerLaw
from harness.results.comparison import baseline_of, baselines, ratio, speed_ratio, tpot_ms
from harness.results.schema import RunRecord, is_baseline, variant_label


def _field(record: RunRecord, block: str, name: str) -> Any:
    """A record's ``block.name``, or None where the record has no such block."""
    return getattr(getattr(record, block), name, None) if getattr(record, block) is not None else None


def _invert(law: PowerLaw, draws: list[PowerLaw], loss: float) -> tuple[float, list[float | None] | None, int]:
    """Where ``law`` reaches ``loss`` (inf where it never gets there), with a 90% band over its
    bootstrap ``draws`` (None without any) and how many draws never reach it: those count, at
    infinity, so an end they cover is None (unbounded) rather than dropped from the quantiles."""
    at = float(law.invert(loss))
    values = np.array([float(d.invert(loss)) for d in draws])
    if not values.size:
        return at, None, 0
    ends = quantile_ends(values, U.BAND[1] - U.BAND[0])
    return at, [x if np.isfinite(x) else None for x in ends], int((~np.isfinite(values)).sum())


def _scaled(band: list[float | None] | None, by: float) -> list[float | None] | None:
    return [None if x is None else x / by for x in band] if band and by else None


def _effective_params(loss: float, inputs: Inputs) -> tuple[float, list[float | None] | None, int]:  # family set
    """The family baseline size that reaches ``loss`` on its law, with a band from its refits."""
    return _invert(inputs.family.law_n, [PowerLaw(**d) for d in inputs.family.fit.bootstrap], loss)


def _compute_needed(loss: float, grid_law: GridLaw) -> tuple[float, list[float | None] | None, int]:
    """The compute the grid's compute-optimal law needs to reach ``loss`` (on its own scale), with a
    band from its bootstrap refits."""
    return _invert(grid_law.native, grid_law.native_draws, loss)


def _compute_optimal_gains(r: RunRecord, b: RunRecord | None, teacher: float, grid_law: GridLaw) -> dict[str, Any]:
    """Against the measured compute-optimal law: the compute it needs for the point's loss over the
    compute the point's weights cost (6 x total parameters x tokens seen, as the grid counts its
    runs' dominant terms; a KD teacher's forward passes added), with and without the teacher, and
    over the baseline's need (the share of the baseline's effective compute a variant keeps)."""
    need, band, unreached = _compute_needed(r.quality.heldout_loss_nats, grid_law)
    spent = 6 * r.model.params * (r.model.train_tokens or 0)
    row: dict[str, Any] = {"optimal_compute_gain": ratio(need, spent + teacher),
                           "optimal_compute_gain_band": _scaled(band, spent + teacher),
                           "optimal_compute_gain_draws_unreached": unreached}
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
    if inputs.family is None and inputs.grid_law is None:
        return []
    base = baselines(records, p.baseline_variant)
    family = [r for r in records if r.status == "ok" and r.model.family == p.family and r.quality
              and r.quality.heldout_loss_nats is not None and r.model.non_embedding_params]
    controls = {(r.model.name, r.hardware.id): r for r in family if r.variant.method == "continue-ce"}
    out = []
    for r in family:
        if is_baseline(r, p.baseline_variant):
            continue
        b = baseline_of(r, base)
        speed = speed_ratio(r, b)
        distil = r.variant.extra.get("distillation") or {}
        # a KD student's teacher forward passes, 2 N_teacher D_distil, in total parameters (the grid's count)
        teacher = distil["distil_flops"] - 6 * r.model.params * distil["distil_tokens"] if distil else 0
        control = controls.get((r.model.name, r.hardware.id)) if distil.get("method") == "kd" else None
        row = {"model": r.model.name, "variant": variant_label(r), "kind": r.variant.kind,
               "hardware": r.hardware.label, "heldout_loss_nats": r.quality.heldout_loss_nats,
               "non_embedding_params": r.model.non_embedding_params,
               "decode_time_ratio": speed.tpot_ratio if speed else None,
               "decode_time_ratio_kind": speed.kind if speed else None}
        if b:
            row |= {"weights_bytes_ratio": ratio(_field(r, "memory", "weights_bytes"), _field(b, "memory", "weights_bytes")),
                    "energy_ratio": ratio(_field(r, "energy", "j_per_token"), _field(b, "energy", "j_per_token"))}
        if distil:
            row["extra_training_flops"] = distil["distil_flops"]
        if inputs.family is not None:  # the family's size law: refused below the 2x rule unless forced
            row |= _family_gains(r, b, distil, control, inputs)
        if inputs.grid_law is not None:
            row |= _compute_optimal_gains(r, b, teacher, inputs.grid_law)
            if control is not None:
                row["optimal_compute_vs_control"] = ratio(
                    _compute_needed(r.quality.heldout_loss_nats, inputs.grid_law)[0],
                    _compute_needed(control.quality.heldout_loss_nats, inputs.grid_law)[0])
        out.append(row)
    return out


def _teacher_non_embedding_flops(distil: dict[str, Any]) -> float | None:
    """A KD teacher's forward passes counted as the family law counts: 2 x its non-embedding
    parameters x the distillation tokens (0 without a teacher; None when the card predates the count)."""
    if distil.get("method") != "kd":
        return 0.0
    n = distil.get("teacher_non_embedding_params")
    return 2.0 * n * distil["distil_tokens"] if n else None


def _family_gains(r: RunRecord, b: RunRecord | None, distil: dict[str, Any], control: RunRecord | None,
                  inputs: Inputs) -> dict[str, Any]:
    """The point against the family's size law (inputs.family set): effective parameters, the
    multiplier with its band, the effective compute gain, and over the baseline and the control.
    Compute is counted as the law counts parameters, non-embedding, the student's and the teacher's."""
    tokens = inputs.family.tokens
    n_eff, band, unreached = _effective_params(r.quality.heldout_loss_nats, inputs)
    spent = 6 * r.model.non_embedding_params * (r.model.train_tokens or 0)
    teacher = _teacher_non_embedding_flops(distil)
    row = {"effective_params": n_eff, "multiplier": n_eff / r.model.non_embedding_params,
           "multiplier_band": _scaled(band, r.model.non_embedding_params), "multiplier_draws_unreached": unreached,
           "effective_compute_gain": ratio(6 * n_eff * tokens, spent + teacher) if teacher is not None else None,
           "effective_params_per_byte": ratio(n_eff, _field(r, "memory", "weights_bytes")),
           "effective_params_per_tpot_ms": ratio(n_eff, tpot_ms(r))}
    if b:  # against the baseline's own effective size: the law's residual at this size cancels
        row["multiplier_vs_baseline"] = ratio(n_eff, _effective_params(b.quality.heldout_loss_nats, inputs)[0])
    if distil.get("method") == "kd":
        row["effective_compute_gain_without_teacher"] = ratio(6 * n_eff * tokens, spent)
    if control is not None:
        n_ctrl = _effective_params(control.quality.heldout_loss_nats, inputs)[0]
        row |= {"vs_control": ratio(n_eff, n_ctrl), "control_variant": control.variant.name}
    return row
