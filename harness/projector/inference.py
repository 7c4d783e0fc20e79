"""The inference gap: the largest model each actor can run at its price per token, and its loss.

What running N parameters costs comes from measured records where there are any: a point's
decode cost per generated token (as the report's cost rows count it: its price per hour, from
``projector.prices`` or the one it ran with, x its median time per output token, at one batch size) over its parameters. Decode
cost grows about linearly in N once the weights dominate, and the largest measured model has the
least fixed per-token overhead, so the largest model measured on each (hardware, variant), of any
family (a real model such as SmolLM2-135M where one was run), sets its rate; reading a
per-parameter cost from small models overstates what a large one costs per parameter (a
conservative reading, said in the output). A variant counts the parameters it acts like (its
size multiplier against its baseline, from the variant table), so quantisation's measured
speed and its loss both enter; a variant without one (no law of its family) is left out. The
meek actor runs the cheapest measured option per effective parameter. Without measured costs
the rate is the assumed hardware FLOP/$ over FLOPs per parameter, and the output says so.

Both actors' models are read through the projection's own compute law: a model of N parameters
trained compute-optimally reaches L(C), C the compute at which N is the optimal size (by the law's
own N-D allocation where it has one, a published L(N, D) fit's or a grid's under transfer=full;
else C = 6 N D with D = tokens_per_param x N), so the training and the inference gap are on one
loss scale.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from harness.projector.laws import Chinchilla, ComputeLaw
from harness.results.comparison import Judging, cost_rows, price_of
from harness.results.schema import RunRecord, ServingRecord, is_baseline, variant_label
from harness.results.serving import curves


@dataclass(frozen=True)
class DecodeRate:
    """What running one measured point costs, per generated token."""
    model: str
    family: str
    variant: str
    hardware: str
    params: int
    batch_size: int
    usd_per_token: float  # median over the point's measured shapes at this batch size
    multiplier: float  # the parameters it acts like, over its own (1 for a baseline)
    weights: str | None = None  # what the model's weights are, where not the publisher's (its card)
    measured_at: str = "single requests"  # the load it was measured at (a serving curve's operating point)

    @property
    def effective_params_per_usd(self) -> float:
        """Effective parameters one dollar runs for one token."""
        return self.params * self.multiplier / self.usd_per_token


def decode_rates(records: Iterable[RunRecord], batch_size: int, multipliers: dict[tuple[str, str, str], float],
                 baseline_variant: str, prices: Mapping[str, float]) -> list[DecodeRate]:
    """One rate per (hardware, variant): the largest model of any family with a priced decode cost at
    ``batch_size``. A variant without a multiplier (no measured loss against its baseline) is left out."""
    best: dict[tuple[str, str], DecodeRate] = {}
    for r in records:
        if r.status != "ok" or not r.model.params:
            continue
        price = price_of(r, prices)
        costs = [c.usd_per_million_tokens / 1e6 for c in cost_rows(r.latency, None, price)
                 if c.batch_size == batch_size and c.usd_per_million_tokens]
        m = _multiplier(r, multipliers, baseline_variant)
        if not costs or m is None:
            continue
        rate = DecodeRate(r.model.name, r.model.family, variant_label(r), r.hardware.label, r.model.params,
                          batch_size, statistics.median(costs), m, r.model.weights)
        key = (rate.hardware, rate.variant)
        if key not in best or rate.params > best[key].params:
            best[key] = rate
    return sorted(best.values(), key=lambda x: -x.effective_params_per_usd)


def _multiplier(r, multipliers, baseline_variant: str) -> float | None:
    return 1.0 if is_baseline(r, baseline_variant) else multipliers.get((r.model.name, variant_label(r), r.hardware.label))


def serving_rates(records: Iterable[ServingRecord], multipliers: dict[tuple[str, str, str], float],
                  baseline_variant: str, judging: Judging) -> list[DecodeRate]:
    """One rate per (hardware, variant) from serving curves: each curve's operating point (its highest
    level meeting the SLOs, harness/results/serving.py) costed at its price over the output tokens it
    served per hour; the largest model per (hardware, variant) as for single requests."""
    best: dict[tuple[str, str], DecodeRate] = {}
    for curve in curves(list(records), judging):
        op = curve.operating
        r = op.record if op else None
        if op is None or op.cost_per_m_output_tokens is None or not r.model.params:
            continue
        m = _multiplier(r, multipliers, baseline_variant)
        if m is None:
            continue
        q = f"p{judging.slo_percentile:g}"
        rate = DecodeRate(r.model.name, r.model.family, variant_label(r), r.hardware.label, r.model.params, 0,
                          op.cost_per_m_output_tokens / 1e6, m, r.model.weights,
                          f"{curve.kind} level {op.level:g} ({op.output_token_throughput:.3g} output tok/s), the "
                          f"highest meeting {q} TTFT <= {judging.slo_ttft_ms:g} ms and {q} TPOT <= "
                          f"{judging.slo_tpot_ms:g} ms")
        key = (rate.hardware, rate.variant)
        if key not in best or rate.params > best[key].params or (
                rate.params == best[key].params and rate.usd_per_token < best[key].usd_per_token):
            best[key] = rate
    return sorted(best.values(), key=lambda x: -x.effective_params_per_usd)


@dataclass(frozen=True)
class InferenceGap:
    """Runnable parameters at a price per token falling g_cost per year, and their losses."""
    law: ComputeLaw
    params_per_usd: float  # effective parameters one dollar runs for one token, at t = 0
    price_per_token_usd: float
    g_cost: float
    frontier_spend_growth: float
    tokens_per_param: float
    allocation: Chinchilla | None = None  # the law's own N-D split, where it has one (then D/N is its, not fixed)

    def meek_params(self, t):
        return self.price_per_token_usd * self.params_per_usd * np.power(self.g_cost, np.asarray(t, float))

    def frontier_params(self, t):
        return self.meek_params(t) * np.power(self.frontier_spend_growth, np.asarray(t, float))

    def training_compute(self, n):
        """What training an n-parameter model compute-optimally costs: by the law's own allocation
        where it has one, else 6 N D with D = tokens_per_param x N."""
        n = np.asarray(n, float)
        return self.allocation.optimal_compute_for(n) if self.allocation else 6 * n * self.tokens_per_param * n

    def loss(self, n):
        """The loss of an n-parameter model trained compute-optimally, on the projection's law."""
        return self.law.loss(self.training_compute(n))

    def gap(self, t):
        return self.loss(self.meek_params(t)) - self.loss(self.frontier_params(t))

    def summary(self, t) -> dict[str, Any]:
        meek, frontier = self.meek_params(t), self.frontier_params(t)
        return {"meek_params": meek.tolist(), "frontier_params": frontier.tolist(),
                "frontier_training_flops": self.training_compute(frontier).tolist(),
                "meek_loss": self.loss(meek).tolist(), "frontier_loss": self.loss(frontier).tolist(),
                "loss_gap": self.gap(t).tolist()}


def rate_rows(rates: list[DecodeRate]) -> list[dict[str, Any]]:
    return [asdict(r) | {"effective_params_per_usd": r.effective_params_per_usd} for r in rates]
