"""A point judged against its baseline: the record's ``comparison`` block.

- Tasks, paired on the items both points logged: the accuracy difference with a paired
  bootstrap interval over items, McNemar's exact test on the discordant items (the flips), and
  accuracy retention (variant / baseline) with its interval and gates.
- Loss retention and its gates from the held-out fidelity pass (measured in the point).
- Cost: decode tokens per second at every measured shape, dollars and joules per million
  generated tokens, weights bytes per parameter, and a distilled student's extra training.

A gate passes when the whole interval is at or above it, fails when the whole interval is
below it, and is undecided when the interval straddles it (MLPerf Inference's 99% and 99.9%
classes by default). Holm's correction needs the family of comparisons, so the report applies
it across the variants it shows; the block keeps the unadjusted p-values.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np
from scipy.stats import binomtest

from harness.results import schema as S

ACCURACY_METRICS = ("acc", "exact_match")  # per-item 0/1 metrics lm-eval logs, first found wins


def gate(low: float, high: float, threshold: float) -> S.Gate:
    if low >= threshold:
        return "pass"
    if high < threshold:
        return "fail"
    return "undecided"


def gates(low: float | None, high: float | None, thresholds: list[float]) -> dict[str, S.Gate]:
    if low is None or high is None:
        return {}
    return {f"{t:g}": gate(low, high, t) for t in thresholds}


def mcnemar_exact(right_to_wrong: int, wrong_to_right: int) -> float:
    """Two-sided exact McNemar test: the discordant items as a binomial(n, 1/2)."""
    n = right_to_wrong + wrong_to_right
    return 1.0 if n == 0 else float(binomtest(right_to_wrong, n, 0.5).pvalue)


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in input order."""
    order = np.argsort(pvalues, kind="stable")
    m, out, running = len(pvalues), [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def _item_scores(rows: list[dict], metric: str) -> dict[tuple, float]:
    return {(row.get("doc_id"), row.get("filter")): float(row[metric]) for row in rows
            if row.get(metric) is not None}


def paired_task(base_rows: list[dict], variant_rows: list[dict], thresholds: list[float], resamples: int,
                level: float, seed: int) -> S.PairedTaskBlock | str:
    """The paired comparison of one task, or the reason there is none."""
    metric = next((m for m in ACCURACY_METRICS if any(m in row for row in base_rows)), None)
    if metric is None:
        return f"no per-item accuracy metric ({', '.join(ACCURACY_METRICS)}) in the logs"
    base, var = _item_scores(base_rows, metric), _item_scores(variant_rows, metric)
    items = sorted(set(base) & set(var), key=str)
    if not items:
        return "no item logged by both points"
    b = np.array([base[i] for i in items])
    v = np.array([var[i] for i in items])
    if not np.isin(np.concatenate([b, v]), (0.0, 1.0)).all():
        return f"{metric} is not 0/1 per item; McNemar needs right/wrong"
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(items), size=(resamples, len(items)))
    b_boot, v_boot = b[picks].mean(1), v[picks].mean(1)
    alpha = (1 - level) / 2
    diff_lo, diff_hi = np.quantile(v_boot - b_boot, [alpha, 1 - alpha])
    r2w, w2r = int(((b == 1) & (v == 0)).sum()), int(((b == 0) & (v == 1)).sum())
    retention = ret_lo = ret_hi = None
    if b.mean() > 0:
        retention = float(v.mean() / b.mean())
        ok = b_boot > 0
        ret_lo, ret_hi = (float(x) for x in np.quantile(v_boot[ok] / b_boot[ok], [alpha, 1 - alpha]))
    return S.PairedTaskBlock(
        metric=metric, items=len(items), baseline=float(b.mean()), variant=float(v.mean()),
        difference=float(v.mean() - b.mean()), difference_ci_low=float(diff_lo), difference_ci_high=float(diff_hi),
        right_to_wrong=r2w, wrong_to_right=w2r, mcnemar_p=mcnemar_exact(r2w, w2r), retention=retention,
        retention_ci_low=ret_lo, retention_ci_high=ret_hi, gates=gates(ret_lo, ret_hi, thresholds))


def _shape(sc: S.LatencyScenarioBlock) -> tuple[int, int, int]:
    return sc.prompt_tokens, sc.batch_size, sc.new_tokens


def cost_rows(latency: S.LatencyBlock | None, base_latency: S.LatencyBlock | None,
              price_per_hour_usd: float | None) -> list[S.CostBlock]:
    """One row per measured shape; the TPOT ratio is the paired one measured in the point where
    there is one, else the ratio of the two points' medians at the same shape (drift included)."""
    if latency is None:
        return []
    base = {_shape(sc): sc for sc in (base_latency.scenarios if base_latency else []) if sc.tpot_ms}
    rows = []
    for sc in latency.scenarios:
        if sc.status != "ok" or not sc.tpot_ms:
            continue
        tokens_per_s = sc.batch_size * 1000 / sc.tpot_ms.median
        ratio, kind = None, None
        if sc.paired is not None:
            ratio, kind = sc.paired.tpot_ratio, "paired"
        elif _shape(sc) in base:
            ratio, kind = sc.tpot_ms.median / base[_shape(sc)].tpot_ms.median, "unpaired"
        rows.append(S.CostBlock(
            batch_size=sc.batch_size, prompt_tokens=sc.prompt_tokens, new_tokens=sc.new_tokens,
            output_tokens_per_s=tokens_per_s, tpot_ratio=ratio, tpot_ratio_kind=kind,
            usd_per_million_tokens=price_per_hour_usd / 3600 / tokens_per_s * 1e6 if price_per_hour_usd else None,
            j_per_million_tokens=sc.energy_j_per_token * 1e6 if sc.energy_j_per_token is not None else None))
    return rows


def _distillation(variant: S.VariantBlock) -> Mapping[str, Any] | None:
    return (variant.extra or {}).get("distillation")


def comparison_block(record: S.RunRecord, baseline: S.RunRecord | None, *, baseline_variant: str,
                     fidelity: Any, fidelity_missing: Optional[str], variant_samples: Mapping[str, list[dict]],
                     baseline_samples: Mapping[str, list[dict]], thresholds: list[float], resamples: int,
                     level: float, seed: int, price_per_hour_usd: Optional[float],
                     training_utilisation: float) -> S.ComparisonBlock:
    """``fidelity``: the point's measured held-out fidelity (or None, with ``fidelity_missing`` saying why)."""
    missing = [f"fidelity: {fidelity_missing}"] if fidelity_missing else []
    if baseline is None:
        missing.append(f"tasks and cost ratios: no ok {baseline_variant} record of {record.model.name} "
                       f"on hardware {record.hardware.id} in this results directory")
    fid = S.FidelityBlock.model_validate(fidelity) if fidelity is not None else None
    tasks: dict[str, S.PairedTaskBlock] = {}
    for task, rows in variant_samples.items():
        if task not in baseline_samples:
            missing.append(f"task {task}: the baseline has no per-sample log")
            continue
        result = paired_task(baseline_samples[task], rows, thresholds, resamples, level, seed)
        if isinstance(result, str):
            missing.append(f"task {task}: {result}")
        else:
            tasks[task] = result
    base_params = baseline.model.params if baseline else record.model.params
    weights = record.memory.weights_bytes if record.memory else None
    distil = _distillation(record.variant)
    extra_flops = distil.get("distil_flops") if distil else None
    teacher_flops = (2 * distil["teacher_params"] * distil["distil_tokens"]
                     if distil and distil.get("teacher_params") else None)
    probes = record.hardware.probes
    flop_per_usd = (probes.matmul_flops_per_s * training_utilisation * 3600 / price_per_hour_usd
                    if probes and price_per_hour_usd else None)
    if price_per_hour_usd is None:
        missing.append("dollars: hardware.price_per_hour_usd is not set")
    return S.ComparisonBlock(
        baseline_variant=baseline_variant, baseline_run_id=baseline.run_id if baseline else None, missing=missing,
        ci_level=level, gates=list(thresholds), fidelity=fid,
        loss_gates=gates(fid.loss_retention_ci_low, fid.loss_retention_ci_high, thresholds) if fid else {},
        tasks=tasks, cost=cost_rows(record.latency, baseline.latency if baseline else None, price_per_hour_usd),
        price_per_hour_usd=price_per_hour_usd,
        weights_bytes_per_param=weights / base_params if weights and base_params else None,
        extra_training_flops=extra_flops, extra_training_teacher_flops=teacher_flops,
        extra_training_usd=extra_flops / flop_per_usd if extra_flops and flop_per_usd else None,
        flop_per_usd=flop_per_usd, training_utilisation=training_utilisation if flop_per_usd else None)
