"""``meekbench fit-law``: the compute-optimal law of an IsoFLOP grid, fitted three ways.

Following Hoffmann et al. (2022), re-done by Besiroglu et al. (2024):

- Approach 1, the envelope: per budget, the run (mean over seeds) with the lowest loss gives
  N*(C) and D*(C); a line in log-log through them gives N* ~ C^a1, D* ~ C^b1. Only final losses
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
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from harness.config import LawFitConfig
from harness.projector.fit import FitError, FitResult, fit_chinchilla
from harness.projector.laws import Chinchilla, ComputeLaw

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    name: str
    budget: float  # the budget it was sized for (groups the IsoFLOP curve)
    flops: float  # exact
    n: float
    d: float
    loss: float
    seed: int = 0


def load_grid(path: Path) -> tuple[dict, list[Run]]:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `meekbench build-grid` first")
    meta = json.loads(path.read_text())
    runs = [Run(r["name"], r["budget_flops"], r["flops"], r["params"], r["tokens"], r["heldout_loss_nats"], r["seed"])
            for r in meta["runs"]]
    return meta, runs


def _budgets(runs: list[Run]) -> dict[float, list[Run]]:
    out: dict[float, list[Run]] = {}
    for r in runs:
        out.setdefault(r.budget, []).append(r)
    return dict(sorted(out.items()))


def _loglog_slope(x, y) -> tuple[float, float]:
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
    for c, rs in _budgets(runs).items():
        n, d, loss = min(_mean_by_size(rs), key=lambda t: t[2])
        optima.append({"budget_flops": c, "n_opt": n, "d_opt": d, "loss": loss})
    return _exponents(optima, "best run per budget")


def parabolas(runs: list[Run]) -> dict:
    """Approach 2: a parabola in log N per budget; its vertex is the budget's optimum. A budget
    whose loss is not convex in log N has no interior optimum and is left out, with the reason."""
    optima, excluded = [], []
    for c, rs in _budgets(runs).items():
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
    if len(optima) < 2:
        raise FitError(f"a line through the optima needs 2 budgets, got {len(optima)}")
    c = [o["budget_flops"] for o in optima]
    a, _ = _loglog_slope(c, [o["n_opt"] for o in optima])
    b, _ = _loglog_slope(c, [o["d_opt"] for o in optima])
    return {"how": how, "optima": optima, "a": a, "b": b, "a_plus_b": a + b, "points": len(optima), "dof": len(optima) - 2,
            "note": (f"{len(optima)} optima for 2 parameters per line: below the 2x rule; a check on approach 3, "
                     "not used by the projector") if len(optima) < 4 else ""}


def compute_optimal(law: Chinchilla) -> dict:
    """N* ~ C^a, D* ~ C^b and L(C) = E + G C^-gamma along C = 6ND."""
    cl: ComputeLaw = law.compute_optimal()
    return {"a": law.b / (law.a + law.b), "b": law.a / (law.a + law.b), "E": cl.L0, "G": cl.A, "exponent": cl.alpha}


def _band(values, level: float) -> list[float] | None:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if v.size < 2:
        return None
    lo = (1 - level) / 2
    return [float(np.quantile(v, lo)), float(np.quantile(v, 1 - lo))]


def _stratified_bootstrap(runs: list[Run], fit, resamples: int, seed: int) -> tuple[list[dict], int]:
    """Refit on runs resampled with replacement within each budget; failed refits are not kept."""
    rng = np.random.default_rng(seed)
    groups = list(_budgets(runs).values())
    kept = []
    for _ in range(resamples):
        sample = [g[i] for g in groups for i in rng.integers(0, len(g), len(g))]
        try:
            kept.append(fit(sample))
        except FitError:
            continue
    return kept, resamples


# Every bootstrap refit starts from the full-data optimum and from this grid of its own (2 values
# per parameter: log E, log A, log B, alpha, beta): a full fit from the 108-start grid takes ~5 s
# here, so 100 refits from it would take ~10 minutes per fit on 2 cores.
REFIT_STARTS = [list(x) for x in itertools.product([-1.0, 1.0], [2.0, 8.0], [2.0, 8.0], [0.1, 0.5], [0.1, 0.5])]


def approach3(runs: list[Run], resamples: int, seed: int, delta: float) -> tuple[Chinchilla, FitResult]:
    return fit_chinchilla([r.n for r in runs], [r.d for r in runs], [r.loss for r in runs], delta=delta,
                          resamples=resamples, seed=seed, refit_starts=REFIT_STARTS)


def fit_grid(runs: list[Run], resamples: int = 100, seed: int = 0, delta: float = 1e-3, level: float = 0.9) -> dict:
    """All three approaches with their bands, the agreement check and the extrapolation test."""
    out: dict = {"runs": len(runs), "level": level,
                 "flops_range": [min(r.flops for r in runs), max(r.flops for r in runs)]}
    for key, fn in (("approach1", envelope), ("approach2", parabolas)):
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
                        "compute_optimal_draws": [{k: d[k] for k in ("E", "G", "exponent")} for d in draws]}
    out["agreement"] = agreement(out)
    out["extrapolation_test"] = extrapolation_test(runs, max(resamples // 2, 0), seed, delta, level)
    return out


def agreement(fits: dict) -> dict:
    """Whether the approaches' N* exponents agree within their bands, and whether a + b is near 1."""
    bands = {k: fits[k].get("a_band") for k in ("approach1", "approach2") if "a" in fits.get(k, {})}
    bands["approach3"] = fits["approach3"]["compute_optimal_bands"]["a"]
    values = {k: (fits[k]["a"] if k != "approach3" else fits[k]["compute_optimal"]["a"]) for k in bands}
    known = [b for b in bands.values() if b]
    overlap = bool(known) and max(b[0] for b in known) <= min(b[1] for b in known)
    sums = {k: fits[k]["a_plus_b"] for k in ("approach1", "approach2") if "a_plus_b" in fits.get(k, {})}
    return {"a": values, "a_bands": bands, "bands_overlap": overlap, "a_plus_b": sums,
            "a_plus_b_near_1": all(abs(s - 1) < 0.15 for s in sums.values()),
            "note": "a + b = 1 when C is proportional to N D; the budgets' exact FLOPs bend it where attention "
                    "and the output layer are a large share"}


def extrapolation_test(runs: list[Run], resamples: int, seed: int, delta: float, level: float) -> dict:
    """Fit approach 3 without the largest budget, predict that budget's best loss."""
    budgets = _budgets(runs)
    top = max(budgets)
    held, rest = budgets[top], [r for c, rs in budgets.items() if c != top for r in rs]
    best = min(_mean_by_size(held), key=lambda t: t[2])
    try:
        law, fit = approach3(rest, resamples, seed, delta)
    except FitError as e:
        return {"refused": str(e)}
    predicted = float(law.loss(best[0], best[1]))
    draws = [float(Chinchilla(**b).loss(best[0], best[1])) for b in fit.bootstrap]
    band = _band(draws, level)
    return {"held_out_budget_flops": top, "runs_fitted": len(rest), "best_run": {"n": best[0], "d": best[1]},
            "measured_loss": best[2], "predicted_loss": predicted, "error_nats": predicted - best[2],
            "band": band, "inside_band": bool(band and band[0] <= best[2] <= band[1]), "fit": fit.summary()}


def _plots(runs: list[Run], fits: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for c, rs in _budgets(runs).items():
        pts = ax.scatter([r.n for r in rs], [r.loss for r in rs], s=18, label=f"C = {c:.2g}")
        opt = next((o for o in fits.get("approach2", {}).get("optima", []) if o["budget_flops"] == c), None)
        if opt:
            x = np.linspace(np.log(min(r.n for r in rs)), np.log(max(r.n for r in rs)), 50)
            p0, p1, p2 = opt["parabola"]
            ax.plot(np.exp(x), p0 + p1 * x + p2 * x**2, color=pts.get_facecolor()[0], lw=1)
            ax.scatter([opt["n_opt"]], [opt["loss"]], marker="*", s=80, color=pts.get_facecolor()[0])
    ax.set(xscale="log", xlabel="parameters N (total)", ylabel="held-out loss (nats/token)",
           title="IsoFLOP curves with fitted parabolas (stars: vertices)")
    written.append(_save(fig, ax, out / "isoflop.png"))

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    budgets = list(_budgets(runs))
    cs = np.geomspace(min(budgets) / 3, max(budgets) * 3, 50)
    for key, label in (("approach1", "1: envelope"), ("approach2", "2: parabolas")):
        res = fits.get(key, {})
        if "optima" in res:
            c = [o["budget_flops"] for o in res["optima"]]
            n = [o["n_opt"] for o in res["optima"]]
            line = ax.scatter(c, n, s=20)
            a, k = _loglog_slope(c, n)
            ax.plot(cs, np.exp(k) * cs**a, color=line.get_facecolor()[0], lw=1, label=f"{label}: a = {a:.3f}")
    law = Chinchilla(**fits["approach3"]["params"])
    ax.plot(cs, law.n_opt(cs), "k--", lw=1, label=f"3: L(N, D) fit: a = {fits['approach3']['compute_optimal']['a']:.3f}")
    ax.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel="compute-optimal N*",
           title="N*(C) by approach")
    written.append(_save(fig, ax, out / "n_opt.png"))

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    resid = [np.log(law.loss(r.n, r.d)) - np.log(r.loss) for r in runs]
    ax.scatter([r.flops for r in runs], resid, s=18)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel="run FLOPs", ylabel="log predicted - log measured loss",
           title="Approach 3: residuals of the L(N, D) fit")
    written.append(_save(fig, ax, out / "residuals.png", legend=False))
    return written


def _save(fig, ax, path: Path, legend: bool = True) -> str:
    import matplotlib.pyplot as plt

    if legend:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _fmt_band(x, band, fmt=".4f") -> str:
    return f"{x:{fmt}}" + (f" [{band[0]:{fmt}}, {band[1]:{fmt}}]" if band else " (no band)")


def _markdown(meta: dict, fits: dict) -> str:
    lv = int(fits["level"] * 100)
    a3 = fits["approach3"]
    co, cob = a3["compute_optimal"], a3["compute_optimal_bands"]
    lines = [f"# Measured compute-optimal law: grid `{meta['grid']}`", "",
             f"{fits['runs']} runs, FLOPs {fits['flops_range'][0]:.3g} to {fits['flops_range'][1]:.3g} "
             f"({np.log10(fits['flops_range'][1] / fits['flops_range'][0]):.2f} decades); text: {meta['text']} "
             f"({meta['train_tokens']} training tokens, sha256 {meta['text_sha256'][:12]}), most epochs "
             f"{max(r['epochs'] for r in meta['runs']):.2f}. Bands: {lv}% bootstrap over runs.", "",
             "| approach | N* ~ C^a | D* ~ C^b | a + b | note |", "|---|---|---|---|---|"]
    for key, label in (("approach1", "1: envelope"), ("approach2", "2: parabolas")):
        r = fits[key]
        if "refused" in r:
            lines.append(f"| {label} | refused | | | {r['refused']} |")
        else:
            lines.append(f"| {label} | {_fmt_band(r['a'], r['a_band'])} | {_fmt_band(r['b'], r['b_band'])} | "
                         f"{r['a_plus_b']:.3f} | {r['note']} (kept {r['bootstrap_kept']}/{r['bootstrap_attempted']}) |")
    fit = a3["fit"]
    lines.append(f"| 3: L(N, D) | {_fmt_band(co['a'], cob['a'])} | {_fmt_band(co['b'], cob['b'])} | 1 (C = 6ND) | "
                 f"{fit['n_points']} runs, {fit['dof']} dof, converged {fit['converged']}, bootstrap kept "
                 f"{fit['bootstrap_kept']}/{fit['bootstrap_attempted']} |")
    p, b = a3["params"], a3["bands"]
    lines += ["", "Approach 3 parameters: " + ", ".join(f"{k} = {_fmt_band(v, b[k], '.4g')}" for k, v in p.items()),
              "", f"Compute-optimal law: L(C) = {co['E']:.4g} + {co['G']:.4g} C^-{co['exponent']:.4f}; exponent "
              f"alpha beta / (alpha + beta) = {_fmt_band(co['exponent'], cob['exponent'])}.", ""]
    ag = fits["agreement"]
    lines.append(f"Agreement: N* exponents {', '.join(f'{k} {v:.3f}' for k, v in ag['a'].items())}; bands overlap: "
                 f"{ag['bands_overlap']}; a + b near 1: {ag['a_plus_b_near_1']} ({ag['note']}).")
    ex = fits["extrapolation_test"]
    if "refused" in ex:
        lines.append(f"Extrapolation test: refused ({ex['refused']}).")
    else:
        lines.append(f"Extrapolation test: fitted without the largest budget ({ex['held_out_budget_flops']:.3g} "
                     f"FLOPs, {ex['runs_fitted']} runs), approach 3 predicts its best run at "
                     f"{_fmt_band(ex['predicted_loss'], ex['band'])} nats against {ex['measured_loss']:.4f} measured: "
                     f"error {ex['error_nats']:+.4f} nats, {'inside' if ex['inside_band'] else 'outside'} the band.")
    return "\n".join(lines + ["", "![IsoFLOP curves](isoflop.png)", "", "![N*(C)](n_opt.png)", "",
                              "![residuals](residuals.png)", ""])


def fit_law(cfg: LawFitConfig) -> str:
    meta, runs = load_grid(Path(cfg.grid_dir) / "grid.json")
    fits = fit_grid(runs, cfg.resamples, cfg.seed, cfg.huber_delta, cfg.level)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"grid": meta["grid"], "grid_dir": str(cfg.grid_dir), "text": meta["text"],
               "text_sha256": meta["text_sha256"], "train_tokens": meta["train_tokens"],
               "max_epochs_seen": max(r["epochs"] for r in meta["runs"]), "flops_rule": meta["flops_rule"],
               "n_is": "total parameters (embeddings tied)", **fits,
               "fitted_runs": [asdict(r) for r in runs]}  # the runs fitted, so the law can be drawn on its own
    (out / "law.json").write_text(json.dumps(payload, indent=1, default=float))
    (out / "law.md").write_text(_markdown(meta, fits))
    _plots(runs, fits, out)
    return f"law written to {out}/ (law.json, law.md, isoflop.png, n_opt.png, residuals.png)"
