"""How far a compute law reads: its extrapolation error measured on published runs.

Approach 3 (harness/projector/isoflop.py) is fitted on the runs below a cut and judged on the runs
above it, at several cuts. Two errors are measured as a function of the decades read beyond the
fitted runs: the compute exponent's (ln of the truncated fit's over the full data's) and each held-out
run's loss (ln measured - ln predicted). From them comes the systematic term a projection adds to a
law it reads beyond its data: each draw's exponent is scaled by exp(N(0, sigma)) with

    sigma = rate x decades read beyond the law's runs,

the exponent pivoting where the runs end (so the loss there stays the fit's). The rate depends on
how many decades the law's runs span (a short grid misreads its exponent far more): the RMS
per-decade exponent error of the cuts whose spans are nearest, times the smallest common factor at
which the bands cover what they claim on the held-out decades (the exponent's band the full data's
exponent, and each run's prediction interval, bootstrap refits x a resampled residual, the run's
measured loss). Growth linear in the distance is an assumption beyond the farthest distance
measured (recorded).

The same truncations judge the N* exponent's bootstrap band (N* ~ C^a): the factor each cut's band
must grow by, about its point, to hold the full data's a; a law's band is widened by the largest
factor its span's nearest cuts needed (with_n_opt_calibration), and the coverage that gives is judged
with each cut left out of its own factor.

`scripts/calibrate_extrapolation.py` writes the table shipped in data/ (the projector reads it);
the runs are data/chinchilla_fig4_runs.csv (SOURCE).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from harness.projector.fit import FitError, quantile_ends
from harness.projector.grid_runs import Run, load_table
from harness.projector.isoflop import approach3, compute_optimal
from harness.projector.laws import Chinchilla

DATA = Path(__file__).parent / "data"
RUNS_CSV = DATA / "chinchilla_fig4_runs.csv"
TABLE_JSON = DATA / "extrapolation_calibration.json"
SOURCE = ("the 240 runs of Hoffmann et al. 2022's Figure 4 as extracted by Besiroglu et al. 2024 "
          "(github.com/epoch-research/analyzing-chinchilla, commit 9225883, data/svg_extracted_data.csv, "
          "sha256 193478df4e90; the 5 runs of highest loss dropped as they did; scripts/epoch_refit_table.py)")
CUTS_LOG10 = tuple(np.arange(19.0, 21.01, 0.25))  # fit on C <= 10^cut: 0.85 to 2.85 decades of runs
DISTANCE_BINS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)  # decades beyond the fitted runs, for the coverage table


@dataclass
class Truncation:
    """Approach 3 on the runs at or below ``cut_flops``, judged on the runs above it."""
    cut_flops: float
    fitted_runs: int
    span_decades: float  # of the fitted runs
    exponent: float
    exponent_band: list[float]
    reference_exponent: float  # the full data's
    distance_decades: float  # the held-out runs' median decades beyond the cut
    log_exponent_error: float  # ln(exponent / reference_exponent)
    n_opt_exponent: float  # N* ~ C^a: the truncated fit's a
    n_opt_exponent_band: list[float]
    reference_n_opt_exponent: float  # the full data's
    held_out: list[dict] = field(default_factory=list)  # each run: decades beyond, ln error
    draws: list[Chinchilla] = field(default_factory=list, repr=False)  # bootstrap refits (not written)
    residuals: list[float] = field(default_factory=list, repr=False)  # of the fitted runs (not written)
    runs: list[Run] = field(default_factory=list, repr=False)  # the held-out runs (not written)


def truncate(runs: list[Run], cut: float, reference: dict, resamples: int, seed: int, level: float) -> Truncation:
    """``reference``: the full data's compute_optimal (its exponent and its N* exponent a)."""
    fitted, held = [r for r in runs if r.flops <= cut], [r for r in runs if r.flops > cut]
    if not held:
        raise FitError(f"no run above the cut {cut:.3g} FLOPs to judge the fit on")
    law, fit = approach3(fitted, resamples, seed, 1e-3)
    point = compute_optimal(law)
    draws = [Chinchilla(**b) for b in fit.bootstrap]
    refits = [compute_optimal(d) for d in draws]
    band, n_band = ([list(quantile_ends([r[k] for r in refits], level)) for k in ("exponent", "a")]
                    if len(draws) >= 2 else ([], []))
    beyond = [math.log10(r.flops / cut) for r in held]
    return Truncation(
        cut, len(fitted), math.log10(cut / min(r.flops for r in fitted)), point["exponent"], band,
        reference["exponent"], float(np.median(beyond)), math.log(point["exponent"] / reference["exponent"]),
        point["a"], n_band, reference["a"],
        [{"decades_beyond": b, "log_error": math.log(r.loss) - math.log(float(law.loss(r.n, r.d)))}
         for b, r in zip(beyond, held)], draws,
        list(np.log([r.loss for r in fitted]) - np.log(law.loss(np.array([r.n for r in fitted]),
                                                                 np.array([r.d for r in fitted])))), held)


SAMPLES = 400  # Monte Carlo samples per truncation: refits (cycled) x exp(N(0, sigma)) x a resampled residual


@dataclass
class _Samples:
    """One truncation's fixed draws, so every rate searched scales the same ones."""
    t: Truncation
    z: np.ndarray  # standard normal, one per sample
    alpha: np.ndarray  # each sample's refit's compute exponent
    floor: np.ndarray  # each sample's refit's E
    reducible: np.ndarray  # runs x samples: the refit's prediction less E
    noise: np.ndarray  # exp(a resampled residual of the fitted runs), one per sample
    ratio: np.ndarray  # each held-out run's C / cut
    beyond: np.ndarray  # log10 of it


def _prepare(t: Truncation, rng: np.random.Generator) -> _Samples:
    idx = np.arange(SAMPLES) % len(t.draws)
    draws = [t.draws[i] for i in idx]
    n, d = np.array([r.n for r in t.runs]), np.array([r.d for r in t.runs])
    floor = np.array([x.E for x in draws])
    reducible = np.stack([x.loss(n, d) - x.E for x in draws], axis=1)
    ratio = np.array([r.flops for r in t.runs]) / t.cut_flops
    return _Samples(t, rng.standard_normal(SAMPLES), np.array([compute_optimal(x)["exponent"] for x in draws]),
                    floor, reducible, np.exp(rng.choice(np.asarray(t.residuals), SAMPLES)), ratio, np.log10(ratio))


def _covered(s: _Samples, rate: float, level: float) -> tuple[bool, np.ndarray]:
    """Whether the exponent's band holds the full data's exponent, and whether each held-out run's
    prediction interval holds its measured loss: each refit's exponent scaled by exp(z rate
    distance), pivoting at the cut, times a resampled residual."""
    lo, hi = quantile_ends(s.alpha * np.exp(s.z * rate * s.t.distance_decades), level)
    scale = np.exp(s.z[None, :] * rate * s.beyond[:, None])
    pred = (s.floor + s.reducible * s.ratio[:, None] ** (-s.alpha * (scale - 1))) * s.noise
    q = [(1 - level) / 2, (1 + level) / 2]
    ends = np.quantile(pred, q, axis=1)
    measured = np.array([r.loss for r in s.t.runs])
    return bool(lo <= s.t.reference_exponent <= hi), (ends[0] <= measured) & (measured <= ends[1])


def coverage(prepared: list[_Samples], rates: list[float], level: float) -> dict:
    """Measured coverage of the exponent's band and of the runs' prediction intervals, each truncation
    at its own rate, the runs' by decades beyond the cut (DISTANCE_BINS); held-out runs repeat across
    cuts."""
    exponent, by_bin = [], {b: [] for b in DISTANCE_BINS[:-1]}
    for s, rate in zip(prepared, rates):
        ok_exp, ok_runs = _covered(s, rate, level)
        exponent.append(ok_exp)
        for beyond, ok in zip(s.beyond, ok_runs):
            by_bin[max(b for b in DISTANCE_BINS[:-1] if b <= beyond)].append(bool(ok))
    runs = [ok for v in by_bin.values() for ok in v]
    return {"rates_per_decade": list(rates), "exponent": float(np.mean(exponent)), "runs": float(np.mean(runs)),
            "runs_by_distance": [{"decades": [lo, hi], "pairs": len(v), "coverage": float(np.mean(v)) if v else None}
                                 for (lo, v), hi in zip(by_bin.items(), DISTANCE_BINS[1:])]}


NEIGHBOURS = 3  # a law's rate: the RMS per-decade exponent error of the cuts whose spans are nearest its own
INFLATIONS = np.arange(1.0, 5.001, 0.05)  # searched: the smallest common factor at which the bands cover


def local_rate(truncations: list[dict], span: float) -> float:
    """The exponent's RMS error per decade read, over the NEIGHBOURS cuts whose fitted span is nearest
    ``span``: a short grid misreads its exponent far more than a long one (0.85 decades: ln error
    -0.87; 2.85: +0.004 on the published runs)."""
    near = sorted(truncations, key=lambda t: abs(t["span_decades"] - span))[:NEIGHBOURS]
    return math.sqrt(np.mean([(t["log_exponent_error"] / t["distance_decades"]) ** 2 for t in near]))


def n_opt_needed(t: dict) -> float:
    """The factor by which a cut's bootstrap band of the N* exponent, widened about its point, must
    grow to hold the full data's (1: it already does)."""
    point, (lo, hi), ref = t["n_opt_exponent"], t["n_opt_exponent_band"], t["reference_n_opt_exponent"]
    miss, half = (ref - point, hi - point) if ref >= point else (point - ref, point - lo)
    return 1.0 if miss <= half else (miss / half if half > 0 else math.inf)


def n_opt_factor(truncations: list[dict], span: float, leave_out: int | None = None) -> float:
    """The N* band's factor for a law fitted on ``span`` decades: the largest the NEIGHBOURS cuts whose
    spans are nearest needed (``leave_out``: a cut's own index, to judge it out of sample)."""
    rows = [t for i, t in enumerate(truncations) if i != leave_out]
    near = sorted(rows, key=lambda t: abs(t["span_decades"] - span))[:NEIGHBOURS]
    return max(1.0, *(n_opt_needed(t) for t in near))


def _n_opt_coverage(rows: list[dict]) -> dict:
    """How often the N* exponent's band holds the full data's: the bootstrap alone, and widened by each
    cut's factor from its neighbours with itself left out (so the coverage is not the factor's own fit)."""
    needed = [n_opt_needed(t) for t in rows]
    widened = [n <= n_opt_factor(rows, t["span_decades"], leave_out=i) for i, (t, n) in enumerate(zip(rows, needed))]
    return {"bootstrap_only": float(np.mean([n <= 1.0 for n in needed])),
            "widened_leave_one_out": float(np.mean(widened)), "factors_needed": needed}


@dataclass
class Calibration:
    """The shipped table: what the projector's systematic term reads."""
    inflation: float  # the common factor on every local rate at which the bands cover what they claim
    measured_to_decades: float  # the farthest held-out run: beyond it the linear growth is assumed
    measured_spans: list[float]
    level: float
    source: str
    truncations: list[dict]
    coverage_bootstrap_only: dict
    coverage_calibrated: dict
    resamples: int = 0
    seed: int = 0
    n_opt_coverage: dict = field(default_factory=dict)  # the N* exponent's band (_n_opt_coverage)

    def n_opt_band(self, span: float, point: float, band: list[float]) -> tuple[list[float], float]:
        """The N* exponent's bootstrap band widened about its point by the factor its span's
        neighbours needed on the published runs, and that factor."""
        f = n_opt_factor(self.truncations, span)
        return [point - f * (point - band[0]), point + f * (band[1] - point)], f

    def rate(self, span: float) -> float:
        """sigma on the log exponent per decade read, for a law fitted on ``span`` decades of runs."""
        return self.inflation * local_rate(self.truncations, span)

    def sigma(self, span: float, decades: float) -> float:
        return self.rate(span) * max(decades, 0.0)

    def note(self, span: float, decades: float) -> str:
        """Where the systematic term comes from, for the provenance and the headline."""
        beyond = decades - self.measured_to_decades
        lo, hi = min(self.measured_spans), max(self.measured_spans)
        return (f"extrapolation error measured on published runs: sigma = {self.rate(span):.3g} per decade (the "
                f"{NEIGHBOURS} truncations whose spans are nearest this law's {span:.2f} decades"
                + (f", outside the {lo:.2f}-{hi:.2f} measured" if not lo <= span <= hi else "")
                + f"; x{self.inflation:.2f} for coverage) x {decades:.1f} decades read beyond the law's runs = "
                f"{self.sigma(span, decades):.3g} on the log exponent (harness/projector/data/{TABLE_JSON.name}: "
                f"{self.source}; with it the bands cover {self.coverage_calibrated['exponent']:.0%} of the held-out "
                f"exponents and {self.coverage_calibrated['runs']:.0%} of the held-out runs at a nominal "
                f"{self.level:.0%}, against {self.coverage_bootstrap_only['exponent']:.0%} and "
                f"{self.coverage_bootstrap_only['runs']:.0%} with the bootstrap alone)"
                + (f"; measured up to {self.measured_to_decades:.1f} decades, so its growth over the last "
                   f"{beyond:.1f} is assumed linear" if beyond > 0 else ""))


def calibrate(runs: list[Run], cuts: list[float], resamples: int = 100, seed: int = 0,
              level: float = 0.9) -> Calibration:
    reference = compute_optimal(approach3(runs, 0, seed, 1e-3)[0])
    truncations = [truncate(runs, c, reference, resamples, seed, level) for c in cuts]
    rows = [_summary(t) for t in truncations]
    rates = [local_rate(rows, t.span_decades) for t in truncations]
    rng = np.random.default_rng(seed)
    prepared = [_prepare(t, rng) for t in truncations]
    by_factor = ((f, coverage(prepared, [f * r for r in rates], level)) for f in INFLATIONS)
    found = next(((f, c) for f, c in by_factor if c["exponent"] >= level and c["runs"] >= level), None)
    if found is None:
        raise FitError(f"no factor up to {INFLATIONS[-1]:g} on the local rates covers {level:.0%} of the held-out "
                       "decades")
    return Calibration(float(found[0]), max(h["decades_beyond"] for t in truncations for h in t.held_out),
                       [t.span_decades for t in truncations], level, SOURCE, rows,
                       coverage(prepared, [0.0] * len(rates), level), found[1], resamples, seed,
                       _n_opt_coverage(rows))


def _summary(t: Truncation) -> dict:
    errors = np.array([h["log_error"] for h in t.held_out])
    row = {k: v for k, v in asdict(t).items() if k not in ("held_out", "draws", "residuals", "runs")}
    return row | {"held_out_runs": len(t.held_out), "loss_log_error_mean": float(errors.mean()),
                  "loss_log_error_rms": float(np.sqrt((errors ** 2).mean())),
                  "max_decades_beyond": max(h["decades_beyond"] for h in t.held_out)}


def with_n_opt_calibration(reg: dict, flops_range: list[float], cal: Calibration | None = None) -> dict:
    """A law's regime with its N* exponent's band widened as the published runs say it must be
    (its bootstrap band alone held the full data's N* exponent in none of the 9 truncations)."""
    band, point = reg.get("n_opt_exponent_band"), reg.get("n_opt_exponent")
    if not band or point is None:
        return reg
    cal = cal or load()
    if not cal.n_opt_coverage:
        return reg
    span = math.log10(flops_range[1] / flops_range[0])
    (lo, hi), f = cal.n_opt_band(span, point, band)
    cov = cal.n_opt_coverage
    return reg | {"n_opt_exponent_band_calibrated": [max(lo, 0.0), min(hi, 1.0)], "n_opt_band_factor": f,
                  "n_opt_calibration": (
                      f"the bootstrap band widened x{f:.2f} about its point, the most the {NEIGHBOURS} published "
                      f"truncations whose spans are nearest this law's {span:.2f} decades needed to hold the full "
                      f"data's N* exponent (bootstrap alone: {cov['bootstrap_only']:.0%} of {len(cal.truncations)} "
                      f"held it; widened, each judged with itself left out: {cov['widened_leave_one_out']:.0%}; "
                      f"harness/projector/data/{TABLE_JSON.name})")}


def published_runs() -> list[Run]:
    return load_table(RUNS_CSV)[1]


def load(path: Path = TABLE_JSON) -> Calibration:
    return Calibration(**json.loads(path.read_text()))


def write(cal: Calibration, path: Path = TABLE_JSON) -> None:
    path.write_text(json.dumps(asdict(cal), indent=1, default=float) + "\n")
