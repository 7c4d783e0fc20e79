"""The compute-optimal law of an IsoFLOP grid, fitted three ways (`meekbench fit-law`:
harness/projector/fit_law.py writes it).

Following Hoffmann et al. (2022), re-done by Besiroglu et al. (2024):

- Approach 1, the envelope: per budget, the run (mean over seeds) with the lowest loss gives
  N* and D*; a line in log-log through them against C = 6 N* D* (approach 3's compute axis)
  gives N* ~ C^a1, D* ~ C^b1. Only final losses
  exist here (each run has its own schedule), so the envelope is the best run per budget, not the
  minimum over training curves.
- Approach 2, parabolas: per budget, loss as a parabola in log N; its vertex is that budget's
  N*, D* read off the budget's own N-D relation (a line in log-log, exact for a fixed budget);
  then N* ~ C^a2, D* ~ C^b2.
- Approach 3, the parametric fit L(N, D) = E + A/N^alpha + B/D^beta (harness.projector.fit:
  Huber on log loss, L-BFGS-B from a grid of starts to tight tolerances, convergence checked),
  then its compute-optimal form L(C) = E + G C^-(alpha beta / (alpha + beta)) with C = 6ND.

Bands: bootstrap over runs (resampled within each budget for approaches 1-2, over all runs for
approach 3), each approach-3 refit from a 32-start grid of its own plus the full-data optimum
(``REFIT_STARTS``); attempted, converged and kept counts are reported. With 3 budgets the
N*(C) lines of approaches 1-2 rest on 3 optima for 2 parameters: below the 2x rule, so they
are reported as a check on approach 3 (which has 4 runs per parameter) and never used by the
projector. N is the total parameter count (embeddings tied:
every parameter is in a per-token matmul), D the tokens trained on.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from harness.config import LawConfig
from harness.projector.fit import FitError, FitResult, fit_chinchilla, quantile_ends
from harness.projector.grid_runs import Run
from harness.projector.laws import CHINCHILLA, EPOCH_REFIT, Chinchilla, ComputeLaw

DEPTH_Z = 3.0  # two depths' mean residuals this many standard errors apart: the depth rule shows in the fit


def depth_check(runs: list[Run], law: Chinchilla) -> dict | None:
    """The depth rule against the data: approach 3's residuals (log measured - log predicted) by
    number of layers. If depth mattered beyond N, runs of one depth would sit above the law and of
    another below it. Flagged when two depths' means lie more than DEPTH_Z standard errors apart
    (the residuals' spread within depths, pooled, over each group's run count: a one-way analysis of
    variance's standard error). None without depths, with one depth, or with no spread left."""
    if any(r.n_layers is None for r in runs):
        return None
    resid = np.log([r.loss for r in runs]) - np.log([float(law.loss(r.n, r.d)) for r in runs])
    groups: dict[int, list[float]] = {}
    for r, e in zip(runs, resid):
        groups.setdefault(int(r.n_layers), []).append(float(e))
    if len(groups) < 2 or len(runs) <= len(groups):
        return None
    means = {k: float(np.mean(v)) for k, v in sorted(groups.items())}
    within = sum((e - means[k]) ** 2 for k, v in groups.items() for e in v)
    sd = math.sqrt(within / (len(runs) - len(groups)))
    if sd == 0:
        return None
    worst = max(((a, b) for a in groups for b in groups if a < b),
                key=lambda ab: abs(means[ab[0]] - means[ab[1]]) / math.sqrt(1 / len(groups[ab[0]]) + 1 / len(groups[ab[1]])))
    z = abs(means[worst[0]] - means[worst[1]]) / (sd * math.sqrt(1 / len(groups[worst[0]]) + 1 / len(groups[worst[1]])))
    return {"mean_log_residual_by_layers": {str(k): v for k, v in means.items()},
            "runs_by_layers": {str(k): len(v) for k, v in sorted(groups.items())}, "residual_sd_within_depths": sd,
            "widest_pair": list(worst), "z": z, "depth_shows": bool(z > DEPTH_Z)}


def by_budget(runs: list[Run]) -> dict[float, list[Run]]:
    out: dict[float, list[Run]] = {}
    for r in runs:
        out.setdefault(r.budget, []).append(r)
    return dict(sorted(out.items()))


def loglog_slope(x, y) -> tuple[float, float]:
    """Least-squares slope and intercept of log y on log x."""
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(intercept)


def _mean_by_size(runs: list[Run]) -> list[tuple[float, float, float]]:
    """(N, D, mean loss over seeds) per size in one budget."""
    sizes: dict[float, list[Run]] = {}
    for r in runs:
        sizes.setdefault(r.n, []).append(r)
    return [(n, float(np.mean([r.d for r in rs])), float(np.mean([r.loss for r in rs]))) for n, rs in sorted(sizes.items())]


def envelope(runs: list[Run]) -> dict:
    """Approach 1: the best size per budget, and the N*(C), D*(C) lines through them."""
    optima = []
    for c, rs in by_budget(runs).items():
        n, d, loss = min(_mean_by_size(rs), key=lambda t: t[2])
        optima.append({"budget_flops": c, "n_opt": n, "d_opt": d, "loss": loss})
    return _exponents(optima, "best run per budget")


def parabolas(runs: list[Run]) -> dict:
    """Approach 2: a parabola in log N per budget; its vertex is the budget's optimum. A budget
    whose loss is not convex in log N has no interior optimum and is left out, with the reason."""
    optima, excluded = [], []
    for c, rs in by_budget(runs).items():
        x = np.log([r.n for r in rs])
        y = np.array([r.loss for r in rs])
        if len(set(x)) < 3:
            excluded.append(f"budget {c:.3g}: a parabola needs 3 sizes, got {len(set(x))}")
            continue
        p2, p1, p0 = np.polyfit(x, y, 2)
        if p2 <= 0:
            excluded.append(f"budget {c:.3g}: loss is not convex in log N (curvature {p2:.3g}): no interior optimum")
            continue
        xv = -p1 / (2 * p2)
        dslope, dint = np.polyfit(x, np.log([r.d for r in rs]), 1)  # the budget's own N-D relation
        optima.append({"budget_flops": c, "n_opt": float(np.exp(xv)), "d_opt": float(np.exp(dint + dslope * xv)),
                       "loss": float(p0 + p1 * xv + p2 * xv**2), "parabola": [float(p0), float(p1), float(p2)],
                       "points": len(rs), "vertex_inside": bool(x.min() <= xv <= x.max())})
    if len(optima) < 2:
        raise FitError("fewer than 2 budgets with an interior optimum: " + "; ".join(excluded))
    return _exponents(optima, "parabola vertex per budget") | {"excluded": excluded}


def _exponents(optima: list[dict], how: str) -> dict:
    """N* ~ C^a and D* ~ C^b through the optima, with C = 6 N* D* as approach 3 counts compute (the
    nominal budget would put the approaches on different compute axes). a + b = 1 then holds by
    construction: it is reported, not checked."""
    if len(optima) < 2:
        raise FitError(f"a line through the optima needs 2 budgets, got {len(optima)}")
    c = [6 * o["n_opt"] * o["d_opt"] for o in optima]
    a, _ = loglog_slope(c, [o["n_opt"] for o in optima])
    b, _ = loglog_slope(c, [o["d_opt"] for o in optima])
    return {"how": how, "optima": optima, "a": a, "b": b, "a_plus_b": a + b, "points": len(optima), "dof": len(optima) - 2,
            "note": (f"{len(optima)} optima for 2 parameters per line: below the 2x rule; a check on approach 3, "
                     "not used by the projector") if len(optima) < 4 else ""}


def compute_optimal(law: Chinchilla) -> dict:
    """N* ~ C^a, D* ~ C^b and L(C) = E + G C^-gamma along C = 6ND."""
    cl: ComputeLaw = law.compute_optimal()
    return {"a": law.b / (law.a + law.b), "b": law.a / (law.a + law.b), "E": cl.L0, "G": cl.A, "exponent": cl.alpha}


def _band(values, level: float) -> list[float] | None:
    """A bootstrap band; a refit whose parameter ran off to infinity counts (an end it covers is
    infinite), one with no value does not."""
    v = [x for x in values if x is not None and not math.isnan(x)]
    return list(quantile_ends(v, level)) if len(v) >= 2 else None


def _stratified_bootstrap(runs: list[Run], fit, resamples: int, seed: int) -> tuple[list[dict], int]:
    """Refit on runs resampled with replacement within each budget; failed refits are not kept."""
    rng = np.random.default_rng(seed)
    groups = list(by_budget(runs).values())
    kept = []
    for _ in range(resamples):
        sample = [g[i] for g in groups for i in rng.integers(0, len(g), len(g))]
        try:
            kept.append(fit(sample))
        except FitError:
            continue
    return kept, resamples


# Every bootstrap refit starts from the full-data optimum and from this grid of its own (2 values
# per parameter: log E, log A, log B, alpha, beta): a full fit from the 108-start grid takes ~1.2 s
# on 2 cores (20 runs), so 100 refits from it would take 2 minutes per fit, and a law makes several.
REFIT_STARTS = [list(x) for x in itertools.product([-1.0, 1.0], [2.0, 8.0], [2.0, 8.0], [0.1, 0.5], [0.1, 0.5])]


def approach3(runs: list[Run], resamples: int, seed: int, delta: float) -> tuple[Chinchilla, FitResult]:
    return fit_chinchilla([r.n for r in runs], [r.d for r in runs], [r.loss for r in runs], delta=delta,
                          resamples=resamples, seed=seed, refit_starts=REFIT_STARTS)


def fit_grid(runs: list[Run], resamples: int = 100, seed: int = 0, delta: float = 1e-3, level: float = 0.9) -> dict:
    """All three approaches with their bands, the agreement check and the extrapolation test (fit-law
    adds the lr check and the regime)."""
    out: dict = {"runs": len(runs), "level": level,
                 "flops_range": [min(r.flops for r in runs), max(r.flops for r in runs)]}
    no_budgets = any(r.budget is None for r in runs)
    for key, fn in (("approach1", envelope), ("approach2", parabolas)):
        if no_budgets:
            out[key] = {"refused": "the runs carry no IsoFLOP budget (a table without a budget column)"}
            continue
        try:
            res = fn(runs)
        except FitError as e:
            out[key] = {"refused": str(e)}
            continue
        boot, attempted = _stratified_bootstrap(runs, fn, resamples, seed)
        res |= {"bootstrap_attempted": attempted, "bootstrap_kept": len(boot),
                "a_band": _band([b["a"] for b in boot], level), "b_band": _band([b["b"] for b in boot], level)}
        out[key] = res
    law, fit = approach3(runs, resamples, seed, delta)
    co = compute_optimal(law)
    draws = [compute_optimal(Chinchilla(**b)) for b in fit.bootstrap]
    out["approach3"] = {"params": fit.params, "fit": fit.summary(),
                        "bands": {k: fit.interval(k, level) for k in fit.params},
                        "compute_optimal": co,
                        "compute_optimal_bands": {k: _band([d[k] for d in draws], level) for k in co},
                        "compute_optimal_draws": [{k: d[k] for k in ("E", "G", "exponent")} for d in draws],
                        "param_draws": fit.bootstrap,  # each refit's L(N, D): its own N-D allocation
                        "covariance": covariance(fit.bootstrap)}
    if all(r.n_non_embedding for r in runs):
        out["approach3_non_embedding"] = non_embedding_fit(runs, delta)
    if all(r.loss_in_distribution for r in runs):
        out["approach3_in_distribution"] = in_distribution_fit(runs, delta)
    out["depth_check"] = depth_check(runs, law)
    out["agreement"] = agreement(out)
    out["extrapolation_test"] = {"refused": "the runs carry no IsoFLOP budget to hold out"} if no_budgets else \
        extrapolation_test(runs, max(resamples // 2, 0), seed, delta, level)
    return out


PAPER_ALPHA = LawConfig.alpha  # Gundlach, Lynch & Thompson 2025's compute exponent, the projector's default
E_UNIDENTIFIED = 0.25  # E's band with its low end at most this share of its high end: the floor is not pinned down


def regime(fits: dict) -> dict:
    """The law in its own regime: its exponents beside Chinchilla's and Epoch's, whether the
    paper's alpha lies inside its band, and its warning signs (a law with any is labelled so
    wherever it is used). Reads the lr check too, where fit-law has added it."""
    a3 = fits["approach3"]
    co, bands = a3["compute_optimal"], a3.get("compute_optimal_bands", {})
    published = {name: compute_optimal(law) for name, law in (("chinchilla", CHINCHILLA), ("epoch", EPOCH_REFIT))}
    warnings = []
    for key in ("approach1", "approach2"):
        if "refused" in fits.get(key, {}):
            warnings.append(f"{key} refused: {fits[key]['refused']}")
    e_band = a3.get("bands", {}).get("E")
    if e_band and e_band[0] <= E_UNIDENTIFIED * e_band[1]:
        warnings.append(f"E unidentified: {a3['params']['E']:.3g} with a band [{e_band[0]:.3g}, {e_band[1]:.3g}] whose "
                        f"low end is at most {E_UNIDENTIFIED:.0%} of its high end (the floor is not pinned down, and the "
                        "exponents move with it)")
    if not fits.get("agreement", {}).get("bands_overlap", True):
        warnings.append("the approaches disagree: their N* exponents' bands do not overlap")
    lr = fits.get("lr_check")
    if lr and "refused" not in lr and not lr["rule_near_optimum"]:
        warnings.append(f"lr rule off its optimum: at {lr['shape']} and {lr['budget_flops']:.3g} FLOPs, "
                        f"{lr['best_multiplier']:g}x the rule's lr is {lr['rule_behind_best_nats']:.4f} nats better, "
                        f"more than the seed spread ({lr['seed_spread_nats']:.4f})")
    rules = fits.get("rules_check")
    if rules and rules["broken"]:
        warnings.append(f"{len(rules['broken'])} of {rules['runs']} runs break the grid's stated rules (built with "
                        f"rules.enforce=false), e.g. {next(iter(rules['broken']))}: "
                        f"{next(iter(rules['broken'].values()))[0]}")
    depth = fits.get("depth_check")
    if depth and depth["depth_shows"]:
        a, b = depth["widest_pair"]
        means = depth["mean_log_residual_by_layers"]
        warnings.append(f"depth shows in the fit: runs of {a} and {b} layers sit {means[str(a)]:+.4f} and "
                        f"{means[str(b)]:+.4f} off the law in log loss, {depth['z']:.1f} standard errors apart")
    ex = fits.get("extrapolation_test", {"refused": "not recorded in this law.json"})
    if "refused" in ex:
        warnings.append(f"extrapolation test refused: {ex['refused']}")
    elif not ex["inside_band"]:
        warnings.append(f"extrapolation test missed: the held-out budget's best run is {ex['error_nats']:+.4f} nats "
                        "off the prediction, outside its interval")
    exp_band = bands.get("exponent")
    if not exp_band:
        warnings.append("no bootstrap band: " + (a3.get("fit", {}).get("bootstrap_note") or "no refit was kept"))
    return {"exponent": co["exponent"], "exponent_band": exp_band, "n_opt_exponent": co.get("a"),
            "n_opt_exponent_band": bands.get("a"),
            "published": {k: {"exponent": v["exponent"], "n_opt_exponent": v["a"]} for k, v in published.items()},
            "paper_alpha": PAPER_ALPHA,
            "paper_alpha_inside_band": bool(exp_band and exp_band[0] <= PAPER_ALPHA <= exp_band[1]),
            "warnings": warnings, "confounds": fits.get("confounds", [])}


def non_embedding_fit(runs: list[Run], delta: float) -> dict:
    """Approach 3 again with N the non-embedding parameters (Kaplan et al.'s count; C = 6 N D on
    it): where embeddings are a large share of N, as on a small tokenizer-bound grid, the exponents
    move. A point fit, beside the total-N fit and its band; never used by the projector."""
    law, fit = fit_chinchilla([r.n_non_embedding for r in runs], [r.d for r in runs], [r.loss for r in runs],
                              delta=delta, resamples=0)
    share = [1 - r.n_non_embedding / r.n for r in runs]
    return {"params": fit.params, "fit": fit.summary(), "compute_optimal": compute_optimal(law),
            "embedding_share_of_n": [min(share), max(share)]}


def in_distribution_fit(runs: list[Run], delta: float) -> dict:
    """Approach 3 again on the loss over text held out from the grid's own training mixture (the
    main loss is on the family's held-out split, so that variants can be read on the law): whether
    the exponents move when the held-out text is the training distribution. A point fit, never used
    by the projector."""
    law, fit = fit_chinchilla([r.n for r in runs], [r.d for r in runs], [r.loss_in_distribution for r in runs],
                              delta=delta, resamples=0)
    return {"params": fit.params, "fit": fit.summary(), "compute_optimal": compute_optimal(law)}


def covariance(refits: list[dict[str, float]]) -> dict | None:
    """The refits' covariance in the fit's own coordinates (log E, log A, log B, a, b): what a
    projection samples a law from jointly (projector.law.covariance), A-a and B-b correlations kept.
    None with too few refits, or when refits put E at 0 (log E unbounded: no normal describes it)."""
    if len(refits) < 2 * len(Chinchilla.COORDINATES):
        return None
    x = np.array([Chinchilla(**r).coordinates() for r in refits])
    if not np.isfinite(x).all():
        return None
    return {"coordinates": list(Chinchilla.COORDINATES), "matrix": np.cov(x, rowvar=False).tolist(),
            "refits": len(refits)}


LINE_POINTS_NEEDED = 4  # a line through the optima has 2 parameters: the 2x rule


def agreement(fits: dict) -> dict:
    """Whether the approaches' N* exponents agree within their bands. An approach whose line rests on
    fewer optima than the 2x rule needs is left out of the check (3 optima for 2 parameters: a band
    from 3 points, whose disagreement says little). (a + b = 1 for every approach by construction,
    C = 6 N D: no check.)"""
    lines = {k: fits[k] for k in ("approach1", "approach2") if "a" in fits.get(k, {})}
    left_out = sorted(k for k, r in lines.items() if r["points"] < LINE_POINTS_NEEDED)
    bands = {k: r.get("a_band") for k, r in lines.items() if k not in left_out}
    bands["approach3"] = fits["approach3"]["compute_optimal_bands"]["a"]
    values = {k: r["a"] for k, r in lines.items()} | {"approach3": fits["approach3"]["compute_optimal"]["a"]}
    known = [b for b in bands.values() if b]
    overlap = bool(known) and max(b[0] for b in known) <= min(b[1] for b in known)
    return {"a": values, "a_bands": bands, "bands_overlap": overlap,
            "left_out": {k: f"{lines[k]['points']} optima for 2 parameters (the 2x rule needs {LINE_POINTS_NEEDED})"
                         for k in left_out}}


def extrapolation_test(runs: list[Run], resamples: int, seed: int, delta: float, level: float) -> dict:
    """Fit approach 3 without the largest budget, predict that budget's best loss."""
    budgets = by_budget(runs)
    top = max(budgets)
    held, rest = budgets[top], [r for c, rs in budgets.items() if c != top for r in rs]
    best = min(_mean_by_size(held), key=lambda t: t[2])
    try:
        law, fit = approach3(rest, resamples, seed, delta)
    except FitError as e:
        return {"refused": str(e)}
    predicted = float(law.loss(best[0], best[1]))
    # a prediction interval for a run, not a band for the mean: each refit's prediction times one
    # residual (log measured - log fitted) of the runs fitted, drawn at random
    resid = np.log([r.loss for r in rest]) - np.log([float(law.loss(r.n, r.d)) for r in rest])
    noise = np.exp(np.random.default_rng(seed).choice(resid, len(fit.bootstrap)))
    means = [float(Chinchilla(**b).loss(best[0], best[1])) for b in fit.bootstrap]
    band = _band([m * e for m, e in zip(means, noise)], level)
    return {"held_out_budget_flops": top, "runs_fitted": len(rest), "best_run": {"n": best[0], "d": best[1]},
            "measured_loss": best[2], "predicted_loss": predicted, "error_nats": predicted - best[2],
            "band": band, "band_kind": "prediction interval: bootstrap refits x a resampled residual of the runs fitted",
            "mean_band": _band(means, level),  # the refits alone: where the law's mean lies, not a run
            "inside_band": bool(band and band[0] <= best[2] <= band[1]), "fit": fit.summary()}
