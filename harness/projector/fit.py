"""Fitting scaling laws and the loss-to-score sigmoid (scipy; no torch).

Laws are fitted as Hoffmann et al. did: a Huber loss on log loss, the prediction written as a
log-sum-exp so every parameter is unconstrained, L-BFGS from a grid of initialisations, and
bootstrap bands from refits on points resampled with replacement. Unlike their fit, every fit
and every refit runs to tight tolerances (default L-BFGS-B tolerances stop early on this loss
scale: the failure Besiroglu et al. 2024 found) from several starts, checks the optimiser's
convergence, and counts its resamples: attempted, converged, kept.
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit, minimize
from scipy.special import huber

from harness.projector.laws import Chinchilla, PowerLaw
from harness.projector.pool import pmap, workers


class FitError(ValueError):
    """Input a fit cannot use (too few points, NaN, non-positive values) or a fit that failed."""


def _check(name: str, values, positive: bool = True) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    bad = ~np.isfinite(arr) | ((arr <= 0) if positive else np.zeros_like(arr, bool))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        need = "finite and > 0" if positive else "finite"
        raise FitError(f"{name}[{i}] = {float(arr[i])!r}: every value must be {need}")
    return arr


def design_units(columns, units=None) -> np.ndarray:
    """Each row's design unit, numbered from 0 in order of first appearance: ``units`` where given
    (clustered rows: a model and its near-identical variants), else its distinct design point (seed
    replicates of one point are one unit). Fits count units, and their bootstraps resample them."""
    keys = list(units) if units is not None else list(zip(*(np.asarray(c, float).tolist() for c in columns)))
    if len(keys) != len(np.asarray(columns[0])):
        raise FitError(f"{len(keys)} design units for {len(np.asarray(columns[0]))} points: one per point")
    index: dict = {}
    return np.array([index.setdefault(k, len(index)) for k in keys], dtype=int)


def _enough(n_design: int, n_params: int, what: str, force: bool) -> str:
    """DESIGN's rule: a fit refuses fewer than twice as many distinct design points as parameters.
    With ``force`` it runs on at least one more than its parameters and says so (the warning
    returned); otherwise FitError with the reason."""
    need = 2 * n_params
    if n_design >= need:
        return ""
    msg = (f"{what} ({n_params} parameters) needs at least {need} distinct design points (twice its parameters), "
           f"got {n_design}")
    if force and n_design > n_params:
        return f"forced below the 2x rule: {msg}; {n_design - n_params} degrees of freedom, no bootstrap band"
    raise FitError(msg + ("; forcing it would fit it anyway, labelled" if not force and n_design > n_params else ""))


@dataclass
class FitResult:
    params: dict[str, float]
    n_points: int
    objective: float
    bootstrap: list[dict[str, float]] = field(default_factory=list)  # one refit per kept resample
    converged: bool = True  # the optimiser reported convergence for the best start
    n_params: int = 0
    design_points: int = 0  # distinct (x) or (N, D): seed replicates counted once
    warning: str = ""  # set when the fit was forced below the 2x rule
    bootstrap_attempted: int = 0
    bootstrap_converged: int = 0  # refits whose optimiser converged (only these are kept)
    bootstrap_note: str = ""  # why no bootstrap was run, when none was
    starts: str = ""  # where the optimiser started
    x_range: tuple[float, float] | None = None  # the span of x the fit saw, where it is read off one axis

    @property
    def dof(self) -> int:
        """Degrees of freedom left after the fit: distinct design points - parameters (replicates
        measure noise, not the curve's shape)."""
        return self.design_points - self.n_params

    def summary(self) -> dict[str, float | int | bool | str]:
        return {"n_points": self.n_points, "design_points": self.design_points, "n_params": self.n_params,
                "dof": self.dof, "warning": self.warning, "converged": self.converged,
                "objective": self.objective, "bootstrap_attempted": self.bootstrap_attempted,
                "bootstrap_converged": self.bootstrap_converged, "bootstrap_kept": len(self.bootstrap),
                "bootstrap_note": self.bootstrap_note, "starts": self.starts}

    def interval(self, name: str, level: float = 0.9) -> tuple[float, float] | None:
        return quantile_ends([b[name] for b in self.bootstrap], level) if self.bootstrap else None


def quantile_ends(values, level: float) -> tuple[float, float]:
    """The central ``level`` interval of ``values`` (linear interpolation). An end that falls on or
    next to an infinite value (a draw that never gets there, a refit whose parameter ran off to
    infinity) is that value: unbounded, where numpy's interpolation gives nan (inf - inf)."""
    v = np.asarray(values, float)
    qs = [(1 - level) / 2, (1 + level) / 2]
    with np.errstate(invalid="ignore"):
        ends = np.quantile(v, qs)
    if np.isnan(ends).any():
        ends = np.where(np.isnan(ends), np.quantile(v, qs, method="inverted_cdf"), ends)
    return float(ends[0]), float(ends[1])


TOLERANCES = {"ftol": 1e-13, "gtol": 1e-10, "maxiter": 10_000, "maxfun": 50_000}


def _minimise(objective, inits, extra_args) -> tuple[np.ndarray, float, bool]:
    """The best of L-BFGS-B runs from every start, to tight tolerances; and whether it converged."""
    best_x, best_f, best_ok = None, np.inf, False
    for x0 in inits:
        res = minimize(objective, np.asarray(x0, float), args=extra_args, method="L-BFGS-B", jac=True,
                       options=TOLERANCES)
        if np.isfinite(res.fun) and res.fun < best_f:
            best_x, best_f, best_ok = res.x, float(res.fun), bool(res.success)
    if best_x is None:
        raise FitError("no initialisation gave a finite objective")
    return best_x, best_f, best_ok


def _chunks(items: list, n: int) -> list[list]:
    """``items`` in ``n`` contiguous runs (in order: the best start of the first run wins a tie, as in one pass)."""
    size = -(-len(items) // max(n, 1))
    return [items[i:i + size] for i in range(0, len(items), size)]


def _best_of(results: list[tuple[np.ndarray, float, bool]]) -> tuple[np.ndarray, float, bool]:
    """The lowest objective of several ``_minimise`` results, the first on a tie (as ``_minimise`` picks)."""
    best = min(results, key=lambda r: r[1])
    if not np.isfinite(best[1]):
        raise FitError("no initialisation gave a finite objective")
    return best


def _bootstrap(units: np.ndarray, resamples: int, seed: int, n_params: int, refit,
               clustered: bool = False, mapper=None) -> tuple[list[dict[str, float]], int, int]:
    """Refits on resamples; kept: those with more distinct design units than parameters whose
    optimiser converged. Returns (kept params, attempted, converged). Rows are resampled (seed
    replicates are independent observations of their design point), or with ``clustered`` whole
    units (correlated rows, such as a model's variants, move together). None with fewer than twice
    as many units as parameters: almost every resample would then be an exact fit or a copy of the
    data, and the band would describe the resampling, not the uncertainty."""
    n_units = int(units.max()) + 1 if units.size else 0
    if n_units < 2 * n_params:
        return [], 0, 0
    rows = [np.flatnonzero(units == u) for u in range(n_units)] if clustered else []
    rng = np.random.default_rng(seed)
    drawn = []
    for _ in range(resamples):
        if clustered:
            idx = np.concatenate([rows[u] for u in rng.integers(0, n_units, n_units)])
        else:
            idx = rng.integers(0, units.size, units.size)
        if len(np.unique(units[idx])) > n_params:  # as many units as parameters: an exact fit, not an estimate
            drawn.append(idx)
    out = [params for params, ok in (mapper or _serial)(refit, drawn) if ok]  # a refit that raised: (None, False)
    return out, resamples, len(out)


def _serial(refit, drawn: list) -> list:
    return [_caught(refit, idx) for idx in drawn]


def _caught(refit, idx) -> tuple:
    try:
        return refit(idx)
    except FitError:
        return None, False


def _refused(n: int, n_params: int) -> str:
    return (f"no bootstrap: {n} distinct design points for {n_params} parameters (it needs at least {2 * n_params})"
            if n < 2 * n_params else "")


# --- L(x) = E + A x^-a ------------------------------------------------------------------------

def _huber_lse(terms: np.ndarray, logy, delta) -> tuple[float, np.ndarray]:
    """Huber loss of logsumexp(terms) - log y, and its derivative by each term at each point (the
    objectives chain it into their exact gradient, so L-BFGS-B can converge tightly without finite
    differences). The log-sum-exp is numpy's, max-shifted: scipy's logsumexp costs ~20x more on
    arrays this small (it dispatches through the array API), and a fit calls this ~10^5 times."""
    top = terms.max(axis=0)
    shifted = np.exp(terms - top)
    total = shifted.sum(axis=0)
    r = top + np.log(total) - logy
    psi = np.clip(r, -delta, delta)  # Huber's derivative
    return float(huber(delta, r).sum()), psi * (shifted / total)  # d logsumexp / d term: its softmax


def _power_obj(theta, logx, logy, delta):
    e, log_a, a = theta
    f, g = _huber_lse(np.array([np.full_like(logx, e), log_a - a * logx]), logy, delta)
    return f, np.array([g[0].sum(), g[1].sum(), -(g[1] * logx).sum()])


def _power_params(theta) -> dict[str, float]:
    e, log_a, a = theta
    return {"E": float(np.exp(e)), "A": float(np.exp(log_a)), "a": float(a)}


def fit_power_law(x, loss, delta: float = 1e-3, resamples: int = 200, seed: int = 0,
                  force: bool = False) -> tuple[PowerLaw, FitResult]:
    """Fit L = E + A x^-a; x is parameters (fixed D) or compute."""
    x, y = _check("x", x), _check("loss", loss)
    if x.shape != y.shape:
        raise FitError(f"x has {x.size} values, loss has {y.size}")
    units = design_units([x])
    distinct = int(units.max()) + 1
    warning = _enough(distinct, 3, "a power law E + A x^-a", force)
    logx, logy = np.log(x), np.log(y)
    e0 = np.log(max(y.min() * 0.5, 1e-3))
    grid = list(itertools.product([e0, np.log(y.min() * 0.9), -2.0], [0.0, 2.0, 5.0, 10.0], [0.05, 0.2, 0.5, 1.0]))
    theta, f, ok = _minimise(_power_obj, grid, (logx, logy, delta))

    def refit(idx):
        t, _, converged = _minimise(_power_obj, [theta, *grid[::8]], (logx[idx], logy[idx], delta))
        return _power_params(t), converged

    boot, attempted, converged = _bootstrap(units, resamples, seed, 3, refit)
    result = FitResult(_power_params(theta), int(x.size), f, boot, ok, 3, distinct, warning, attempted, converged,
                       _refused(distinct, 3))
    p = result.params
    return PowerLaw(E=p["E"], A=p["A"], a=p["a"]), result


# --- L(N, D) = E + A/N^a + B/D^b --------------------------------------------------------------

def _chin_obj(theta, logn, logd, logy, delta):
    e, log_a, log_b, a, b = theta
    f, g = _huber_lse(np.array([np.full_like(logn, e), log_a - a * logn, log_b - b * logd]), logy, delta)
    return f, np.array([g[0].sum(), g[1].sum(), g[2].sum(), -(g[1] * logn).sum(), -(g[2] * logd).sum()])


def _chin_params(theta) -> dict[str, float]:
    return asdict(Chinchilla.from_coordinates(theta))


def _chin_from(starts: list, args: tuple) -> tuple[np.ndarray, float, bool]:
    """``_minimise`` of the Chinchilla objective from ``starts`` (module level: a pool's processes run it)."""
    try:
        return _minimise(_chin_obj, starts, args)
    except FitError:
        return np.zeros(5), np.inf, False


def _chin_refit(idx: np.ndarray, starts: list, args: tuple) -> tuple[dict[str, float] | None, bool]:
    """One bootstrap refit on the rows ``idx`` (None, False when no start gave a finite objective)."""
    logn, logd, logy, delta = args
    try:
        t, _, converged = _minimise(_chin_obj, starts, (logn[idx], logd[idx], logy[idx], delta))
    except FitError:
        return None, False
    return _chin_params(t), converged


def _chin_values(thetas: np.ndarray, logn, logd, logy, delta) -> np.ndarray:
    """The Huber objective at many starts at once (no gradient): the screen of the wide grid."""
    e, log_a, log_b, a, b = (thetas[:, [i]] for i in range(5))
    pred = np.logaddexp(np.logaddexp(e, log_a - a * logn), log_b - b * logd)
    return huber(delta, pred - logy).sum(axis=1)


# Hoffmann et al. 2022 (Appendix D.2) start L-BFGS from a grid over (log E, log A, log B, alpha, beta):
# e in {-1, -0.5, ..., 1}, log A and log B in {0, 5, ..., 25}, alpha and beta in {0, 0.5, ..., 2}
# (4500 starts). A tight L-BFGS-B run takes 6-9 ms on 2 cores (20 points), so all 4500 would take
# ~26 s per fit, and a law makes several (approach 3 on total and non-embedding N, the extrapolation
# test); their grid is screened instead: the objective is evaluated at every start and the fit runs
# from the SCREEN_KEEP best, beside the 108-start grid that lies inside it.
HOFFMANN_STARTS = np.array(list(itertools.product(np.arange(-1.0, 1.01, 0.5), np.arange(0.0, 25.1, 5.0),
                                                  np.arange(0.0, 25.1, 5.0), np.arange(0.0, 2.01, 0.5),
                                                  np.arange(0.0, 2.01, 0.5))))
SCREEN_KEEP = 64
DEFAULT_STARTS = list(itertools.product([-1.0, 0.5, 1.0], [0.0, 5.0, 10.0], [0.0, 5.0, 10.0], [0.1, 0.4], [0.1, 0.4]))


def _screened(args, keep: int = SCREEN_KEEP) -> list[np.ndarray]:
    values = _chin_values(HOFFMANN_STARTS, *args)
    return list(HOFFMANN_STARTS[np.argsort(values, kind="stable")[:keep]])


def fit_chinchilla(n, d, loss, delta: float = 1e-3, resamples: int = 100, seed: int = 0,
                   refit_starts: list | None = None, starts: list | None = None,
                   force: bool = False) -> tuple[Chinchilla, FitResult]:
    """The fit starts from ``starts`` (default: a 108-point grid plus the best SCREEN_KEEP of Hoffmann
    et al.'s 4500 starts, screened by their objective). Each bootstrap refit starts from the full-data
    optimum plus ``refit_starts`` (a grid of its own), or a ninth of the 108-point grid when None."""
    n, d, y = _check("N", n), _check("D", d), _check("loss", loss)
    if not n.shape == d.shape == y.shape:
        raise FitError(f"N, D and loss differ in length: {n.size}, {d.size}, {y.size}")
    units = design_units([n, d])
    distinct = int(units.max()) + 1
    warning = _enough(distinct, 5, "the Chinchilla law L(N, D)", force)
    args = (np.log(n), np.log(d), np.log(y))
    grid = starts or [*DEFAULT_STARTS, *_screened((*args, delta))]
    theta, f, ok = _best_of(pmap(partial(_chin_from, args=(*args, delta)), _chunks(list(grid), workers())))
    refit = partial(_chin_refit, starts=[theta, *(DEFAULT_STARTS[::9] if refit_starts is None else refit_starts)],
                    args=(*args, delta))
    boot, attempted, converged = _bootstrap(units, resamples, seed, 5, refit, mapper=pmap)
    result = FitResult(_chin_params(theta), int(n.size), f, boot, ok, 5, distinct, warning, attempted, converged,
                       _refused(distinct, 5),
                       f"{len(grid)} given starts" if starts else
                       f"{len(DEFAULT_STARTS)}-point grid + the {SCREEN_KEEP} best of Hoffmann et al.'s "
                       f"{len(HOFFMANN_STARTS)} starts by objective")
    return Chinchilla(**result.params), result


# --- score = b + a / (1 + exp(-k (L - x0))) ----------------------------------------------------

@dataclass(frozen=True)
class Sigmoid:
    a: float
    b: float
    k: float
    x0: float

    def score(self, loss):
        return self.b + self.a / (1 + np.exp(-self.k * (np.asarray(loss, float) - self.x0)))


def fit_sigmoid(loss, score, resamples: int = 200, seed: int = 0, floor: float | None = None,
                force: bool = False, clusters=None) -> tuple[Sigmoid, FitResult]:
    """score = b + a / (1 + exp(-k (L - x0))), falling with loss (k <= 0), bounded to [0, 1].

    ``floor``: the task's chance level; b is then fixed there (a model no better than chance
    scores chance, not below it) and the ceiling b + a is at most 1. Without it b and a are fitted
    within [0, 1] and a ceiling above 1 is refused. ``clusters``: each point's design unit (a model for
    its variants, whose losses lie within hundredths of a nat: one point of the curve, not several),
    resampled whole by the bootstrap."""
    x, y = _check("loss", loss), _check("score", score, positive=False)
    if x.shape != y.shape:
        raise FitError(f"loss has {x.size} values, score has {y.size}")
    if floor is not None and not 0 <= floor < 1:
        raise FitError(f"chance level {floor!r}: must be in [0, 1)")
    n_params = 3 if floor is not None else 4
    units = design_units([x], clusters)
    distinct = int(units.max()) + 1 if units.size else 0
    warning = _enough(distinct, n_params, "the loss-to-score sigmoid", force)

    def f(l, a, b, k, x0):
        with np.errstate(over="ignore"):  # exp overflow -> inf -> the sigmoid's 0 limit, which is right
            return b + a / (1 + np.exp(-k * (l - x0)))

    if floor is not None:
        model = lambda l, a, k, x0: f(l, a, floor, k, x0)  # noqa: E731
        lower, upper = [0.0, -np.inf, -np.inf], [1.0 - floor, 0.0, np.inf]
    else:
        model = f
        lower, upper = [0.0, 0.0, -np.inf, -np.inf], [1.0, 1.0, 0.0, np.inf]

    def one(xs, ys):
        span = float(np.clip(ys.max() - ys.min(), 1e-3, upper[0]))
        best, best_err = None, np.inf
        for k0 in (-1.0, -5.0, -20.0):  # score falls as loss rises
            p0 = [span, k0, float(np.median(xs))] if floor is not None else \
                [span, float(np.clip(ys.min(), 0, 1)), k0, float(np.median(xs))]
            try:
                with warnings.catch_warnings(), np.errstate(over="ignore"):
                    # few points: the covariance is often undefined; the bootstrap gives the spread
                    warnings.simplefilter("ignore", OptimizeWarning)
                    p, _ = curve_fit(model, xs, ys, p0=p0, bounds=(lower, upper), maxfev=20000)
            except (RuntimeError, ValueError):
                continue
            err = float(np.sum((model(xs, *p) - ys) ** 2))
            if err < best_err:
                best, best_err = p, err
        if best is None:
            raise FitError("sigmoid fit did not converge")
        params = dict(zip(("a", "k", "x0"), map(float, best))) | {"b": floor} if floor is not None else \
            dict(zip(("a", "b", "k", "x0"), map(float, best)))
        if params["a"] + params["b"] > 1 + 1e-9:
            raise FitError(f"sigmoid ceiling b + a = {params['a'] + params['b']:.4f} is above 1")
        return params, best_err

    params, err = one(x, y)

    def refit(idx):
        return one(x[idx], y[idx])[0], True  # curve_fit raises when it fails

    boot, attempted, converged = _bootstrap(units, resamples, seed, n_params, refit, clustered=clusters is not None)
    result = FitResult(params, int(x.size), err, boot, True, n_params, distinct, warning, attempted, converged,
                       _refused(distinct, n_params), x_range=(float(x.min()), float(x.max())))
    return Sigmoid(**params), result
