"""The systematic term of a law read beyond its runs, and the refusal of a law that failed its
out-of-sample test: each law draw's compute exponent scaled by exp(N(0, sigma)), the loss held where
the law's runs end, with sigma from the extrapolation error measured on published runs
(harness/projector/calibration.py) at the law's span and the decades read, widened by a failed
extrapolation test's miss (docs/projection.md, "How far a law reads")."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.config import ProjectorConfig
from harness.projector import calibration
from harness.projector import gap as G
from harness.projector.laws import ComputeLaw


class ProjectionRefused(Exception):
    """A law that failed its out-of-sample test is not projected unless forced (projector.force_fits)."""


# A drawn compute exponent is held at this value: L(C)'s exponent ab/(a+b) exceeds 1 only if both a and
# b exceed 2, beyond Hoffmann et al.'s start grid (and such a draw overflows float range at the pivot).
# Holding the tail keeps the draws' order, so a 5-95% band is unchanged while under 5% are held. The low
# tail is held too (a flat law: an exponent of 1e-6 moves the loss by under 0.01% over 100 decades),
# so a forced law's very wide term cannot underflow to an exponent of 0.
MAX_DRAWN_EXPONENT = 1.0
MIN_DRAWN_EXPONENT = 1e-6


def drawn(draws: list[ComputeLaw], n: int, pivot: float, sigma: float,
          seed: int) -> tuple[list[ComputeLaw], list[int], int]:
    """``n`` law draws (``draws`` cycled), each exponent scaled by exp(N(0, sigma)), the loss held
    where the law's data end (the exponent pivots there); the index of the draw each came from (its
    N-D allocation, which the systematic term leaves alone: it moves L(C) only); and how many
    exponents were held at MIN_ or MAX_DRAWN_EXPONENT."""
    rng = np.random.default_rng(seed + 1)
    low, high = math.log(MIN_DRAWN_EXPONENT), math.log(MAX_DRAWN_EXPONENT)
    out, picks, held = [], [], 0
    for i, z in enumerate(rng.standard_normal(n)):
        d = draws[i % len(draws)]
        log_alpha = math.log(d.alpha) + sigma * z  # in logs: a forced law's sigma can overflow exp
        if not low <= log_alpha <= high:
            log_alpha, held = min(max(log_alpha, low), high), held + 1
        alpha = math.exp(log_alpha)
        out.append(ComputeLaw(d.L0, d.A * pivot ** (alpha - d.alpha), alpha))
        picks.append(i % len(draws))
    return out, picks, held


def sigma(p: ProjectorConfig, alpha: float, flops_range: tuple[float, float], c0: float,
          growth: G.Growth, widen: float = 1.0) -> tuple[float, str]:
    """sigma on the log exponent of a law read beyond its runs, and its source: the extrapolation error
    measured on published runs at the law's span and the decades between its runs' top and the
    frontier's compute at t* (where the headline's first number is read), times ``widen``; or
    projector.law.transfer_systematic."""
    if p.law.transfer_systematic is not None:
        value, note = p.law.transfer_systematic, p.law.transfer_systematic_source
    else:
        t_star = max(G.peak_time_closed_form(alpha, growth, p.start_ratio), 0.0)
        # in logs: a small exponent's t* puts the frontier's compute beyond float range
        decades = (math.log10(p.start_ratio * c0) + t_star * math.log10(growth.g_h * growth.g_alg * growth.g_i)
                   - math.log10(flops_range[1]))
        cal = calibration.load()
        span = math.log10(flops_range[1] / flops_range[0])
        value, note = cal.sigma(span, decades), cal.note(span, decades) + " (to the frontier's compute at t*; " \
            "numbers read further, closing times and the horizon's, would carry more)"
    if widen != 1.0:
        note += f"; x{widen:.3g} for the failed extrapolation test"
    return value * widen, note


def mixture(alpha: float, mixture_alpha: float | None) -> tuple[float, str]:
    """The data-mixture confound as a term on the log exponent (issue 42 item 5): a CPU grid trains
    mostly on other text than the family it is scored on, and the same runs scored on text held out
    from their own training mixture give another exponent. Their log ratio is how far the choice of
    held-out text alone moves the exponent; it joins the extrapolation term in quadrature. (0, "")
    when the law has no in-distribution fit."""
    if not mixture_alpha or mixture_alpha <= 0 or alpha <= 0:
        return 0.0, ""
    m = abs(math.log(mixture_alpha / alpha))
    return m, (f"; with the data mixture's {m:.3g} in quadrature (|ln| of the grid's exponent on text held out "
               f"from its own training mixture, {mixture_alpha:.4g}, over {alpha:.4g} on the family's split)")


def held_note(held: int, n: int) -> str:
    return (f"; {held} of {n} drawn exponents held at {MIN_DRAWN_EXPONENT:g} or {MAX_DRAWN_EXPONENT:g} (an exponent "
            "above 1 needs both of the law's N and D exponents above 2)")


def widening(test: dict[str, Any], path: str, force: bool) -> tuple[float, str, str]:
    """How much a failed extrapolation test widens the systematic term, the miss over the distance from
    the prediction to its interval's end on the miss's side (1: passed, or not run), with the test's
    provenance source and note. Without ``force`` such a law is refused (ProjectionRefused)."""
    if not test or "refused" in test:
        return 1.0, "unavailable", test.get("refused", "not in the law's file")
    pred, measured, (lo, hi) = test["predicted_loss"], test["measured_loss"], test["band"]
    said = (f"fitted without its largest budget ({test['held_out_budget_flops']:.3g} FLOPs), the law predicts its "
            f"best run at {pred:.4f} [{lo:.4f}, {hi:.4f}] nats against {measured:.4f} measured "
            f"({test['error_nats']:+.4f})")
    if test["inside_band"]:
        return 1.0, "measured", f"passed: {said}"
    if not force:
        raise ProjectionRefused(
            f"the measured law at {path} failed its out-of-sample test: {said}, outside its interval. Its "
            "projection would read a law that already misses one budget beyond its runs; projector.force_fits=true "
            "projects it anyway, its systematic term widened by the miss")
    factor = abs(pred - measured) / abs(pred - (lo if measured < lo else hi))
    return factor, "measured", (f"FAILED, projected because projector.force_fits=true: {said}; the systematic term "
                                f"is widened x{factor:.3g} (the miss over the interval's half-width on its side)")
