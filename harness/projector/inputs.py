"""A projection's inputs, resolved: the law (the paper's, a published fit with its joint draws, or
the measured grid's compute-optimal law), the growth rates, FLOP/$ and the family's own fits,
each with its provenance ({"value", "source": "default" | "measured", "note"}), so a reader can
tell which numbers came from this harness's measurements.
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

from harness.config import LAW_SOURCES, LAW_TRANSFERS, ProjectorConfig
from harness.io import BadInputFile
from harness.projector import gap as G
from harness.projector import systematic as S
from harness.projector.family import FamilyFit, family_sigmoid, fit_family
from harness.projector.fit import FitError, FitResult, Sigmoid
from harness.projector.isoflop import regime
from harness.projector.laws import CHINCHILLA, CHINCHILLA_UNROUNDED, EPOCH_REFIT, Chinchilla, ComputeLaw, PowerLaw
from harness.results.comparison import price_of
from harness.results.schema import RunRecord

log = logging.getLogger(__name__)


PUBLISHED = {
    "chinchilla": (CHINCHILLA, "Hoffmann et al. 2022's fit of L(N, D), rounded as published (a=0.34, b=0.28)"),
    "chinchilla-unrounded": (CHINCHILLA_UNROUNDED, "Hoffmann et al. 2022's fit with unrounded E, a, b "
                             "(1.6934, 0.3392, 0.2849; TeX source via Besiroglu et al. 2024)"),
    "epoch": (EPOCH_REFIT, "the Epoch AI refit of L(N, D) (Besiroglu et al. 2024)"),
}
# The compute the published fits' runs span: the 240 runs Besiroglu et al. read off Hoffmann et al.'s
# Figure 4 and refitted (FLOPs as given there); Hoffmann et al.'s own data may reach a little further.
PUBLISHED_FLOPS_RANGE = (1.4e18, 1.3e22)
PUBLISHED_FLOPS_SOURCE = ("the runs of Hoffmann et al.'s Figure 4 as extracted by Besiroglu et al. 2024 "
                          "(github.com/epoch-research/analyzing-chinchilla)")


def sourced(value: Any, source: str, note: str = "") -> dict[str, Any]:
    return {"value": value, "source": source, "note": note}


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
    allocation_draws: list[Chinchilla] = field(default_factory=list)  # each refit's L(N, D), paired with draws
    regime: dict[str, Any] = field(default_factory=dict)  # the law in its own regime, with its warnings
    fit_summary: dict[str, Any] = field(default_factory=dict)  # approach 3's dof, convergence, bootstrap counts
    fitted_params: dict[str, float] = field(default_factory=dict)  # approach 3's L(N, D) itself (E, A, B, a, b)
    extrapolation_test: dict[str, Any] = field(default_factory=dict)  # fit-law's: the largest budget held out
    mixture_exponent: float | None = None  # approach 3's compute exponent on the in-distribution loss, if fitted


def _read_law(path: Path) -> dict[str, Any]:
    """law.json as `meekbench fit-law` writes it, or BadInputFile naming the file and what is wrong."""
    try:
        fits = json.loads(path.read_text())
        a3 = fits["approach3"]
        missing = [k for k in ("E", "G", "exponent") if k not in a3["compute_optimal"]]
        missing += [k for k, where in (("compute_optimal_draws", a3), ("flops_range", fits)) if k not in where]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise BadInputFile(f"projector.law.measured_path={path} is not a law `meekbench fit-law` wrote "
                           f"({type(e).__name__}: {e}); valid: <results_dir>/scaling/<grid>/law.json") from None
    if missing:
        raise BadInputFile(f"projector.law.measured_path={path} lacks {missing}; valid: a law.json written by "
                           "`meekbench fit-law` (rerun it)")
    return fits


def load_grid_law(p: ProjectorConfig) -> GridLaw:
    """The law at ``projector.law.measured_path`` under ``projector.law.transfer``; FitError when absent."""
    path = Path(p.law.measured_path)
    if not path.exists():
        raise FitError(f"no measured compute-optimal law at {path}: run `meekbench build-grid` then "
                       "`meekbench fit-law`")
    fits = _read_law(path)
    co = fits["approach3"]["compute_optimal"]

    def carried(e: float, g: float, exponent: float) -> ComputeLaw:
        if p.law.transfer == "exponent":
            return ComputeLaw(p.law.L0, p.law.A, exponent)  # A is anchored once FLOP/$ is known (resolve_inputs)
        if p.law.transfer == "full":
            return ComputeLaw(e, g, exponent)
        raise ValueError(f"projector.law.transfer={p.law.transfer!r}; valid: {', '.join(LAW_TRANSFERS)}")

    a3 = fits["approach3"]
    draws = a3["compute_optimal_draws"]
    # each refit's own L(N, D) (its N-D allocation); a law.json written before they were kept has none
    allocations = [Chinchilla(**d) for d in a3.get("param_draws", [])]
    return GridLaw(carried(co["E"], co["G"], co["exponent"]), [carried(d["E"], d["G"], d["exponent"]) for d in draws],
                   fits["flops_range"], str(path), p.law.transfer, PowerLaw(co["E"], co["G"], co["exponent"]),
                   [PowerLaw(d["E"], d["G"], d["exponent"]) for d in draws],
                   allocations if len(allocations) == len(draws) else [], fits.get("regime") or regime(fits),
                   a3.get("fit", {}), a3.get("params", {}), fits.get("extrapolation_test") or {},
                   ((fits.get("approach3_in_distribution") or {}).get("compute_optimal") or {}).get("exponent"))


@dataclass
class Inputs:
    law: ComputeLaw
    growth: G.Growth
    flop_per_dollar: float
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)
    family: FamilyFit | None = None  # its size law (law_n) serves the variant multipliers only
    grid_law: GridLaw | None = None
    law_draws: list[ComputeLaw] | None = None  # the law's own uncertainty: bootstrap refits or a published fit's joint draws
    law_draws_label: str = ""
    allocation: Chinchilla | None = None  # the law's own N-D split, where it has one
    allocation_draws: list[Chinchilla] | None = None  # each law draw's own N-D split, paired with law_draws
    data_flops: tuple[float, float] | None = None  # the compute the law's own data span (None: not known)
    data_source: str = ""
    sigmoid: Sigmoid | None = None
    sigmoid_fit: FitResult | None = None


def _published_draws(base: Chinchilla, covariance: list[list[float]], n: int, seed: int) -> list[Chinchilla]:
    """L(N, D) laws drawn jointly from a published fit: one normal over its coordinates (log E,
    log A, log B, a, b) centred on the published point, with the fit's covariance (so E, A, B stay
    positive and the A-a, B-b correlations are kept)."""
    cov = np.asarray(covariance, float)
    if cov.shape != (5, 5) or not np.allclose(cov, cov.T) or np.linalg.eigvalsh(cov).min() < -1e-12:
        raise ValueError(f"projector.law.covariance: need a symmetric positive semi-definite 5 x 5 matrix over "
                         f"{', '.join(Chinchilla.COORDINATES)}, got shape {cov.shape}")
    x = np.random.default_rng(seed).multivariate_normal(base.coordinates(), cov, size=n, method="eigh")
    return [Chinchilla.from_coordinates(row) for row in x]


@dataclass
class _Law:
    """The scenario's compute law, its provenance's source and note, and what it was read from."""
    law: ComputeLaw
    source: str
    note: str
    family: FamilyFit | None = None
    grid_law: Any = None
    published_draws: list[Chinchilla] | None = None


def _paper_law(p: ProjectorConfig, records: list[RunRecord], prov: dict[str, Any]) -> _Law:
    return _Law(ComputeLaw(p.law.L0, p.law.A, p.law.alpha), "default", "paper default L(C) = L0 + A C^-alpha")


def _published_law(p: ProjectorConfig, records: list[RunRecord], prov: dict[str, Any]) -> _Law:
    base, label = PUBLISHED[p.law.source]
    draws = None
    if p.law.covariance:
        draws = _published_draws(base, p.law.covariance, p.monte_carlo, p.seed)
        prov["law.covariance"] = sourced(p.law.covariance, "default",
                                         f"{p.law.covariance_source}; sampled as one joint normal over "
                                         f"({', '.join(Chinchilla.COORDINATES)}) around the published point")
    return _Law(base.compute_optimal(), "default", f"compute-optimal form of {label}", published_draws=draws)


def _family_law(p: ProjectorConfig, records: list[RunRecord], prov: dict[str, Any]) -> FamilyFit | None:
    """The family's loss-vs-size law: for variant multipliers, never as L(C)."""
    try:
        family = fit_family(records, p)
    except FitError as e:
        prov["law_n"] = sourced(None, "unavailable", f"the family's size law (variant multipliers): {e}")
        log.warning("family law unavailable: %s", e)
        return None
    prov["law_n"] = sourced(asdict(family.law_n), "measured", f"fitted to {len(family.points)} measured "
                           f"{p.family} points: the variant multipliers' size law"
                           + (f"; {family.fit.warning}" if family.fit.warning else ""))
    return family


def _measured_law(p: ProjectorConfig, records: list[RunRecord], prov: dict[str, Any]) -> _Law:
    family = _family_law(p, records, prov)
    try:
        grid_law = load_grid_law(p)
    except FitError as e:  # the scenario's own law values (the paper's, unless overridden)
        log.warning("measured compute-optimal law unavailable, fell back to the paper's law: %s", e)
        return _Law(ComputeLaw(p.law.L0, p.law.A, p.law.alpha), "default",
                    f"fell back to the paper's law (projector.law L0, A, alpha): {e}", family=family)
    note = (f"approach 3 of {grid_law.path} (an IsoFLOP grid), transfer={grid_law.transfer}: "
            + ("keeps from the paper its L0, its loss at the meek actor's starting compute and the growth "
               "rates, and from the grid only the compute exponent" if grid_law.transfer == "exponent"
               else "keeps from the grid E, G and the exponent (on the grid's corpus and tokenizer: its loss "
                    "scale is not the paper's), and from the paper the growth rates")
            + ", read far beyond the grid with a systematic term in its band"
            + (f"; the law has {len(grid_law.regime['warnings'])} warning(s)" if grid_law.regime["warnings"] else ""))
    return _Law(grid_law.law, "measured", note, family=family, grid_law=grid_law)


def _resolve_law(p: ProjectorConfig, records: list[RunRecord], prov: dict[str, Any]) -> _Law:
    if p.law.covariance and p.law.source not in PUBLISHED:
        raise ValueError(f"projector.law.covariance is for a published L(N, D) fit ({', '.join(PUBLISHED)}); "
                         f"law.source={p.law.source!r} (a measured law's band comes from its bootstrap)")
    resolver = {"paper": _paper_law, "measured": _measured_law, **{name: _published_law for name in PUBLISHED}}
    if p.law.source not in resolver:
        raise ValueError(f"projector.law.source={p.law.source!r}; valid: {', '.join(LAW_SOURCES)}")
    found = resolver[p.law.source](p, records, prov)
    for k in ("L0", "A", "alpha"):
        prov[f"law.{k}"] = sourced(getattr(found.law, k), found.source, found.note)
    if found.grid_law is not None:
        prov["law.fit"] = sourced(found.grid_law.fit_summary, "measured", "approach 3 (L(N, D) over the grid's runs): "
                                  "degrees of freedom, optimiser convergence and bootstrap resamples")
    return found


def _flop_per_dollar(p: ProjectorConfig, records: list[RunRecord]) -> dict[str, Any]:
    """The meek actor's FLOP per dollar: the scenario's, or the benchmark machines' measured matmul rate
    at a price (projector.flop_per_dollar_from_hardware)."""
    value, src, note = p.flop_per_dollar, "default", "H100 989 TFLOP/s bf16, $2/h, 40% utilisation"
    if p.flop_per_dollar_from_hardware:
        probes = [r.hardware.probes.matmul_flops_per_s for r in records if r.hardware.probes]
        # the projector's price, else the points' (projector.prices or hardware.price_per_hour_usd)
        recorded = [price_of(r, p.prices) for r in records if r.hardware.probes]
        recorded = [x for x in recorded if x]
        price = p.price_per_hour_usd or (statistics.median(recorded) if recorded else None)
        if probes and price:
            value = statistics.median(probes) * p.utilisation * 3600 / price
            labels = sorted({r.hardware.label for r in records if r.hardware.probes})
            priced_by = ("projector.price_per_hour_usd" if p.price_per_hour_usd else
                         "the points' hardware.price_per_hour_usd or projector.prices")
            src, note = "measured", ("the benchmark machine as the meek actor (projector.flop_per_dollar_from_hardware):"
                                     f" median matmul FLOP/s of {labels} x utilisation {p.utilisation} "
                                     f"(projector.utilisation) at an assumed ${price}/h ({priced_by})")
        else:
            why = "no hardware probes in the records" if not probes else \
                "no price: set projector.price_per_hour_usd or run points with hardware.price_per_hour_usd"
            note = f"default kept ({why}); " + note
    return sourced(value, src, note)


def _add_systematic(grid_law: GridLaw, p: ProjectorConfig, prov: dict[str, Any], c0: float,
                    growth: G.Growth) -> None:
    """A measured law's draws with the systematic term, widened by a failed extrapolation test
    (refused, unless forced: harness/projector/systematic.py)."""
    widen, source, note = S.widening(grid_law.extrapolation_test, grid_law.path, p.force_fits)
    prov["law.extrapolation_test"] = sourced(grid_law.extrapolation_test or None, source, note)
    if not grid_law.draws:  # no bootstrap refits to scale (fit-law resamples=0)
        return
    sigma, note = S.sigma(p, grid_law.law.alpha, tuple(grid_law.flops_range), c0, growth, widen)
    if p.law.transfer_systematic is None:  # a stated term replaces the measured ones
        m, m_note = S.mixture(grid_law.native.a, grid_law.mixture_exponent)
        sigma, note = math.hypot(sigma, m), note + m_note
    refits = grid_law.draws
    grid_law.draws, picks, held = S.drawn(refits, p.monte_carlo, max(grid_law.flops_range), sigma, p.seed)
    if grid_law.allocation_draws:
        grid_law.allocation_draws = [grid_law.allocation_draws[i] for i in picks]
    prov["law.transfer_systematic"] = _systematic_provenance(sigma, note + S.held_note(held, len(grid_law.draws)), p)


def _systematic_provenance(sigma: float, note: str, p: ProjectorConfig) -> dict[str, Any]:
    return sourced(sigma, "measured" if p.law.transfer_systematic is None else "default", note)


def _anchor_exponent(found: _Law, p: ProjectorConfig, flop_per_dollar: float, prov: dict[str, Any]) -> None:
    """transfer=exponent: the paper's A belongs to the paper's exponent, so keep the paper's L0 and its loss
    at the meek actor's starting compute, and let the measured exponent set the slope from there."""
    grid_law = found.grid_law
    c0, paper = p.budget_usd * flop_per_dollar, ComputeLaw(p.law.L0, p.law.A, p.law.alpha)

    def anchored(m: ComputeLaw) -> ComputeLaw:
        return ComputeLaw(m.L0, (float(paper.loss(c0)) - m.L0) * c0**m.alpha, m.alpha)

    grid_law.law, grid_law.draws = anchored(grid_law.law), [anchored(d) for d in grid_law.draws]
    found.law = law = grid_law.law
    # the gap is then A' c0^-a (g_m^-at - g_f^-at): a function of a t alone, so the paper's curve
    # with its time axis scaled by paper alpha / measured alpha (issue 26 item 1)
    stretch = p.law.alpha / law.alpha
    for k in ("L0", "A", "alpha"):
        prov[f"law.{k}"] = sourced(getattr(law, k), "measured" if k == "alpha" else "default",
                                  found.note + f"; A rescaled so the loss at the starting compute {c0:.3g} FLOPs is "
                                  f"the paper's, so the training gap is the paper's curve with its time axis scaled "
                                  f"by {p.law.alpha:g} / {law.alpha:.4g} = {stretch:.3g}: its peak in nats is the "
                                  "paper's whatever the measured exponent, which moves only when things happen")


def _data_and_draws(inputs: Inputs, found: _Law, p: ProjectorConfig, c0: float) -> None:
    """What the law was fitted on (its FLOPs range), its N-D allocation, and its Monte Carlo draws."""
    grid_law = found.grid_law
    if grid_law is not None:
        inputs.data_flops, inputs.data_source = tuple(grid_law.flops_range), f"the runs of {grid_law.path}"
        if grid_law.transfer == "full":
            inputs.allocation = Chinchilla(**grid_law.fitted_params)
    elif p.law.source in PUBLISHED:
        inputs.data_flops, inputs.data_source = PUBLISHED_FLOPS_RANGE, PUBLISHED_FLOPS_SOURCE
        inputs.allocation = PUBLISHED[p.law.source][0]
    if grid_law is not None and grid_law.draws:
        inputs.law_draws, inputs.law_draws_label = grid_law.draws, "law (bootstrap refits)"
        if inputs.allocation is not None and grid_law.allocation_draws:
            inputs.allocation_draws = grid_law.allocation_draws
    elif p.law.source in PUBLISHED:  # read beyond its runs too: its draws carry the same systematic term
        joint = found.published_draws or []
        sigma, note = S.sigma(p, found.law.alpha, PUBLISHED_FLOPS_RANGE, c0, inputs.growth)
        inputs.law_draws, picks, held = S.drawn([d.compute_optimal() for d in joint] or [found.law],
                                                p.monte_carlo, PUBLISHED_FLOPS_RANGE[1], sigma, p.seed)
        inputs.law_draws_label = "law (published fit, joint)" if joint else "law (systematic term only)"
        inputs.allocation_draws = [joint[i] for i in picks] if joint else None
        inputs.provenance["law.transfer_systematic"] = _systematic_provenance(
            sigma, note + S.held_note(held, p.monte_carlo), p)


def _resolve_sigmoid(inputs: Inputs, found: _Law, p: ProjectorConfig, records: list[RunRecord]) -> None:
    """The loss-to-accuracy sigmoid: only where the law is on the measured family's loss scale."""
    prov = inputs.provenance
    if found.family is None or found.grid_law is None or found.grid_law.transfer != "full":
        why = (f"this scenario's law ({p.law.source}) is on another loss scale" if found.family is None else
               "the law is on another loss scale than the family's (a measured grid law with law.transfer=full "
               "is on it)")
        prov["sigmoid"] = sourced(None, "unavailable", "the sigmoid maps a measured family's held-out loss to "
                                 f"accuracy; {why}")
        return
    try:
        inputs.sigmoid, inputs.sigmoid_fit, note = family_sigmoid(records, p)
        prov["sigmoid"] = sourced(inputs.sigmoid_fit.params, "measured", note + (
            f"; {inputs.sigmoid_fit.warning}" if inputs.sigmoid_fit.warning else ""))
    except FitError as e:
        prov["sigmoid"] = sourced(None, "unavailable", str(e))


def _scenario_provenance(p: ProjectorConfig, growth: G.Growth) -> dict[str, dict[str, Any]]:
    """The growth rates, their intervals, the budget and the start ratio, as the scenario states them."""
    prov: dict[str, dict[str, Any]] = {
        name: sourced(getattr(growth, name), "default", "paper (Gundlach, Lynch & Thompson 2025)")
        for name in ("g_i", "g_h", "g_alg")
    }
    for name, r in p.uncertainty.items():
        prov[f"{name}.interval"] = sourced([r.low, r.high], "default", f"{r.level:.0%} interval, sampled as a "
                                                                      "two-piece lognormal whose median is the point "
                                                                      f"value; {r.source}")
    prov["budget_usd"] = sourced(p.budget_usd, "default", "meek actor's fixed budget")
    prov["start_ratio"] = sourced(p.start_ratio, "default", p.start_ratio_source)
    return prov


def resolve_inputs(p: ProjectorConfig, records: list[RunRecord]) -> Inputs:
    """Every input of a projection with its provenance: one resolver per input."""
    growth = G.Growth(p.growth.g_i, p.growth.g_h, p.growth.g_alg)
    prov = _scenario_provenance(p, growth)
    found = _resolve_law(p, records, prov)
    prov["flop_per_dollar"] = _flop_per_dollar(p, records)
    flop_per_dollar = prov["flop_per_dollar"]["value"]
    if found.grid_law is not None:
        _add_systematic(found.grid_law, p, prov, p.budget_usd * flop_per_dollar, growth)
    if found.grid_law is not None and found.grid_law.transfer == "exponent":
        _anchor_exponent(found, p, flop_per_dollar, prov)
    inputs = Inputs(law=found.law, growth=growth, flop_per_dollar=flop_per_dollar, provenance=prov,
                    family=found.family, grid_law=found.grid_law)
    _data_and_draws(inputs, found, p, p.budget_usd * flop_per_dollar)
    _resolve_sigmoid(inputs, found, p, records)
    return inputs
