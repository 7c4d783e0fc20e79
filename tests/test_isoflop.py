"""The IsoFLOP fits (harness/projector/isoflop.py) recover a known law from a grid like the real one."""
import numpy as np
import pytest

from harness.projector.fit import FitError
from harness.projector.grid_runs import Run
from harness.projector.isoflop import envelope, fit_grid, parabolas
from harness.projector.laws import Chinchilla

TRUE = Chinchilla(E=2.5, A=150.0, B=400.0, a=0.4, b=0.38)  # losses 4.4-6 nats on this grid, as measured
# The real grid's shape: total parameters of the size ladder, 3 budgets, 5 sizes each, 2 seeds at the smallest.
LADDER = {"g00": 36144, "g0": 56712, "g1": 78944, "g2": 102840, "g3": 158448, "g4": 237888, "g5": 330640,
          "g6": 436704, "g7": 556704, "g8": 902016, "g9": 1327200}
BUDGETS = {3.5e11: ["g00", "g0", "g1", "g2", "g3"], 2.0e12: ["g0", "g1", "g2", "g3", "g4"],
           1.2e13: ["g3", "g4", "g5", "g7", "g8"]}
NOISE = 0.012  # relative; the measured seed-to-seed spread at the smallest budget is 0.2-1.4%


def grid_runs(rng, law=TRUE, noise=NOISE):
    runs = []
    for c, shapes in BUDGETS.items():
        for seed in ([0, 1] if c == min(BUDGETS) else [0]):
            for s in shapes:
                n = LADDER[s]
                d = c / (6 * n)
                loss = float(law.loss(n, d) * np.exp(rng.normal(0, noise)))
                runs.append(Run(f"{s}-{c:.1e}-s{seed}", c, 6 * n * d, n, d, loss, seed))
    return runs


@pytest.fixture(scope="module")
def fitted():
    # One noisy draw. Over 6 other draws (seeds 50-55) all five 90% bands covered their true values
    # in 5 and the compute exponent's band in 6; coverage over many draws is too slow to test here.
    runs = grid_runs(np.random.default_rng(4))
    return runs, fit_grid(runs, resamples=30, seed=0, level=0.9)


@pytest.mark.slow
def test_noise_free_grid_gives_the_true_optima_and_law():
    runs = grid_runs(np.random.default_rng(0), noise=0.0)
    fits = fit_grid(runs, resamples=0)
    p = fits["approach3"]["params"]
    for k, v in {"E": TRUE.E, "A": TRUE.A, "B": TRUE.B, "a": TRUE.a, "b": TRUE.b}.items():
        assert p[k] == pytest.approx(v, rel=2e-3), k
    assert fits["approach3"]["fit"]["converged"]
    truth = TRUE.b / (TRUE.a + TRUE.b)  # N* ~ C^(beta / (alpha + beta))
    assert fits["approach3"]["compute_optimal"]["a"] == pytest.approx(truth, rel=1e-3)
    assert fits["approach2"]["a"] == pytest.approx(truth, abs=0.1)  # 5 sizes per budget: a coarse vertex
    ex = fits["extrapolation_test"]
    assert abs(ex["error_nats"]) < 1e-3


@pytest.mark.slow
def test_every_generating_parameter_lies_in_its_band_at_the_measured_noise(fitted):
    """On a grid of the real one's shape with noise like the measured seed-to-seed spread (1.2%),
    each 90% band holds its true value, and the compute exponent's band holds the true exponent.
    A first grid whose sizes all sat at or above each budget's optimum failed this: its bands
    missed E (fitted 0.98 vs 2.5), alpha and the compute exponent (0.109 [0.088, 0.173] vs 0.195);
    the grid now brackets each optimum (conf/grid/tiny.yaml)."""
    runs, fits = fitted
    a3 = fits["approach3"]
    assert a3["fit"]["bootstrap_attempted"] == 30 and a3["fit"]["bootstrap_kept"] >= 24
    for k, v in {"E": TRUE.E, "A": TRUE.A, "B": TRUE.B, "a": TRUE.a, "b": TRUE.b}.items():
        lo, hi = a3["bands"][k]
        assert lo <= v <= hi, (k, v, lo, hi)
    lo, hi = a3["compute_optimal_bands"]["exponent"]
    assert lo <= TRUE.compute_optimal().alpha <= hi, (lo, hi)


@pytest.mark.slow
def test_bands_are_as_wide_as_the_spread_over_fresh_noise(fitted):
    runs, fits = fitted
    a3 = fits["approach3"]
    # the band's width against the spread of fits to fresh noise on the same grid (each fitted from
    # the refits' own start grid, as the bootstrap refits are)
    from harness.projector.fit import fit_chinchilla
    from harness.projector.isoflop import REFIT_STARTS

    def fresh_fit(i):
        rs = grid_runs(np.random.default_rng(100 + i))
        return fit_chinchilla([r.n for r in rs], [r.d for r in rs], [r.loss for r in rs], resamples=0,
                              starts=REFIT_STARTS)[0].a

    fresh = [fresh_fit(i) for i in range(12)]
    lo, hi = a3["bands"]["a"]
    spread = np.quantile(fresh, 0.95) - np.quantile(fresh, 0.05)
    assert 0.3 < (hi - lo) / spread < 3.0, ((hi - lo), spread)


@pytest.mark.slow
def test_approaches_report_their_dof_and_the_agreement_check(fitted):
    _, fits = fitted
    for key in ("approach1", "approach2"):
        assert fits[key]["points"] == 3 and fits[key]["dof"] == 1 and "below the 2x rule" in fits[key]["note"]
        assert fits[key]["bootstrap_attempted"] == 30
    ag = fits["agreement"]
    assert set(ag["a"]) == {"approach1", "approach2", "approach3"} and isinstance(ag["bands_overlap"], bool)
    assert set(ag["left_out"]) == {"approach1", "approach2"}  # 3 optima each: not in the check


def test_approaches_1_and_2_read_compute_as_6_n_d_so_a_plus_b_is_1_by_construction():
    """Issue 26 item 9: approaches 1-2 regressed N* and D* on the nominal budget while approach 3
    reads C = 6ND, so their "a + b near 1" check measured only the gap between the two compute
    axes. Here each budget's runs train on fewer tokens than 6ND = budget would give (more so at
    larger budgets, as the exact FLOPs' attention and output terms take their share): read on 6 N* D*
    the exponents sum to 1 exactly; on the nominal budget they summed to 0.95."""
    runs = []
    for c, shapes in BUDGETS.items():
        short = (c / min(BUDGETS)) ** -0.05
        for s in shapes:
            n = LADDER[s]
            d = c / (6 * n) * short
            runs.append(Run(f"{s}-{c:.1e}", c, 6 * n * d, n, d, float(TRUE.loss(n, d))))
    for fit in (envelope(runs), parabolas(runs)):
        assert fit["a_plus_b"] == pytest.approx(1.0, abs=1e-9)
        assert fit["a"] > 0.3


def test_a_budget_without_an_interior_optimum_is_refused_with_the_reason():
    runs = [Run(f"r{i}", 1e12, 1e12, n, 1e12 / (6 * n), 5.0 - 0.1 * i) for i, n in enumerate([1e5, 2e5, 4e5])]
    with pytest.raises(Exception, match="not convex"):
        parabolas(runs)  # one budget, and it has no interior optimum
    with pytest.raises(Exception, match="needs 2 budgets"):
        envelope(runs)  # one budget: no line through optima


@pytest.mark.slow
def test_the_extrapolation_test_predicts_the_held_out_budget(fitted):
    _, fits = fitted
    ex = fits["extrapolation_test"]  # approach 3 without the largest budget, 15 refits
    assert ex["held_out_budget_flops"] == max(BUDGETS) and ex["runs_fitted"] == 15
    assert ex["error_nats"] == pytest.approx(ex["predicted_loss"] - ex["measured_loss"])
    lo, hi = ex["band"]
    assert ex["inside_band"] == (lo <= ex["measured_loss"] <= hi) and abs(ex["error_nats"]) < 0.5
    # a prediction interval for one run (issue 26 item 9: it was the band of the law's mean, which is
    # now reported beside it): the run's own noise on top of the refits' spread makes it wider
    mean_lo, mean_hi = ex["mean_band"]
    assert mean_lo < ex["predicted_loss"] < mean_hi and hi - lo > 1.2 * (mean_hi - mean_lo)


@pytest.mark.slow
def test_fit_law_fits_a_table_of_published_runs_and_writes_the_laws_covariance(tmp_path):
    """`meekbench fit-law table=...`: a published grid (N, C, loss; no budgets) through the same
    approach-3 fit; the IsoFLOP approaches and the extrapolation test are refused for want of
    budgets, and the refits' covariance (what projector.law.covariance takes) comes with it."""
    import json

    import pandas as pd

    from harness.config import LawFitConfig
    from harness.projector.fit_law import fit_law

    rng = np.random.default_rng(3)
    n = np.exp(rng.uniform(np.log(1e4), np.log(1e7), 40))
    d = np.exp(rng.uniform(np.log(1e6), np.log(1e9), 40))
    loss = TRUE.loss(n, d) * np.exp(rng.normal(0, 0.002, 40))
    table = tmp_path / "published.csv"
    pd.DataFrame({"N": n, "C": 6 * n * d, "loss": loss}).to_csv(table, index=False)
    fit_law(LawFitConfig(table=str(table), grid_name="published", out_dir=str(tmp_path / "law"), resamples=12))
    law = json.loads((tmp_path / "law" / "law.json").read_text())
    assert law["grid"] == "published" and law["table"] == str(table)
    a3 = law["approach3"]
    for k in ("a", "b"):
        assert a3["params"][k] == pytest.approx(getattr(TRUE, k), abs=0.03)
    assert a3["fit"]["design_points"] == 40 and a3["fit"]["dof"] == 35
    cov = np.array(a3["covariance"]["matrix"])
    assert cov.shape == (5, 5) and np.allclose(cov, cov.T) and (np.diag(cov) > 0).all()
    assert a3["covariance"]["coordinates"] == ["log_E", "log_A", "log_B", "a", "b"]
    assert "no IsoFLOP budget" in law["approach1"]["refused"] and "refused" in law["extrapolation_test"]
    assert "published runs from the table" in (tmp_path / "law" / "law.md").read_text()
    with pytest.raises(FitError, match=r"has columns \[.params., .loss.\]; it needs N, D or C"):
        bad = tmp_path / "bad.csv"
        pd.DataFrame({"params": n, "loss": loss}).to_csv(bad, index=False)
        fit_law(LawFitConfig(table=str(bad), out_dir=str(tmp_path / "bad")))
