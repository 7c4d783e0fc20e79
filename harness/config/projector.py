"""A projection scenario: the law, the growth rates, the inference gap's inputs and the sampled
ranges."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Dict, List, Optional

from omegaconf import MISSING

from harness.config.checks import (ASSUMED_RATES, COST_SOURCES, LAW_SOURCES, LAW_TRANSFERS, MEASURED_POINTS,
                                   ConfigValueError, _at_least, _each, _fraction, _one_of, _positive, _set, _share)
from harness.config.serving import SloConfig


@dataclass
class ProjectorSloConfig(SloConfig):
    _key: ClassVar[str] = "projector.inference.slo."


@dataclass
class LawConfig:
    source: str = "paper"  # paper | chinchilla (rounded, as published) | chinchilla-unrounded | epoch | measured
    L0: float = 1.7
    A: float = 1070.0
    alpha: float = 0.155
    # measured: the compute-optimal law of an IsoFLOP grid (`meekbench fit-law`), and how it is carried
    # to the paper's compute scale: exponent (keep L0 and A above, E and G being corpus- and
    # tokenizer-specific) | full (every measured parameter)
    measured_path: str = "${results_dir}/scaling/tiny/law.json"
    transfer: str = "exponent"
    # The systematic term of a law read beyond its runs: each Monte Carlo draw's measured exponent also
    # scaled by exp(N(0, sigma)); null: sigma from the extrapolation error measured on published runs
    # (harness/projector/calibration.py) at the law's span and the decades read; 0: none
    transfer_systematic: Optional[float] = None
    transfer_systematic_source: str = "set in the config"
    # A published L(N, D) fit's joint uncertainty: the covariance of its parameters in the fit's own
    # coordinates (log E, log A, log B, a, b; 5 x 5), sampled as one joint normal around the published
    # point in the Monte Carlo (never independent marginals: A-a and B-b are strongly correlated);
    # only for the published sources (chinchilla, chinchilla-unrounded, epoch). `meekbench fit-law
    # table=<published runs>` writes one (approach3.covariance of law.json).
    covariance: Optional[List[List[float]]] = None
    covariance_source: str = ""

    def __post_init__(self) -> None:
        _one_of("projector.law.source", self.source, LAW_SOURCES)
        _one_of("projector.law.transfer", self.transfer, LAW_TRANSFERS)
        _at_least("projector.law.L0", self.L0, 0)
        _positive("projector.law.A", self.A)
        _positive("projector.law.alpha", self.alpha)
        _at_least("projector.law.transfer_systematic", self.transfer_systematic, 0)
        if self.covariance is not None:
            rows = [len(r) for r in self.covariance]
            if rows != [5] * 5:
                raise ConfigValueError(f"projector.law.covariance has rows of lengths {rows}; valid: 5 x 5 over "
                                       "(log E, log A, log B, a, b)")
            if not self.covariance_source:
                raise ConfigValueError("projector.law.covariance needs projector.law.covariance_source (where "
                                       "it comes from)")


@dataclass
class GrowthConfig:
    g_i: float = 3.57  # frontier investment, x per year
    g_h: float = 1.4  # hardware price-performance, x per year
    g_alg: float = 2.8  # algorithmic efficiency, x per year

    def __post_init__(self) -> None:
        for name in ("g_i", "g_h", "g_alg"):
            _positive(f"projector.growth.{name}", getattr(self, name))


@dataclass
class InferenceConfig:
    price_per_token_usd: float = 1e-6  # what the meek actor pays per generated token
    g_cost: float = 9.0  # yearly fall in the cost of a fixed capability
    g_cost_source: str = ("paper (Gundlach, Lynch & Thompson 2025): the slowest fall Cottier et al. 2025 found "
                          "across capability thresholds (9x to 900x per year)")
    # assumed (the paper's scenarios) | measured (projector=measured): each record's own decode cost
    # at batch_size (median TPOT x the price it ran with), falling back to the assumed rate when no
    # record has one, and saying so
    cost_source: str = "assumed"
    # The assumed rate. bandwidth: decode at batch 1 reads every weight once per token, so a dollar
    # runs bandwidth x 3600 / (bytes_per_param x price per hour) parameters for one token (at peak
    # bandwidth and batch 1: cheaper than batch 1 achieves, dearer than batched serving) | flops: flop_per_dollar / flops_per_param, the
    # training FLOP/$ (compute-bound: batch sizes large enough to fill the matmul units)
    assumed_rate: str = "bandwidth"
    memory_bandwidth_bytes_per_s: float = 3.35e12
    memory_bandwidth_source: str = "NVIDIA H100 SXM5 datasheet: 3.35 TB/s HBM3 (the GPU of the default FLOP/$)"
    bytes_per_param: float = 2.0  # bf16 weights
    gpu_price_per_hour_usd: float = 2.0  # the default FLOP/$'s $2/h
    flops_per_param: float = 2.0  # decode FLOPs per parameter per token (assumed_rate=flops)
    # The assumed rate's two physical limits, each carried to the inference gap as a bracket (not
    # sampled: nothing says how likely either end is). Dear: batch-1 decode at this share of peak
    # bandwidth. Cheap: compute-bound serving, flop_per_dollar / flops_per_param.
    batch1_bandwidth_share: float = 0.27
    batch1_bandwidth_share_source: str = (
        "Chen 2026, 'Memory-bound but not bandwidth-limited: the physical AI inference gap in batch-1 decode' "
        "(arXiv, 28 May 2026): batch-1 decode of three 7-8B models on an H100 reached 27% of its analytical "
        "memory floor (81% on an L4)")
    batch_size: int = 1  # the measured shape whose decode cost per token is read
    # cost_source=measured reads: single (each record's single-request decode cost at batch_size) |
    # serving (each serving curve's operating point: the highest level meeting ``slo``, docs/serving.md)
    measured_point: str = "single"
    slo: ProjectorSloConfig = field(default_factory=ProjectorSloConfig)
    # Both actors' runnable models are read on the projection's law as if trained compute-optimally:
    # by the law's own N-D allocation where it has one (a published L(N, D) fit; a grid law under
    # transfer=full), at its point values; else with this fixed D/N
    tokens_per_param_from_law: bool = True
    tokens_per_param: float = 20.0
    tokens_per_param_source: str = ("Hoffmann et al. 2022 (Chinchilla): compute-optimal training uses about "
                                    "20 tokens per parameter")
    # The frontier's spend per token over the meek actor's grows this much per year. An assumption,
    # not a measurement: by default (null) the frontier's investment growth g_i, each Monte Carlo
    # draw's own where g_i is sampled (the paper's premise).
    frontier_spend_growth: Optional[float] = None
    frontier_spend_source: str = "assumption: grows with frontier investment, g_i (Gundlach, Lynch & Thompson 2025)"

    def __post_init__(self) -> None:
        key = "projector.inference"
        _one_of(f"{key}.cost_source", self.cost_source, COST_SOURCES)
        _one_of(f"{key}.assumed_rate", self.assumed_rate, ASSUMED_RATES)
        _one_of(f"{key}.measured_point", self.measured_point, MEASURED_POINTS)
        for name in ("price_per_token_usd", "g_cost", "flops_per_param", "tokens_per_param", "frontier_spend_growth",
                     "memory_bandwidth_bytes_per_s", "bytes_per_param", "gpu_price_per_hour_usd"):
            _positive(f"{key}.{name}", getattr(self, name))
        _at_least(f"{key}.batch_size", self.batch_size, 1)
        _share(f"{key}.batch1_bandwidth_share", self.batch1_bandwidth_share)


@dataclass
class RangeConfig:
    """An uncertain input: an interval with its coverage and its source (sampled lognormally)."""
    low: float = MISSING
    high: float = MISSING
    level: float = 0.9  # the interval's coverage, e.g. 0.95 for a published 95% CI
    source: str = MISSING  # where the interval comes from

    def __post_init__(self) -> None:
        _positive("projector.uncertainty.*.low", self.low)  # sampled lognormally
        if _set(self.low) and _set(self.high) and self.high < self.low:
            raise ConfigValueError(f"projector.uncertainty: high={self.high!r} below low={self.low!r}")
        _fraction("projector.uncertainty.*.level", self.level)


@dataclass
class ProjectorConfig:
    name: str = MISSING
    law: LawConfig = field(default_factory=LawConfig)
    growth: GrowthConfig = field(default_factory=GrowthConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    budget_usd: float = 1000.0  # the meek actor's fixed training budget
    budget_source: str = "the paper's meek actor (Gundlach, Lynch & Thompson 2025)"  # printed beside every projection
    # FLOP per dollar: default is an H100 (989 dense bf16 TFLOP/s) at $2/h and 40% utilisation.
    flop_per_dollar: float = 7.1e17
    flop_per_dollar_from_hardware: bool = False  # measured matmul FLOP/s x utilisation / price_per_hour_usd
    utilisation: float = 0.4  # share of a measured peak matmul rate that training sustains (the default's 40%)
    price_per_hour_usd: Optional[float] = None  # for flop_per_dollar_from_hardware
    # hardware label -> USD per hour for the points' measured decode cost, overriding the price each
    # point's run was configured with (as the report's judge.prices)
    prices: Dict[str, float] = field(default_factory=dict)
    start_year: float = 2025.0
    horizon_years: float = 10.0
    steps_per_year: int = 4
    error_rate: float = 0.05  # Wald test error rate
    p_steps: List[int] = field(default_factory=lambda: [1, 5, 20])
    family: str = "tiny"  # whose baseline points the measured law is fitted to
    baseline_variant: str = "fp32"
    task: Optional[str] = None  # lm-eval task whose accuracy feeds the sigmoid (None: the one with most points)
    task_chance: Optional[float] = None  # that task's chance accuracy: the sigmoid's floor (None: fitted in [0, 1])
    bootstrap: int = 200
    # Fit a law with fewer than twice as many distinct points as parameters (DESIGN's rule) anyway,
    # as long as it has one degree of freedom, and project a measured law that failed its extrapolation
    # test (its systematic term widened by the miss); the JSON and the headline then say it was forced
    force_fits: bool = False
    seed: int = 0
    # Uncertain inputs by name (g_i, g_h, g_alg); absent ones are held at their point value.
    # The measured law's uncertainty comes from its bootstrap.
    uncertainty: Dict[str, RangeConfig] = field(default_factory=dict)
    monte_carlo: int = 2000  # joint samples of the uncertain inputs
    closing_levels: List[float] = field(default_factory=lambda: [0.05, 0.01])  # gap levels (nats) to report closing times for
    start_ratio: float = 1.0  # frontier / meek compute at t = 0
    start_ratio_source: str = "paper: both actors start from the same compute (Gundlach, Lynch & Thompson 2025)"

    def __post_init__(self) -> None:
        key = "projector"
        for name in ("budget_usd", "flop_per_dollar", "price_per_hour_usd", "horizon_years", "start_ratio"):
            _positive(f"{key}.{name}", getattr(self, name))
        _share(f"{key}.utilisation", self.utilisation)
        _each(_positive, f"{key}.prices", self.prices)
        _at_least(f"{key}.steps_per_year", self.steps_per_year, 1)
        _fraction(f"{key}.error_rate", self.error_rate)
        _each(_at_least, f"{key}.p_steps", self.p_steps, 1)
        _at_least(f"{key}.bootstrap", self.bootstrap, 0)
        _at_least(f"{key}.monte_carlo", self.monte_carlo, 0)
        _each(_positive, f"{key}.closing_levels", self.closing_levels)
        _fraction(f"{key}.task_chance", self.task_chance, closed=True)
        self._check_points_inside_intervals()

    def _check_points_inside_intervals(self) -> None:
        """A sampled input's point value is its draws' median: it must lie inside its interval."""
        points = {"g_i": self.growth.g_i, "g_h": self.growth.g_h, "g_alg": self.growth.g_alg,
                  "g_cost": self.inference.g_cost}
        for name, r in self.uncertainty.items():
            _one_of("projector.uncertainty", name, tuple(points))
            point = points[name]
            if not (_set(r.low) and _set(r.high)) or r.low == r.high == point:
                continue
            if not r.low < point < r.high:
                where = f"projector.inference.{name}" if name == "g_cost" else f"projector.growth.{name}"
                raise ConfigValueError(
                    f"projector.uncertainty.{name}=[{r.low:g}, {r.high:g}]: its point value {where}={point:g} must "
                    "lie strictly inside (it is the draws' median); move the point value or the interval")


@dataclass
class ProjectConfig:
    projector: ProjectorConfig = field(default_factory=ProjectorConfig)
    results_dirs: List[str] = field(default_factory=lambda: ["${results_dir}"])
    out_dir: str = "${results_dir}/projections/${projector.name}"
    results_dir: str = "results"
    models_dir: str = "models"
