"""The measured family's own fits: its loss-vs-size law at one token budget (the variant multipliers' size
law, never a compute law) and its loss-to-accuracy sigmoid, each on the family's design points."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from harness.config import ProjectorConfig
from harness.projector.fit import FitError, FitResult, Sigmoid, fit_power_law, fit_sigmoid
from harness.projector.laws import PowerLaw
from harness.results.schema import RunRecord, is_baseline


@dataclass
class FamilyFit:
    law_n: PowerLaw  # L(N_non_embedding) on the family's fixed D
    fit: FitResult
    tokens: float
    points: list[dict[str, Any]]


def fit_family(records: list[RunRecord], p: ProjectorConfig) -> FamilyFit:
    base = [r for r in records if r.status == "ok" and r.model.family == p.family
            and is_baseline(r, p.baseline_variant) and r.quality and r.quality.heldout_loss_nats
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
                               [q["heldout_loss_nats"] for q in points], resamples=p.bootstrap, seed=p.seed,
                               force=p.force_fits)
    return FamilyFit(law_n, fit, float(tokens.pop()), points)


def family_sigmoid(records: list[RunRecord], p: ProjectorConfig) -> tuple[Sigmoid, FitResult, str]:
    """Accuracy on one task against held-out loss, for the points of one family only: losses of
    other families are per token of other tokenizers and texts, not on the same scale. One point
    per model and variant (the median over the machines it ran on), and a model with its variants one
    design unit: a model measured on several machines, or quantised four ways within 0.006 nats of
    its baseline, is one point of the curve, not several, in the 2x rule, the degrees of freedom and
    the bootstrap (which resamples models)."""
    by_task: dict[str, dict[tuple[str, str], list[tuple[float, float]]]] = {}
    others = 0
    for r in records:
        if r.status != "ok" or not r.quality or r.quality.heldout_loss_nats is None:
            continue
        for name, score in r.quality.tasks.items():
            acc = score.metrics.get("acc")
            if acc is None or (p.task is not None and name != p.task):
                continue
            if r.model.family == p.family:
                by_task.setdefault(name, {}).setdefault((r.model.name, r.variant.name), []).append(
                    (r.quality.heldout_loss_nats, acc))
            else:
                others += 1
    task = p.task or (max(by_task, key=lambda k: len(by_task[k])) if by_task else None)
    chosen = by_task.get(task, {}) if task else {}
    pts = [(statistics.median(x for x, _ in v), statistics.median(y for _, y in v)) for v in chosen.values()]
    models = [model for model, _ in chosen]  # a model and its variants: one design unit
    others_note = f" ({others} points of other families are not pooled: their losses are on other scales)" \
        if others else ""
    try:
        sig, fit = fit_sigmoid([a for a, _ in pts], [b for _, b in pts], resamples=p.bootstrap, seed=p.seed,
                               floor=p.task_chance, force=p.force_fits, clusters=models)
    except FitError as e:
        raise FitError(f"{e}: (loss, accuracy) points of family {p.family!r}" + (f" on {task}" if task else "")
                       + others_note) from None
    return sig, fit, f"fitted to {len(pts)} {p.family} points ({len(set(models))} models) of {task}" + \
        (f", floor at chance {p.task_chance}" if p.task_chance is not None else "")
