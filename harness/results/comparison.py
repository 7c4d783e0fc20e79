"""Everything that compares records, in one place: each point paired with its baseline, and a
point judged against it, computed from the two records (nothing here is stored in
a record: a record depends only on its own point, whatever order the points ran in).

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

Prices are an analysis input: a record keeps the price its run was configured with
(``hardware.price_per_hour_usd``, not part of its identity), and ``Judging.prices`` (hardware
label -> dollars per hour) overrides it, so a new price needs no new measurement.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional

import numpy as np
from scipy.stats import binomtest

from pydantic import Field

from harness.results import schema as S
from harness.results.fidelity import fidelity_between
from harness.results.store import read_samples

ACCURACY_METRICS = ("acc", "exact_match")  # per-item 0/1 metrics lm-eval logs, first found wins


# -- each point's baseline: the ok record of the same model, on the same hardware id, with the
# -- baseline variant named in config (``fp32`` by default)

def baselines(records: list[S.RunRecord], baseline_variant: str) -> dict[tuple[str, str], S.RunRecord]:
    """The ok ``baseline_variant`` record of each (model, hardware id), as transformers ran it (every
    engine's points are judged against the same reference)."""
    return {(r.model.name, r.hardware.id): r for r in records
            if r.status == "ok" and S.is_baseline(r, baseline_variant)}


def baseline_of(record: S.RunRecord, base: dict[tuple[str, str], S.RunRecord]) -> S.RunRecord | None:
    """The baseline a point is compared to; None for the baseline itself or where none exists."""
    b = base.get((record.model.name, record.hardware.id))
    return None if b is None or b.run_id == record.run_id else b


def tpot_ms(r: S.RunRecord) -> float | None:
    """The headline time per output token (median over requests), where the point measured one."""
    return r.latency.tpot_ms.median if r.latency and r.latency.tpot_ms else None


@dataclass
class SpeedRatio:
    """Variant / baseline time per output token, and how it was obtained."""
    tpot_ratio: float
    kind: str  # "paired": interleaved inside the variant's point | "runs": paired in each of bench.runs runs
    #            (geometric mean, interval across runs) | "unpaired": two points' medians
    ci_low: float | None = None  # paired only: bootstrap over the interleaved pairs
    ci_high: float | None = None

    @property
    def speedup(self) -> float:
        return 1 / self.tpot_ratio

    @property
    def label(self) -> str:
        """As tables print it: '1.32x p [1.28, 1.37]' (paired, with its interval) or '1.32x u'."""
        text = f"{self.speedup:.2f}x {self.kind[0]}"
        if self.ci_low is None or self.ci_high is None:
            return text
        return text + f" [{1 / self.ci_high:.2f}, {1 / self.ci_low:.2f}]"


def headline_runs(record: S.RunRecord) -> S.AcrossRuns | None:
    """The headline shape's figures across runs (bench.runs > 1), or None."""
    head = next((sc for sc in record.latency.scenarios if sc.status == "ok"), None) if record.latency else None
    return head.across_runs if head else None


def speed_ratio(record: S.RunRecord, base: S.RunRecord | None) -> SpeedRatio | None:
    """The paired ratio across runs where the point has several, else the paired ratio measured
    inside the point, else the ratio of the point's median TPOT to its baseline point's (blocks
    measured apart in time: drift included)."""
    runs = headline_runs(record)
    if runs is not None and runs.paired_tpot_ratio is not None:
        return SpeedRatio(runs.paired_tpot_ratio, "runs", runs.paired_tpot_ci_low, runs.paired_tpot_ci_high)
    paired = record.latency.paired if record.latency else None
    if paired is not None:
        return SpeedRatio(paired.tpot_ratio, "paired", paired.tpot_ci_low, paired.tpot_ci_high)
    r = ratio(tpot_ms(record), tpot_ms(base)) if base else None
    return SpeedRatio(r, "unpaired") if r is not None else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def task_names(records: list[S.RunRecord]) -> list[str]:
    """Every lm-eval task that any ok record scored, in first-seen order."""
    names: dict[str, None] = {}
    for r in records:
        if r.status == "ok" and r.quality:
            names.update(dict.fromkeys(r.quality.tasks))
    return list(names)


@dataclass(frozen=True)
class Judging:
    """How records are judged against their baselines (conf: the report's ``judge`` group)."""
    baseline_variant: str = "fp32"
    gates: tuple[float, ...] = (0.99, 0.999)
    resamples: int = 2000
    level: float = 0.95
    seed: int = 0
    training_utilisation: float = 0.4
    prices: Mapping[str, float] = field(default_factory=dict)  # hardware label -> USD per hour
    slo_ttft_ms: float = 2000.0  # serving levels (harness/results/serving.py); defaults: conf's judge.slo
    slo_tpot_ms: float = 200.0
    slo_percentile: float = 99.0

    @classmethod
    def from_config(cls, baseline_variant: str, judge: Any) -> "Judging":
        return cls(baseline_variant, tuple(judge.gates), judge.bootstrap_resamples, judge.ci_level, judge.seed,
                   judge.training_utilisation, dict(judge.prices), judge.slo.ttft_ms, judge.slo.tpot_ms,
                   judge.slo.percentile)


def price_of(record: S.RunRecord, prices: Mapping[str, float]) -> float | None:
    """The price per hour a record is costed at: the judging's price for its hardware label, else the
    price its run was configured with (None: not costed)."""
    if record.hardware.label in prices:
        return prices[record.hardware.label]
    return (record.config.get("hardware") or {}).get("price_per_hour_usd")


def price_sentence(records: list[S.RunRecord], prices: Mapping[str, float]) -> str:
    """What the dollar figures of these records are priced at, each price with its source."""
    seen: dict[tuple[str, float], str] = {}
    for r in records:
        price = price_of(r, prices)
        if price is None:
            continue
        hw = r.config.get("hardware") or {}
        source = ("the report's judge.prices" if r.hardware.label in prices else
                  hw.get("price_source") or "hardware.price_per_hour_usd, no source given")
        seen[(r.hardware.label, price)] = source
    if not seen:
        return "Not priced: no hardware.price_per_hour_usd on these points (or judge.prices for their hardware)."
    return "Priced at " + "; ".join(f"${price:g}/h for {label} ({source})" for (label, price), source in seen.items()) \
        + ": an assumption, not a measurement."


Gate = Literal["pass", "fail", "undecided"]


class PairedTaskBlock(S._Block):
    """One lm-eval task scored by the variant and its baseline on the same items."""
    metric: str
    items: int  # items both logged
    baseline: float
    variant: float
    difference: float  # variant - baseline
    difference_ci_low: float  # paired bootstrap over items
    difference_ci_high: float
    right_to_wrong: int
    wrong_to_right: int
    mcnemar_p: float  # exact (binomial) two-sided, unadjusted; the report applies Holm across variants
    retention: Optional[float] = None  # variant / baseline (None when the baseline scored 0)
    retention_ci_low: Optional[float] = None
    retention_ci_high: Optional[float] = None
    gates: dict[str, Gate] = Field(default_factory=dict)  # e.g. {"0.99": "undecided"}


class CostBlock(S._Block):
    """Decode throughput and its cost at one measured shape. Rate and dollars carry the interval of
    the median TPOT they are derived from (the point's bootstrap over its rounds and requests); the
    ratio carries the paired bootstrap over interleaved pairs, and none when it is unpaired (two
    points apart in time: their drift is not in either point's samples)."""
    batch_size: int
    prompt_tokens: int
    new_tokens: int
    intervals: str = "within one run"  # or "across N runs" (bench.runs): what the intervals below resample
    output_tokens_per_s: float  # batch x 1000 / median TPOT (decode rate, prefill excluded)
    output_tokens_per_s_ci_low: Optional[float] = None
    output_tokens_per_s_ci_high: Optional[float] = None
    tpot_ratio: Optional[float] = None  # variant / baseline TPOT at this shape, paired where measured so
    tpot_ratio_kind: Optional[str] = None  # paired | runs (paired in each run, across runs) | unpaired
    tpot_ratio_ci_low: Optional[float] = None  # paired only
    tpot_ratio_ci_high: Optional[float] = None
    usd_per_million_tokens: Optional[float] = None  # price per hour / 3600 / tokens per s x 1e6
    usd_per_million_tokens_ci_low: Optional[float] = None
    usd_per_million_tokens_ci_high: Optional[float] = None
    j_per_million_tokens: Optional[float] = None


class ComparisonBlock(S._Block):
    """This point against its baseline (same model, same hardware id, ``baseline_variant``)."""
    baseline_variant: str
    baseline_run_id: Optional[str] = None
    missing: list[str] = Field(default_factory=list)  # what could not be compared, and why
    ci_level: float = 0.95
    gates: list[float] = Field(default_factory=list)
    fidelity: Optional[S.Fidelity] = None
    loss_gates: dict[str, Gate] = Field(default_factory=dict)
    tasks: dict[str, PairedTaskBlock] = Field(default_factory=dict)
    cost: list[CostBlock] = Field(default_factory=list)
    price_per_hour_usd: Optional[float] = None
    weights_bytes_per_param: Optional[float] = None  # weights bytes / the baseline's parameter count
    extra_training_flops: Optional[float] = None  # distillation: teacher forward + student training
    extra_training_teacher_flops: Optional[float] = None  # the teacher's forward passes alone
    extra_training_usd: Optional[float] = None  # at the machine's measured FLOP/$ (see flop_per_usd)
    flop_per_usd: Optional[float] = None  # probe matmul FLOP/s x utilisation x 3600 / price per hour
    training_utilisation: Optional[float] = None


def gate(low: float, high: float, threshold: float) -> Gate:
    if low >= threshold:
        return "pass"
    if high < threshold:
        return "fail"
    return "undecided"


def gates(low: float | None, high: float | None, thresholds: list[float]) -> dict[str, Gate]:
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
                level: float, seed: int) -> PairedTaskBlock | str:
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
    return PairedTaskBlock(
        metric=metric, items=len(items), baseline=float(b.mean()), variant=float(v.mean()),
        difference=float(v.mean() - b.mean()), difference_ci_low=float(diff_lo), difference_ci_high=float(diff_hi),
        right_to_wrong=r2w, wrong_to_right=w2r, mcnemar_p=mcnemar_exact(r2w, w2r), retention=retention,
        retention_ci_low=ret_lo, retention_ci_high=ret_hi, gates=gates(ret_lo, ret_hi, thresholds))


def _shape(sc: S.LatencyScenario) -> tuple[int, int, int]:
    return sc.prompt_tokens, sc.batch_size, sc.new_tokens


def cost_rows(latency: S.Latency | None, base_latency: S.Latency | None,
              price_per_hour_usd: float | None) -> list[CostBlock]:
    """One row per measured shape, from the figures across runs where the point has several (bench.runs),
    else from its one run; the TPOT ratio is the paired one measured in the point where there is one,
    else the ratio of the two points' medians at the same shape (drift included)."""
    if latency is None:
        return []
    base = {_shape(sc): sc for sc in (base_latency.scenarios if base_latency else []) if sc.tpot_ms}
    rows = []
    for sc in latency.scenarios:
        if sc.status != "ok" or not sc.tpot_ms:
            continue
        runs = sc.across_runs
        t = runs.tpot_ms if runs else sc.tpot_ms
        # rate and dollars are monotone in TPOT: the median's interval maps end to end (slow end, low rate)
        rate, rate_lo, rate_hi = (sc.batch_size * 1000 / x for x in (t.median, t.ci_high, t.ci_low))
        usd, usd_lo, usd_hi = (price_per_hour_usd / 3600 / r * 1e6 if price_per_hour_usd else None
                               for r in (rate, rate_hi, rate_lo))
        ratio, kind, ratio_ci = None, None, (None, None)
        if runs is not None and runs.paired_tpot_ratio is not None:
            ratio, kind, ratio_ci = runs.paired_tpot_ratio, "runs", (runs.paired_tpot_ci_low, runs.paired_tpot_ci_high)
        elif sc.paired is not None:
            ratio, kind, ratio_ci = sc.paired.tpot_ratio, "paired", (sc.paired.tpot_ci_low, sc.paired.tpot_ci_high)
        elif _shape(sc) in base:
            ratio, kind = t.median / base[_shape(sc)].tpot_ms.median, "unpaired"
        rows.append(CostBlock(
            intervals=f"across {runs.runs} runs" if runs else "within one run",
            batch_size=sc.batch_size, prompt_tokens=sc.prompt_tokens, new_tokens=sc.new_tokens,
            output_tokens_per_s=rate, output_tokens_per_s_ci_low=rate_lo, output_tokens_per_s_ci_high=rate_hi,
            tpot_ratio=ratio, tpot_ratio_kind=kind, tpot_ratio_ci_low=ratio_ci[0], tpot_ratio_ci_high=ratio_ci[1],
            usd_per_million_tokens=usd, usd_per_million_tokens_ci_low=usd_lo, usd_per_million_tokens_ci_high=usd_hi,
            j_per_million_tokens=sc.energy_j_per_token * 1e6 if sc.energy_j_per_token is not None else None))
    return rows


def _distillation(variant: S.VariantInfo) -> Mapping[str, Any] | None:
    return (variant.extra or {}).get("distillation")


def comparison_block(record: S.RunRecord, baseline: S.RunRecord | None, judging: Judging,
                     variant_samples: Mapping[str, list[dict]],
                     baseline_samples: Mapping[str, list[dict]]) -> ComparisonBlock:
    """``record`` against ``baseline`` (None: missing); the samples are both points' per-item task logs."""
    j = judging
    price_per_hour_usd = price_of(record, j.prices)
    thresholds, resamples, level, seed = list(j.gates), j.resamples, j.level, j.seed
    fid, fidelity_missing = fidelity_between(record, baseline)
    missing = [f"fidelity: {fidelity_missing}"] if fidelity_missing else []
    if baseline is None:
        missing.append(f"tasks and cost ratios: no ok {j.baseline_variant} record of {record.model.name} "
                       f"on hardware {record.hardware.id} in these results directories")
    tasks: dict[str, PairedTaskBlock] = {}
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
    training_utilisation = j.training_utilisation
    flop_per_usd = (probes.matmul_flops_per_s * training_utilisation * 3600 / price_per_hour_usd
                    if probes and price_per_hour_usd else None)
    if price_per_hour_usd is None:
        missing.append(f"dollars: no price for hardware {record.hardware.label!r} (the run's "
                       "hardware.price_per_hour_usd, or judge.prices)")
    return ComparisonBlock(
        baseline_variant=j.baseline_variant, baseline_run_id=baseline.run_id if baseline else None, missing=missing,
        ci_level=level, gates=list(thresholds), fidelity=fid,
        loss_gates=gates(fid.loss_retention_ci_low, fid.loss_retention_ci_high, thresholds) if fid else {},
        tasks=tasks, cost=cost_rows(record.latency, baseline.latency if baseline else None, price_per_hour_usd),
        price_per_hour_usd=price_per_hour_usd,
        weights_bytes_per_param=weights / base_params if weights and base_params else None,
        extra_training_flops=extra_flops, extra_training_teacher_flops=teacher_flops,
        extra_training_usd=extra_flops / flop_per_usd if extra_flops and flop_per_usd else None,
        flop_per_usd=flop_per_usd, training_utilisation=training_utilisation if flop_per_usd else None)


def compare_records(records: list[S.RunRecord], judging: Judging) -> dict[str, ComparisonBlock]:
    """Every ok non-baseline record's comparison with its baseline record, by run id: the one place
    records are compared (report, scorecard and page read it), whatever order the points ran in."""
    base = baselines(records, judging.baseline_variant)
    out: dict[str, ComparisonBlock] = {}
    for r in records:
        if r.status != "ok" or S.is_baseline(r, judging.baseline_variant):
            continue
        b = baseline_of(r, base)
        samples = read_samples(r.quality.samples_path) if r.quality else {}
        b_samples = read_samples(b.quality.samples_path) if b and b.quality else {}
        out[r.run_id] = comparison_block(r, b, judging, samples, b_samples)
    return out
