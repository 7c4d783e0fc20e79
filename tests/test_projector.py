from dataclasses import replace
import subprocess
import sys

import numpy as np
import pytest

from harness.projector import gap as G
from harness.projector.fit import FitError, fit_chinchilla, fit_power_law, fit_sigmoid
from harness.projector.laws import CHINCHILLA, EPOCH_REFIT, Chinchilla, ComputeLaw, PowerLaw

PAPER = ComputeLaw(L0=1.7, A=1070.0, alpha=0.155)


def test_projector_imports_without_torch():
    code = ("import sys, harness.projector.project, harness.projector.plots; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("growth", [G.Growth(), G.Growth(2.0, 1.3, 2.0), G.Growth(5.0, 1.1, 1.5)])
@pytest.mark.parametrize("law", [PAPER, EPOCH_REFIT.compute_optimal()])
def test_closed_form_peak_is_numerical_argmax(law, growth):
    closed = G.peak_time_closed_form(law.alpha, growth)
    numerical = G.peak_time_numerical(law, 1e21, growth)
    assert closed == pytest.approx(numerical, abs=1e-4)
    t = np.linspace(0, 30, 30001)
    assert t[np.argmax(G.loss_gap(law, 1e21, growth, t))] == pytest.approx(closed, abs=2e-3)


def test_paper_peak_and_independence_of_c0_and_a():
    assert G.peak_time_closed_form(0.155, G.Growth()) == pytest.approx(3.34, abs=0.01)
    other = ComputeLaw(L0=1.7, A=50.0, alpha=0.155)
    assert G.peak_time_numerical(other, 1e18, G.Growth()) == pytest.approx(3.34, abs=0.01)


def test_compute_optimal_derivations_match_design():
    chin = CHINCHILLA.compute_optimal()
    assert chin.alpha == pytest.approx(0.155, abs=0.002) and chin.A == pytest.approx(1070, rel=0.01)
    ep = EPOCH_REFIT.compute_optimal()
    assert ep.alpha == pytest.approx(0.178, abs=0.001) and ep.A == pytest.approx(2708, rel=0.01)
    # the derived L(C) is the minimum of L(N, D) over N with 6ND = C
    c = 1e22
    n = np.logspace(7, 13, 20001)
    assert CHINCHILLA.loss(n, c / (6 * n)).min() == pytest.approx(chin.loss(c), rel=1e-5)


@pytest.mark.slow
def test_power_law_fit_recovers_parameters_inside_band():
    rng = np.random.default_rng(0)
    truth = PowerLaw(E=1.8, A=400.0, a=0.3)
    n = np.logspace(5, 10, 12)
    loss = truth.loss(n) * np.exp(rng.normal(0, 0.005, n.size))
    law, fit = fit_power_law(n, loss, resamples=100)
    for name, true in (("E", 1.8), ("A", 400.0), ("a", 0.3)):
        lo, hi = fit.interval(name, 0.95)
        assert lo <= true <= hi, (name, lo, true, hi)
    assert law.a == pytest.approx(0.3, rel=0.15)
    assert law.invert(law.loss(1e8)) == pytest.approx(1e8, rel=1e-6)


@pytest.mark.parametrize("delta", [1e-3, 10.0], ids=["huber-linear", "huber-quadratic"])
def test_the_fits_exact_gradients_match_finite_differences(delta):
    """L-BFGS-B is handed each objective's own gradient (chained through the log-sum-exp by hand):
    it must be the objective's, on both arms of the Huber loss and where one term dominates."""
    from scipy.optimize import approx_fprime

    from harness.projector import fit as F

    rng = np.random.default_rng(0)
    logn, logd = np.log(rng.uniform(1e5, 1e9, 12)), np.log(rng.uniform(1e7, 1e11, 12))
    logy = np.log(rng.uniform(2.0, 5.0, 12))
    for obj, args, theta in [
            (F._chin_obj, (logn, logd, logy, delta), [0.5, 6.0, 7.0, 0.3, 0.35]),
            (F._chin_obj, (logn, logd, logy, delta), [1.2, 20.0, 12.0, 1.5, 0.6]),  # E dominates
            (F._power_obj, (logn, logy, delta), [0.2, 3.0, 0.25])]:
        theta = np.array(theta)
        numeric = approx_fprime(theta, lambda t: obj(t, *args)[0], 1e-7)
        np.testing.assert_allclose(obj(theta, *args)[1], numeric, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_chinchilla_fit_recovers_parameters():
    rng = np.random.default_rng(1)
    n = np.repeat(np.logspace(6, 10, 6), 4)
    d = np.tile(np.logspace(8, 12, 4), 6)
    loss = CHINCHILLA.loss(n, d) * np.exp(rng.normal(0, 0.002, n.size))
    law, fit = fit_chinchilla(n, d, loss, resamples=30)
    assert law.a == pytest.approx(0.34, abs=0.05) and law.b == pytest.approx(0.28, abs=0.05)
    assert law.E == pytest.approx(1.69, abs=0.1)
    lo, hi = fit.interval("a", 0.99)
    assert lo <= 0.34 <= hi


def test_a_law_fitted_on_every_core_is_the_law_fitted_in_one_process(monkeypatch):
    """harness/projector/pool.py splits the starts and the bootstrap refits over processes: the fit, its
    convergence and every refit are the same numbers as in one process."""
    rng = np.random.default_rng(3)
    n = np.repeat(np.logspace(6, 10, 5), 4)
    d = np.tile(np.logspace(8, 12, 4), 5)
    loss = CHINCHILLA.loss(n, d) * np.exp(rng.normal(0, 0.01, n.size))
    fits = {}
    for workers in ("1", "2"):
        monkeypatch.setenv("MEEKBENCH_FIT_WORKERS", workers)
        law, fit = fit_chinchilla(n, d, loss, resamples=6)
        fits[workers] = (law, fit.objective, fit.converged, fit.bootstrap, fit.bootstrap_converged)
    assert fits["1"] == fits["2"] and len(fits["2"][3]) == 6


def test_the_law_fit_searches_hoffmanns_whole_start_grid():
    """Issue 26 item 9: the fit started only from a 108-point grid with log A, log B <= 10 and
    exponents <= 0.4, narrower than Hoffmann et al.'s 4500 starts (log A, log B to 25, exponents to
    2). Their grid is now screened by objective and the fit also starts from its best: on a law far
    outside the narrow grid the best starts come from the wide one, and the fit recovers the law."""
    from harness.projector import fit as F
    from harness.projector.laws import Chinchilla

    truth = Chinchilla(E=1.2, A=np.exp(20.0), B=np.exp(12.0), a=1.5, b=0.6)
    rng = np.random.default_rng(3)
    n = np.repeat(np.logspace(5, 8, 5), 4)
    d = np.tile(np.logspace(8, 11, 4), 5)
    loss = truth.loss(n, d) * np.exp(rng.normal(0, 0.002, n.size))
    args = (np.log(n), np.log(d), np.log(loss), 1e-3)
    narrow = np.array(F.DEFAULT_STARTS)
    assert F.HOFFMANN_STARTS.shape == (4500, 5) and F.HOFFMANN_STARTS[:, 1].max() == 25 == F.HOFFMANN_STARTS[:, 2].max()
    best = np.array(F._screened(args, keep=8))
    assert (best[:, 1] > narrow[:, 1].max()).all() and (best[:, 3] > narrow[:, 3].max()).all()
    assert F._chin_values(best[:1], *args)[0] < F._chin_values(narrow, *args).min()
    law, fit = fit_chinchilla(n, d, loss, resamples=0)
    assert "4500" in fit.summary()["starts"]
    assert law.a == pytest.approx(1.5, abs=0.05) and law.b == pytest.approx(0.6, abs=0.05)


def test_sigmoid_fit_recovers_parameters():
    rng = np.random.default_rng(2)
    loss = np.linspace(1.5, 5.0, 30)
    true = dict(a=0.7, b=0.25, k=-3.0, x0=3.0)
    score = true["b"] + true["a"] / (1 + np.exp(-true["k"] * (loss - true["x0"]))) + rng.normal(0, 0.005, loss.size)
    sig, fit = fit_sigmoid(loss, score, resamples=50)
    assert sig.a == pytest.approx(0.7, abs=0.05) and sig.b == pytest.approx(0.25, abs=0.03)
    assert sig.k == pytest.approx(-3.0, rel=0.2) and sig.x0 == pytest.approx(3.0, abs=0.1)


def test_a_fit_refuses_fewer_than_twice_as_many_design_points_as_parameters_unless_forced():
    """Issue 26 item 8: DESIGN's 2x rule refused only the bootstrap; the fits ran on 3 (power law),
    6 (Chinchilla) or p + 1 (sigmoid) points, and seed replicates counted as design points."""
    truth = PowerLaw(E=1.8, A=400.0, a=0.3)
    n5 = np.logspace(5, 9, 5)
    with pytest.raises(FitError, match="needs at least 6 distinct design points .* got 5"):
        fit_power_law(n5, truth.loss(n5), resamples=0)
    replicated = np.repeat(np.logspace(5, 9, 3), 2)  # 6 runs, 3 sizes
    with pytest.raises(FitError, match="got 3"):
        fit_power_law(replicated, truth.loss(replicated) * (1 + 1e-3 * np.tile([1, -1], 3)), resamples=0)
    law, fit = fit_power_law(n5, truth.loss(n5), resamples=50, force=True)
    assert law.a == pytest.approx(0.3, rel=1e-3)
    assert fit.dof == 2 and "forced below the 2x rule" in fit.warning and fit.bootstrap == []
    assert "no bootstrap: 5 distinct design points" in fit.bootstrap_note
    with pytest.raises(FitError, match="got 3"):  # forced still needs a degree of freedom
        fit_power_law(n5[:3], truth.loss(n5[:3]), resamples=0, force=True)
    n, d = np.logspace(6, 9, 9), np.logspace(9, 11, 9)
    with pytest.raises(FitError, match="L\\(N, D\\) .* needs at least 10 distinct"):
        fit_chinchilla(n, d, CHINCHILLA.loss(n, d), resamples=0)
    loss = np.linspace(3, 5, 7)
    with pytest.raises(FitError, match="sigmoid .* needs at least 8"):
        fit_sigmoid(loss, 0.25 + 0.5 / (1 + np.exp(3 * (loss - 4))), resamples=0)


def test_a_projection_says_when_the_family_law_is_refused_or_forced():
    from harness.config import ProjectorConfig
    from harness.projector.markdown import headline
    from harness.projector.project import project
    from tests.conftest import record_template

    truth = PowerLaw(E=2.0, A=60.0, a=0.3)
    base = [record_template(f"m{i}", n, float(truth.loss(n))) for i, n in enumerate([1e4, 1e5, 4e5, 1e6])]
    p = ProjectorConfig(name="m", bootstrap=10, monte_carlo=10)
    p.law.source = "measured"
    refused = project(p, base)  # the tiny family's 4 sizes for 3 parameters
    assert refused["inputs"]["law_n"]["source"] == "unavailable"
    assert "needs at least 6 distinct design points" in refused["fit_warnings"][0]
    p.force_fits = True
    forced = project(p, base)
    assert forced["inputs"]["law_n"]["source"] == "measured" and "forced below the 2x rule" in forced["fit_warnings"][0]
    assert any(line.startswith("- Fit warning: family size law: forced below") for line in headline(forced))


@pytest.mark.parametrize("x,y,msg", [
    ([1e6, 1e7], [3.0, 2.8], "at least 6 distinct design points"),
    ([1e6, 1e7, 1e8], [3.0, float("nan"), 2.5], "loss[1]"),
    ([1e6, 1e7, 1e8], [3.0, 0.0, 2.5], "loss[1] = 0.0"),
    ([1e6, -1, 1e8], [3.0, 2.8, 2.5], "x[1] = -1.0"),
])
def test_bad_fit_inputs_are_named(x, y, msg):
    with pytest.raises(FitError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        fit_power_law(x, y, resamples=0)


def test_wald_tokens_and_p_steps():
    e = 0.05
    expected = ((1 - e) * np.log((1 - e) / e) + e * np.log(e / (1 - e))) / 0.1
    assert G.wald_tokens(0.1, e) == pytest.approx(expected)
    assert G.wald_tokens([0.2, 0.1, 0.0], e).tolist()[:2] == pytest.approx([expected / 2, expected])
    assert np.isinf(G.wald_tokens(0.0, e))
    assert G.p_step_success(0.9, 10) == pytest.approx(0.9**10)
    with pytest.raises(ValueError, match="error_rate"):
        G.wald_tokens(0.1, 0.7)
    with pytest.raises(ValueError, match="g_i"):
        G.Growth(g_i=0.9)


def _grid_law(path, resamples=10):
    """A law.json as `meekbench fit-law` writes it, fitted to a synthetic grid (tests/test_isoflop.py)."""
    import json

    from harness.projector.isoflop import fit_grid
    from tests.test_isoflop import grid_runs

    fits = fit_grid(grid_runs(np.random.default_rng(3)), resamples=resamples)
    path.write_text(json.dumps(fits, default=float))
    return fits


@pytest.mark.slow
def test_measured_scenario_uses_the_grid_law_and_says_what_is_measured(tmp_path):
    """A measured projection: the compute-optimal exponent from an IsoFLOP grid's law (carried to the
    paper's L0 and A), its bootstrap as a band, FLOP/$ from probes and price, defaults marked."""
    import json

    from harness.config import ProjectConfig, ProjectorConfig
    from harness.projector.project import write_projection
    from harness.results.store import write_record
    from tests.conftest import record_template

    fits = _grid_law(tmp_path / "law.json")
    truth = PowerLaw(E=2.0, A=60.0, a=0.3)
    for i, n in enumerate([1e4, 3e4, 1e5, 4e5, 1e6, 3e6]):
        write_record(tmp_path, record_template(f"m{i}", n, float(truth.loss(n)), price=2.0))
    cfg = ProjectConfig(projector=ProjectorConfig(name="measured", bootstrap=50), results_dirs=[str(tmp_path)],
                        out_dir=str(tmp_path / "proj"))
    cfg.projector.law.source = "measured"
    cfg.projector.law.measured_path = str(tmp_path / "law.json")
    cfg.projector.flop_per_dollar_from_hardware = True
    out = write_projection(cfg)
    res = json.loads((out / "projection.json").read_text())
    exponent = fits["approach3"]["compute_optimal"]["exponent"]
    assert res["inputs"]["law.alpha"]["source"] == "measured"
    assert res["inputs"]["law.alpha"]["value"] == pytest.approx(exponent)
    assert res["inputs"]["law.L0"]["value"] == cfg.projector.law.L0  # transfer=exponent keeps the paper's scale:
    assert res["frontier_loss"][0] == pytest.approx(  # its L0 and its loss at the starting compute
        cfg.projector.law.L0 + cfg.projector.law.A * res["inputs"]["flop_per_dollar"]["value"] ** -cfg.projector.law.alpha
        * cfg.projector.budget_usd ** -cfg.projector.law.alpha, rel=1e-9)
    assert "transfer=exponent" in res["inputs"]["law.alpha"]["note"]
    assert res["inputs"]["law_n"]["source"] == "measured"  # the family's size law, for multipliers only
    assert res["inputs"]["flop_per_dollar"]["source"] == "measured"
    assert "at an assumed $2.0/h" in res["inputs"]["flop_per_dollar"]["note"]  # the price is not measured
    assert res["inputs"]["flop_per_dollar"]["value"] == pytest.approx(1e11 * 0.4 * 3600 / 2.0)  # 40% utilisation
    assert res["inputs"]["g_i"]["source"] == "default"
    assert res["t_star_years"] == pytest.approx(G.peak_time_closed_form(exponent, G.Growth()))
    assert "law (bootstrap refits)" in res["uncertainty"]["sampled"]
    assert (out / "gap.png").exists() and (out / "projection.md").exists()
    e = res["extrapolation"]  # the grid's FLOP span; the projection reads far beyond it
    assert e["fitted_compute_flops"] == pytest.approx(fits["flops_range"]) and e["transfer"] == "exponent"
    assert e["decades_beyond_data"] == pytest.approx(np.log10(e["read_to_flops"] / fits["flops_range"][1]))
    assert "decades beyond its data" in (out / "projection.md").read_text()
    assert "Why t*'s band is this wide" in (out / "projection.md").read_text()


def test_without_a_grid_law_the_measured_scenario_falls_back_and_says_so(tmp_path, caplog):
    import json

    from harness.config import ProjectConfig, ProjectorConfig
    from harness.projector.project import write_projection
    from harness.results.store import write_record
    from tests.conftest import record_template

    write_record(tmp_path, record_template("only", 1e5, 4.0))
    cfg = ProjectConfig(projector=ProjectorConfig(name="measured", bootstrap=10), results_dirs=[str(tmp_path)],
                        out_dir=str(tmp_path / "proj"))
    cfg.projector.law.source = "measured"
    cfg.projector.law.measured_path = str(tmp_path / "no-grid" / "law.json")
    cfg.projector.law.alpha = 0.17  # the fallback is the scenario's configured law, not a hidden constant
    res = json.loads((write_projection(cfg) / "projection.json").read_text())
    assert res["inputs"]["law.alpha"]["source"] == "default" and res["inputs"]["law.alpha"]["value"] == 0.17
    assert "no measured compute-optimal law" in res["inputs"]["law.alpha"]["note"]
    assert "fell back to the paper's law" in caplog.text
    assert res["extrapolation"]["fitted_compute_flops"] is None and "not known" in res["extrapolation"]["data"]


def _project(**changes):
    from harness.config import ProjectorConfig
    from harness.projector.project import project

    p = ProjectorConfig(name="test", monte_carlo=400)
    for key, value in changes.items():
        obj, *path = key.split("__")
        target = p
        for part in [obj, *path][:-1]:
            target = getattr(target, part)
        setattr(target, [obj, *path][-1], value)
    return project(p, [])


def test_paper_scenario_reproduces_closed_form_and_numerical_peak():
    res = _project()
    assert res["t_star_years"] == pytest.approx(3.3375, abs=1e-4)
    assert res["t_star_numerical_years"] == pytest.approx(res["t_star_years"], abs=1e-6)
    assert res["loss_gap_band"] is None and res["uncertainty"]["sampled"] == []


def test_start_ratio_moves_the_peak_as_the_closed_form_says():
    law, growth = PAPER, G.Growth()
    for r in (0.25, 4.0):
        closed = G.peak_time_closed_form(law.alpha, growth, r)
        assert G.peak_time_numerical(law, 1e21, growth, start_ratio=r) == pytest.approx(closed, abs=1e-5)


def test_a_peak_beyond_the_window_is_reported_as_such():
    slow = ComputeLaw(L0=1.7, A=1070.0, alpha=0.002)
    assert G.peak_time_closed_form(slow.alpha, G.Growth()) > 50
    assert G.peak_time_numerical(slow, 1e21, G.Growth(), horizon=50) is None
    res = _project(law__alpha=0.002)
    assert res["t_star_numerical_years"] is None and "outside" in res["t_star_note"]


def test_closing_time_and_lag_mean_what_they_say():
    law, growth, c0 = PAPER, G.Growth(), 7.1e20
    for level in (0.05, 0.01):
        t = G.closing_time(law, c0, growth, level)
        assert t > G.peak_time_closed_form(law.alpha, growth)
        assert float(G.loss_gap(law, c0, growth, t)) == pytest.approx(level, abs=1e-9)
    t, lag = 7.0, float(G.lag_years(growth, 7.0))
    # the meek actor at t has the frontier's compute (hence loss) of year t - lag
    assert G.meek_compute(c0, growth, t) == pytest.approx(G.frontier_compute(c0, growth, t - lag), rel=1e-9)
    assert G.closing_time(law, c0, growth, 1e-300) is None  # never within the window
    peak = float(G.loss_gap(law, c0, growth, G.peak_time_closed_form(law.alpha, growth)))
    assert G.closing_time(law, c0, growth, peak + 0.01) == 0.0  # never above the level: nothing to close
    from harness.projector.markdown import headline

    lines = headline(_project(closing_levels=[0.2, 0.05]))
    assert "- The gap never exceeds 0.2 nats (its peak is 0.1492)." in lines
    assert any(line.startswith("- Gap below 0.05 nats after 11.42 y") for line in lines)


def test_sampled_inputs_give_bands_and_point_intervals_give_none_wide():
    from harness.config import RangeConfig

    wide = _project(uncertainty={"g_alg": RangeConfig(1.81, 5.28, 0.95, "Ho et al. 2024")})
    unc = wide["uncertainty"]
    assert unc["sampled"] == ["g_alg"] and unc["draws"]["kept"] == 400
    assert unc["t_star_years"]["low"] < wide["t_star_years"] < unc["t_star_years"]["high"]
    assert unc["tornado"][0]["input"] == "g_alg"
    point = _project(uncertainty={"g_alg": RangeConfig(2.8, 2.8, 0.95, "a point")})
    band = point["loss_gap_band"]
    assert np.allclose(band["low"], band["high"], rtol=0, atol=1e-12)
    assert point["t_star_interval"] is None
    assert point["uncertainty"]["t_star_years"]["median"] == pytest.approx(point["t_star_years"], abs=1e-9)


def test_draws_whose_gap_never_exceeds_a_level_stay_out_of_its_closing_band_and_the_peak_has_a_band():
    """Issue 42 item 7: at a level near the peak, many draws' gap never exceeds it; they used to enter
    the closing-time quantiles as 0.0 (paper-uncertain at 0.149 nats read [0.00, 7.64] y). They are
    counted and left out; the peak gap carries its own band; the headline names the meek actor."""
    from harness.config import RangeConfig
    from harness.projector.markdown import headline

    res = _project(closing_levels=[0.149], uncertainty={"g_alg": RangeConfig(1.81, 5.28, 0.95, "Ho et al. 2024")})
    band = res["uncertainty"]["closing_years"]["0.149"]
    assert 0 < band["never_exceeded"] < band["draws"] == 400
    assert band["samples"] == band["draws"] - band["never_exceeded"]
    assert band["low"] > res["t_star_years"] * 0.3  # no 0.0 from the draws with nothing to close
    peak = res["uncertainty"]["peak_gap_nats"]
    assert peak["low"] < res["peak_gap_nats"] < peak["high"]
    lines = headline(res)
    line = next(line for line in lines if line.startswith("- The gap of 0.149 nats"))
    assert f"in {band['never_exceeded']} of 400 draws it never exceeds it (nothing to close)" in line
    assert f"over the other {band['samples']} it falls below it after" in line
    assert lines[0] == ("- Meek actor: $1000 (the paper's meek actor (Gundlach, Lynch & Thompson 2025)) x 7.1e+17 FLOP/$ "
                        "(default: H100 989 TFLOP/s bf16, $2/h, 40% utilisation) = C0 7.1e+20 FLOPs of training compute "
                        "at the start.")
    assert res["meek_actor"]["c0_flops"] == res["meek_compute_flops_at_start"] == pytest.approx(7.1e20)


def test_a_sampled_input_is_centred_on_its_point_value_and_the_tornado_reads_the_bands_quantiles():
    """Issue 26 item 4: the draws' median is the scenario's point value and the interval's ends are
    their quantiles (the old draws were centred on the interval's geometric middle: g_alg's median
    3.09 against the point 2.8, and g_cost's 90 against the point 9); the tornado moves each input
    to the 5% and 95% quantiles of its draws, the level of the bands."""
    from omegaconf import OmegaConf

    from harness.config import ConfigValueError
    from harness.projector import uncertainty as U
    from harness.projector.project import project
    from tests.conftest import compose_config

    p = OmegaConf.to_object(compose_config("project", ["projector=paper-uncertain"])).projector
    ranges = {k: U.Range(r.low, r.high, r.level, r.source) for k, r in p.uncertainty.items()}
    growth = G.Growth(p.growth.g_i, p.growth.g_h, p.growth.g_alg)
    mc = U.sample(ComputeLaw(1.7, 1070.0, 0.155), growth, ranges, None, 20000, 0, p.inference.g_cost)
    g_alg = np.array([d.growth.g_alg for d in mc.draws])
    g_cost = np.array([d.g_cost for d in mc.draws])
    assert np.median(g_alg) == pytest.approx(2.8, rel=0.01) and np.median(g_cost) == pytest.approx(90.0, rel=0.03)
    assert np.quantile(g_alg, [0.025, 0.975]) == pytest.approx([1.81, 5.28], rel=0.02)
    assert np.quantile(g_cost, [0.05, 0.95]) == pytest.approx([9.0, 900.0], rel=0.05)
    p.monte_carlo = 4000
    res = project(p, [])
    assert res["uncertainty"]["t_star_years"]["median"] == pytest.approx(res["t_star_years"], rel=0.01)
    row = next(r for r in res["uncertainty"]["tornado"] if r["input"] == "g_alg")
    assert [row["low_value"], row["high_value"]] == pytest.approx(np.quantile(g_alg, [0.05, 0.95]).tolist(), rel=0.02)
    # the paper's 9x with the 9-900 span: a median at its interval's end, refused before anything runs
    with pytest.raises(ConfigValueError, match=r"projector.inference.g_cost=9 must lie strictly inside"):
        OmegaConf.to_object(compose_config("project", ["projector=paper-uncertain", "projector.inference.g_cost=9"]))
    with pytest.raises(ValueError, match="does not hold its point value 9 strictly inside"):
        U.sample(ComputeLaw(1.7, 1070.0, 0.155), growth, {"g_cost": ranges["g_cost"]}, None, 10, 0, 9.0)


@pytest.mark.slow
def test_bootstrap_band_matches_the_spread_of_fits_to_fresh_noise():
    """The exponent's bootstrap interval should be about as wide as the spread of the exponents
    fitted to new noisy data from the same truth (within a factor of 2), not 13x narrower."""
    truth = PowerLaw(E=1.8, A=400.0, a=0.3)
    n = np.logspace(5, 10, 12)

    def noisy(seed):
        return truth.loss(n) * np.exp(np.random.default_rng(seed).normal(0, 0.01, n.size))

    _, fit = fit_power_law(n, noisy(0), resamples=120, seed=1)
    assert fit.converged and fit.dof == 9 and fit.bootstrap_attempted == 120
    assert len(fit.bootstrap) == fit.bootstrap_converged > 100
    lo, hi = fit.interval("a", 0.9)
    fresh = [fit_power_law(n, noisy(100 + k), resamples=0)[0].a for k in range(30)]
    spread = np.quantile(fresh, 0.95) - np.quantile(fresh, 0.05)
    assert 0.5 < (hi - lo) / spread < 2.0, (hi - lo, spread)


def test_unrounded_chinchilla_gives_its_exponent():
    from harness.projector.laws import CHINCHILLA_UNROUNDED

    assert CHINCHILLA_UNROUNDED.compute_optimal().alpha == pytest.approx(0.1548, abs=1e-4)
    assert CHINCHILLA.compute_optimal().alpha == pytest.approx(0.1535, abs=1e-4)
    res = _project(law__source="chinchilla-unrounded")
    assert res["inputs"]["law.alpha"]["value"] == pytest.approx(0.1548, abs=1e-4)
    assert "unrounded" in res["inputs"]["law.alpha"]["note"]


def test_project_command_prints_peak_closing_lag_and_what_moves_t_star(tmp_path):
    out = subprocess.run([sys.executable, "-m", "harness", "project", "projector=paper-uncertain",
                          "projector.monte_carlo=300", f"results_dir={tmp_path}"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for text in ("t* = 3.34 y (90% band", "Gap below 0.05 nats after", "Lag of the meek actor",
                 "Moves t* most: g_alg"):
        assert text in out.stdout, text
    assert (tmp_path / "projections" / "paper-uncertain" / "tornado.png").exists()


def _scored(name, family, loss, acc):
    from harness.results.schema import Quality, TaskScore
    from tests.conftest import record_template

    r = record_template(name, 1e5, loss)
    return r.model_copy(update={
        "run_id": f"{name}-{family}", "model": r.model.model_copy(update={"family": family}),
        "quality": Quality(heldout_loss_nats=loss, tasks={"mc": TaskScore(metrics={"acc": acc})})})


def test_sigmoid_takes_one_family_with_its_chance_floor_and_refuses_pooling():
    from harness.config import ProjectorConfig
    from harness.projector.family import family_sigmoid

    p = ProjectorConfig(name="t", family="tiny", task="mc", task_chance=0.25, bootstrap=0)
    losses = [5.0, 4.6, 4.3, 4.1, 3.9, 3.7]
    tiny = [_scored(f"t{i}", "tiny", l, 0.25 + 0.6 / (1 + np.exp(3.0 * (l - 4.4)))) for i, l in enumerate(losses)]
    other = [_scored(f"o{i}", "pythia", l / 2, 0.9) for i, l in enumerate(losses)]
    sig, fit, note = family_sigmoid(tiny + other, p)
    assert fit.n_points == 6 and sig.b == 0.25 and sig.a + sig.b <= 1 and sig.k < 0
    assert float(sig.score(100.0)) == pytest.approx(0.25, abs=1e-6)  # never below chance
    with pytest.raises(FitError, match="6 points of other families are not pooled"):
        family_sigmoid(tiny[:3] + other, p)
    # issue 26 item 9: the same models measured on a second machine are the same 6 design points
    elsewhere = [r.model_copy(update={"run_id": r.run_id + "-b",
                                      "hardware": replace(r.hardware, id="other-machine", label="other")})
                 for r in tiny]
    assert family_sigmoid(tiny + elsewhere, p)[1].n_points == 6


def test_sigmoid_is_not_applied_to_a_law_on_another_scale():
    res = _project()
    assert res["score"] is None and "another loss scale" in res["inputs"]["sigmoid"]["note"]


def test_variant_multipliers_compare_a_student_with_its_control_and_stay_in_the_family():
    from harness.config import ProjectorConfig
    from harness.projector.project import project
    from tests.conftest import record_template

    truth = PowerLaw(E=2.0, A=60.0, a=0.3)
    base = [record_template(f"m{i}", n, float(truth.loss(n))) for i, n in enumerate([1e4, 3e4, 1e5, 4e5, 1e6, 3e6])]

    def student(method, n_eff):
        r = record_template("m0", 1e4, float(truth.loss(n_eff)))
        # a teacher of 5e6 parameters, 3e6 of them outside its embeddings
        distil = {"method": method, "distil_tokens": 1000, "distil_flops": 6 * r.model.params * 1000 + 2 * 5e6 * 1000
                  if method == "kd" else 6 * r.model.params * 1000} | (
            {"teacher_params": 5e6, "teacher_non_embedding_params": 3e6} if method == "kd" else {})
        return r.model_copy(update={"run_id": f"m0-{method}", "variant": replace(r.variant, **{
            "name": method, "kind": "distil", "method": method, "extra": {"distillation": distil}})})

    outsider = record_template("x0", 1e4, 1.0)
    outsider = outsider.model_copy(update={"run_id": "x0-q", "model": outsider.model.model_copy(update={"family": "other"}),
                                           "variant": replace(outsider.variant, **{"name": "int8"})})
    p = ProjectorConfig(name="m", bootstrap=0, monte_carlo=10)
    p.law.source = "measured"
    rows = {r["variant"]: r for r in project(p, base + [student("kd", 2e4), student("continue-ce", 1.5e4), outsider])
            ["variants"]}
    assert set(rows) == {"kd", "continue-ce"}  # the other family's point is not read through this law
    kd = rows["kd"]
    assert kd["multiplier"] == pytest.approx(2.0, rel=0.02) and kd["vs_control"] == pytest.approx(2 / 1.5, rel=0.02)
    spent = 6 * 1e4 * 1_000_000  # non-embedding params x tokens, as the law counts
    assert kd["effective_compute_gain_without_teacher"] == pytest.approx(6 * kd["effective_params"] * 1_000_000 / spent)
    # issue 26 item 7: the teacher counted as the law counts the student, non-embedding (not its total 5e6)
    assert kd["effective_compute_gain"] == pytest.approx(6 * kd["effective_params"] * 1_000_000 / (spent + 2 * 3e6 * 1000))


def _priced(record, usd_per_million: float, batch: int = 1, price_per_hour: float = 3.6):
    """``record`` with a decode time per token (one measured shape) that costs ``usd_per_million``
    per million tokens at ``price_per_hour``."""
    from harness.results.schema import Latency, LatencyScenario, Stats

    tokens_per_s = price_per_hour / 3600 / usd_per_million * 1e6
    tpot = batch * 1000 / tokens_per_s
    stats = Stats(n=1, median=tpot, p90=tpot, p99=tpot, mean=tpot, stdev=0.0, cv=0.0, ci_low=tpot, ci_high=tpot,
                  ci_level=0.95, samples=[tpot])
    latency = Latency(scenarios=[LatencyScenario(prompt_tokens=8, batch_size=batch, new_tokens=8,
                                                           tpot_ms=stats)])
    return record.model_copy(update={"latency": latency, "config": {"hardware": {"price_per_hour_usd": price_per_hour}}})


def test_inference_gap_runs_the_cheapest_measured_effective_parameters_on_the_projections_law(caplog):
    """The rate comes from measured decode costs (the family's largest model per hardware and
    variant; a variant counts the parameters it acts like), and both actors' losses are read on
    the training law, as compute-optimally trained models (D = 20 N)."""
    from harness.config import ProjectorConfig
    from harness.projector.project import project
    from tests.conftest import record_template

    truth = PowerLaw(E=2.0, A=60.0, a=0.3)
    sizes = [1e4, 3e4, 1e5, 4e5, 1e6, 3e6]
    base = [_priced(record_template(f"m{i}", n, float(truth.loss(n))), 1e-6 * 1.2 * n + 0.01)
            for i, n in enumerate(sizes)]
    # int8 of the largest model: acts like 0.8 of its size and decodes at half the cost
    big = base[-1]
    int8 = _priced(big, (1e-6 * 1.2 * 3e6 + 0.01) / 2).model_copy(update={
        "run_id": "m5--int8", "variant": replace(big.variant, **{"name": "int8", "kind": "quant"}),
        "quality": replace(big.quality, **{"heldout_loss_nats": float(truth.loss(0.8 * 3e6))})})
    p = ProjectorConfig(name="m", bootstrap=0, monte_carlo=10)
    p.law.source, p.inference.cost_source = "measured", "measured"
    res = project(p, base + [int8])
    assert res["inference"]["rate_extrapolation"]["measured_params"] == int(1.2 * 3e6)
    inf = res["inference"]
    per_token = (1e-6 * 1.2 * 3e6 + 0.01) / 2 / 1e6
    assert inf["effective_params_per_usd"]["source"] == "measured"
    assert [r["variant"] for r in inf["measured_rates"]] == ["int8", "fp32"]
    assert inf["measured_rates"][0]["model"] == "m5" and inf["measured_rates"][0]["multiplier"] == pytest.approx(0.8, rel=1e-3)
    assert inf["effective_params_per_usd"]["value"] == pytest.approx(int(1.2 * 3e6) * 0.8 / per_token, rel=1e-3)
    n0 = p.inference.price_per_token_usd * inf["effective_params_per_usd"]["value"]
    assert inf["meek_params"][0] == pytest.approx(n0)
    law = ComputeLaw(res["inputs"]["law.L0"]["value"], res["inputs"]["law.A"]["value"], res["inputs"]["law.alpha"]["value"])
    assert inf["meek_loss"][0] == pytest.approx(float(law.loss(6 * n0 * 20 * n0)))  # the training law, D = 20 N
    assert inf["loss_gap"][0] == pytest.approx(0.0, abs=1e-12)  # equal spend at t = 0
    # costs measured only at another batch size: the assumed rate, said so on the terminal and in the JSON
    other = project(p, [_priced(r, 1.0, batch=4) for r in base])["inference"]["effective_params_per_usd"]
    assert other["source"] == "default" and "no record has a priced decode cost at batch 1" in other["note"]
    assert "using the assumed rate" in caplog.text


def test_the_inference_price_decline_is_sampled_and_moves_the_inference_gap_only():
    from harness.config import RangeConfig

    res = _project(inference__g_cost=90.0, uncertainty={"g_cost": RangeConfig(9.0, 900.0, 0.9, "Cottier et al. 2025")})
    band = res["inference"]["loss_gap_band"]
    assert band["high"][-1] > 10 * band["low"][-1] > 0  # 9x to 900x per year: orders of magnitude apart
    assert res["t_star_interval"] is None  # the training gap's peak does not depend on g_cost
    assert res["uncertainty"]["tornado"] == []


def test_variant_gains_against_the_measured_compute_optimal_law(tmp_path):
    """With a grid law, each variant's loss is read on the compute-optimal law (its own scale, not the
    projection's transfer): compute needed / compute spent, a band from the law's refits, with and
    without a KD teacher, and over its baseline's and its control's needs."""
    import json

    from harness.config import ProjectorConfig
    from harness.projector.project import project
    from tests.conftest import record_template

    law, draws = PowerLaw(E=1.5, A=100.0, a=0.2), [PowerLaw(1.4, 90.0, 0.19), PowerLaw(1.6, 110.0, 0.21)] * 5
    (tmp_path / "law.json").write_text(json.dumps({"flops_range": [1e11, 1e13], "approach3": {
        "compute_optimal": {"E": law.E, "G": law.A, "exponent": law.a},
        "compute_optimal_draws": [{"E": d.E, "G": d.A, "exponent": d.a} for d in draws], "fit": {}}}))
    truth = PowerLaw(E=2.0, A=60.0, a=0.3)
    base = [record_template(f"m{i}", n, float(truth.loss(n))) for i, n in enumerate([1e4, 3e4, 1e5, 4e5, 1e6, 3e6])]
    r0 = base[0]
    distil = {"method": "kd", "distil_tokens": 1000, "distil_flops": 6 * r0.model.params * 1000 + 2 * 5e6 * 1000}
    kd = r0.model_copy(update={"run_id": "m0-kd", "quality": replace(r0.quality, **{"heldout_loss_nats": 2.9}),
                               "variant": replace(r0.variant, **{"name": "kd", "kind": "distil", "method": "kd",
                                                                        "extra": {"distillation": distil}})})
    ctrl_distil = {"method": "continue-ce", "distil_tokens": 1000, "distil_flops": 6 * r0.model.params * 1000}
    ctrl = kd.model_copy(update={"run_id": "m0-ce", "quality": replace(r0.quality, **{"heldout_loss_nats": 2.95}),
                                 "variant": replace(kd.variant, **{"name": "continue-ce", "method": "continue-ce",
                                                                          "extra": {"distillation": ctrl_distil}})})
    p = ProjectorConfig(name="m", bootstrap=0, monte_carlo=10)
    p.law.source, p.law.measured_path = "measured", str(tmp_path / "law.json")
    row = {v["variant"]: v for v in project(p, base + [kd, ctrl])["variants"]}["kd"]
    spent, teacher = 6 * r0.model.params * 1_000_000, 2 * 5e6 * 1000
    need = float(law.invert(2.9))
    assert row["optimal_compute_gain"] == pytest.approx(need / (spent + teacher))
    assert row["optimal_compute_gain_without_teacher"] == pytest.approx(need / spent)
    lo, hi = row["optimal_compute_gain_band"]
    assert lo < row["optimal_compute_gain"] < hi
    assert row["optimal_compute_vs_baseline"] == pytest.approx(need / float(law.invert(r0.quality.heldout_loss_nats)))
    assert row["optimal_compute_vs_control"] == pytest.approx(need / float(law.invert(2.95)))


def test_a_published_law_is_sampled_jointly_from_its_covariance_and_a_zero_covariance_gives_no_band():
    """Issue 26 item 3: Epoch's five parameters were drawn as independent normals of their standard
    errors, so the loss at 1e21 FLOPs, inside their data, came out 2.29 [2.00, 2.77]; drawn jointly
    from the covariance of a refit of their data it is 2.307 [2.30, 2.31], and each parameter's
    spread still matches their published standard error (Besiroglu et al. 2024, Table 1)."""
    from omegaconf import OmegaConf

    from harness.config import ProjectorConfig
    from harness.projector.inputs import _published_draws
    from harness.projector.project import project
    from tests.conftest import compose_config

    p = OmegaConf.to_object(compose_config("project", ["projector=epoch"])).projector
    assert "Besiroglu" in p.law.covariance_source
    draws = [Chinchilla.from_coordinates(row) for row in np.random.default_rng(0).multivariate_normal(
        EPOCH_REFIT.coordinates(), p.law.covariance, 4000)]
    published = {"A": 124.58, "E": 0.03, "a": 0.02, "b": 0.02}
    for name, se in published.items():
        assert 0.6 * se < np.std([getattr(d, name) for d in draws]) < 1.4 * se, name
    laws = [d.compute_optimal() for d in _published_draws(EPOCH_REFIT, p.law.covariance, 4000, 0)]
    at = np.array([float(law.loss(1e21)) for law in laws])
    lo, hi = np.quantile(at, [0.05, 0.95])
    assert lo < float(EPOCH_REFIT.compute_optimal().loss(1e21)) < hi and hi - lo < 0.05
    p.monte_carlo = 400
    res = project(p, [])
    unc = res["uncertainty"]
    assert unc["sampled"] == ["law (published fit, joint)"]
    lo, hi = res["t_star_interval"]
    assert lo < res["t_star_years"] < hi
    assert unc["tornado"][0]["input"] == "law.alpha"
    p.law.covariance = np.zeros((5, 5)).tolist()
    p.law.transfer_systematic = 0.0  # the extrapolation's systematic term off: nothing else is uncertain
    flat = project(p, [])
    assert flat["t_star_interval"] is None
    assert np.allclose(flat["loss_gap_band"]["low"], flat["loss_gap_band"]["high"], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="covariance is for a published"):
        project(ProjectorConfig(name="x", law=p.law.__class__(source="paper", covariance=p.law.covariance,
                                                              covariance_source="test")), [])


def test_the_paper_scenario_keeps_its_assumed_bandwidth_bound_rate_and_the_frontier_spend_follows_sampled_g_i():
    """Issue 26 item 6: the assumed rate was the training FLOP/$ at 40% utilisation (3.55e17
    parameters per $/token) although decode at batch 1 reads every weight once per token (H100:
    3.35 TB/s / 2 bytes at $2/h = 3.0e15); the paper scenario switched to measured rates as soon as
    records carried a price; the frontier's spend growth stayed at 3.57 when g_i was sampled."""
    from omegaconf import OmegaConf

    from harness.config import RangeConfig
    from harness.projector.project import project
    from tests.conftest import compose_config, record_template

    p = OmegaConf.to_object(compose_config("project", ["projector=paper"])).projector
    priced = [_priced(record_template("m0", 1e6, 3.0), 1.0)]  # a record with a priced decode cost
    inf = project(p, priced)["inference"]
    assert inf["effective_params_per_usd"]["source"] == "default" and inf["measured_rates"] == []
    assert inf["effective_params_per_usd"]["value"] == pytest.approx(3.35e12 * 3600 / (2 * 2.0))
    assert "bandwidth-bound decode" in inf["effective_params_per_usd"]["note"]
    p.inference.assumed_rate = "flops"
    assert project(p, [])["inference"]["effective_params_per_usd"]["value"] == pytest.approx(7.1e17 / 2)
    # sampled g_i moves the frontier's spend per token with it: the inference gap's band widens
    fixed = _project(inference__frontier_spend_growth=3.57,
                     uncertainty={"g_i": RangeConfig(2.5, 5.0, 0.9, "a test interval")})
    follows = _project(uncertainty={"g_i": RangeConfig(2.5, 5.0, 0.9, "a test interval")})
    assert follows["inference"]["frontier_spend_growth"]["value"] == 3.57
    width = {name: res["inference"]["loss_gap_band"]["high"][-1] - res["inference"]["loss_gap_band"]["low"][-1]
             for name, res in (("fixed", fixed), ("follows", follows))}
    assert width["fixed"] < 1e-12 < width["follows"]  # g_i moves no actor's runnable size when the spend is fixed
    cm = OmegaConf.to_object(compose_config("project", ["projector=measured"])).projector
    assert cm.inference.cost_source == "measured"


def test_the_measured_inference_rate_reads_the_largest_model_of_any_family_and_names_it():
    """A real model (another family, 30x the tiny family's largest) sets the rate, and the projection
    says which model it read and what its weights are."""
    from harness.config import ProjectorConfig
    from harness.projector.project import project
    from tests.conftest import record_template

    truth = PowerLaw(E=2.0, A=60.0, a=0.3)
    tiny = [_priced(record_template(f"m{i}", n, float(truth.loss(n))), 1e-6 * 1.2 * n + 0.01)
            for i, n in enumerate([1e4, 1e5, 1e6])]
    real = _priced(record_template("real-135m", 1.06e8, 2.97), 1e-6 * 1.3e8)
    real = real.model_copy(update={"run_id": "real-135m--fp32", "model": real.model.model_copy(update={
        "family": "smollm2", "params": 134_515_008, "weights": "dequantised from GGUF Q4_1"})})
    p = ProjectorConfig(name="m", bootstrap=0, monte_carlo=10)
    p.law.source, p.inference.cost_source = "measured", "measured"
    inf = project(p, tiny + [real])["inference"]
    assert [(r["model"], r["family"]) for r in inf["measured_rates"]] == [("real-135m", "smollm2")]
    note = inf["effective_params_per_usd"]["note"]
    assert note.startswith("read from real-135m (smollm2) fp32") and "dequantised from GGUF Q4_1" in note
    assert inf["effective_params_per_usd"]["value"] == pytest.approx(134_515_008 / (1.3e8 / 1e6 * 1e-6), rel=1e-3)


def test_draws_that_never_reach_a_loss_count_in_the_band_rather_than_being_dropped():
    """Issue 26 item 9: a refit whose floor E lies above the loss never reaches it; such draws were
    dropped before the quantiles, which narrowed the band to the draws that agree."""
    from harness.projector.gains import _invert

    law = PowerLaw(E=2.0, A=60.0, a=0.3)
    draws = [PowerLaw(E=2.0 + 0.01 * k, A=60.0, a=0.3) for k in range(20)]  # E from 2.00 to 2.19
    at, band, unreached = _invert(law, draws, 2.1)
    assert np.isfinite(at) and unreached == 10  # E >= 2.1 for k = 10..19: never below it
    assert band[0] is not None and band[1] is None  # over 5% of the draws never get there: unbounded
    at, band, unreached = _invert(law, draws[:8], 2.1)
    assert unreached == 0 and None not in band


def test_a_closing_time_band_counts_the_draws_that_never_close_and_a_runaway_refit_gives_no_nan():
    """The Monte Carlo's closing-time band was the quantiles of the draws that closed within the
    window only: the reduced grid's demo printed "5.31 to 162.37; 317 of 2000 draws never reach
    it", though with 16% of the draws beyond the window its 95% end is beyond it too. And a
    bootstrap refit whose A ran off to infinity made law.md's band for A read [3.918, nan]."""
    from harness.projector.isoflop import _band
    from harness.projector.markdown import _with_band
    from harness.projector.uncertainty import _band as mc_band

    closing = [float(k) for k in range(1, 18)] + [None] * 3  # 3 of 20 draws never close
    band = mc_band(closing)
    assert band["not_reached"] == 3 and band["high"] is None
    assert band["low"] == pytest.approx(np.quantile(range(1, 18), 0.05 * 19 / 16))  # the 5% of all 20 draws
    assert _with_band(9.0, band) == "9.00 y (90% band 1.95 to not within 200 years; 3 of 20 draws never reach it)"
    reached = mc_band([float(k) for k in range(1, 21)])  # all close: the usual quantiles
    assert (reached["low"], reached["high"]) == pytest.approx(tuple(np.quantile(range(1, 21), [0.05, 0.95])))
    refits = [3.9, 24.8, 75.4, 4.9e8, 17.3, 15.2, 8.5, 4.0, 7.5, float("inf")]
    assert _band(refits, 0.9)[1] == float("inf") and _band(refits, 0.9)[0] == pytest.approx(
        np.quantile(refits[:9] + [1e300], 0.05))
    from harness.projector.fit import quantile_ends

    assert quantile_ends([1.0, 2.0, 3.0], 0.9) == pytest.approx(tuple(np.quantile([1, 2, 3], [0.05, 0.95])))


def test_a_measured_law_is_reported_in_its_own_regime_and_its_transfer_carries_a_systematic_term(tmp_path):
    """Issue 26 item 1: `transfer: exponent` was the paper's curve with the time axis stretched,
    its band bootstrap noise only and no word of the law's warning signs. Now the law is reported
    beside Chinchilla's and Epoch's exponents with its warnings, the headline labels it, and each
    draw's exponent carries a stated systematic term for the transfer."""
    import json

    from harness.config import ProjectorConfig
    from harness.projector import calibration
    from harness.projector.isoflop import regime
    from harness.projector.markdown import headline
    from harness.projector.project import project

    exps = [0.10, 0.11, 0.12, 0.13, 0.14] * 4
    fits = {"flops_range": [1e11, 1e12], "approach1": {"refused": "no interior optimum"},
            "approach2": {"refused": "fewer than 2 budgets with an interior optimum"},
            "agreement": {"bands_overlap": False},
            "extrapolation_test": {"inside_band": True, "error_nats": -0.2, "predicted_loss": 3.0,
                                   "measured_loss": 3.2, "band": [2.8, 3.3], "held_out_budget_flops": 2e12},
            "approach3": {"params": {"E": 0.5}, "bands": {"E": [0.01, 1.2]}, "fit": {},
                          "compute_optimal": {"E": 0.5, "G": 30.0, "exponent": 0.12, "a": 0.6},
                          "compute_optimal_bands": {"exponent": [0.10, 0.14], "a": [0.5, 0.7]},
                          "compute_optimal_draws": [{"E": 0.5, "G": 30.0, "exponent": e} for e in exps]}}
    reg = regime(fits)
    assert len(reg["warnings"]) == 4 and not reg["paper_alpha_inside_band"]
    assert any(w.startswith("E unidentified: 0.5 with a band [0.01, 1.2]") for w in reg["warnings"])
    assert reg["published"]["epoch"]["exponent"] == pytest.approx(0.1783, abs=1e-4)
    (tmp_path / "law.json").write_text(json.dumps(fits))
    p = ProjectorConfig(name="m", bootstrap=0, monte_carlo=1000)
    p.law.source, p.law.measured_path = "measured", str(tmp_path / "law.json")
    res = project(p, [])
    sigma = res["inputs"]["law.transfer_systematic"]["value"]
    at_t_star = G.frontier_compute(p.budget_usd * p.flop_per_dollar, G.Growth(), G.peak_time_closed_form(0.12, G.Growth()))
    assert sigma == pytest.approx(calibration.load().sigma(1.0, np.log10(at_t_star / 1e12)))
    lines = headline(res)
    assert any("WITH 4 WARNING(S)" in line for line in lines)
    assert any("keeps from the paper its L0" in line for line in lines)
    # said in words and true: the paper's gap curve, its time axis scaled by 0.155 / 0.12
    assert any("time axis scaled by 0.155 / 0.12 = 1.29" in line for line in lines)
    paper = project(ProjectorConfig(name="p", bootstrap=0, monte_carlo=0), [])
    assert res["peak_gap_nats"] == pytest.approx(paper["peak_gap_nats"], rel=1e-9)
    assert res["t_star_years"] == pytest.approx(paper["t_star_years"] * 0.155 / 0.12, rel=1e-9)
    assert any(line.startswith("- The measured law in its own regime: exponent 0.1200") for line in lines)
    # the data mixture (issue 42 item 5): the same runs scored on their own mixture's held-out text give
    # another exponent; their log ratio joins the extrapolation term in quadrature, and the headline says so
    fits["approach3_in_distribution"] = {"compute_optimal": {"exponent": 0.18}}
    (tmp_path / "law.json").write_text(json.dumps(fits))
    mixed = project(p, [])["inputs"]["law.transfer_systematic"]
    assert mixed["value"] == pytest.approx(np.hypot(sigma, np.log(0.18 / 0.12)))
    assert "data mixture's 0.405 in quadrature" in mixed["note"]
    p.law.transfer_systematic = 0.0
    noise_only = project(p, [])
    width = {k: r["uncertainty"]["t_star_years"]["high"] - r["uncertainty"]["t_star_years"]["low"]
             for k, r in (("systematic", res), ("noise only", noise_only))}
    assert width["systematic"] > 2 * width["noise only"]


def test_a_law_with_an_n_d_split_reads_the_runnable_models_at_its_own_tokens_per_parameter():
    """Issue 26 item 6: tokens per parameter was 20 whatever the law; a published L(N, D) fit has its
    own compute-optimal allocation, so its runnable models are trained at its D/N."""
    from omegaconf import OmegaConf

    from harness.projector.project import project
    from tests.conftest import compose_config

    n = np.array([1e8, 1e11])
    assert EPOCH_REFIT.n_opt(EPOCH_REFIT.optimal_compute_for(n)) == pytest.approx(n, rel=1e-9)
    p = OmegaConf.to_object(compose_config("project", ["projector=epoch", "projector.monte_carlo=10"])).projector
    inf = project(p, [])["inference"]
    meek = inf["meek_params"][0]
    c = float(EPOCH_REFIT.optimal_compute_for(meek))
    assert inf["meek_loss"][0] == pytest.approx(float(EPOCH_REFIT.compute_optimal().loss(c)), rel=1e-12)
    assert inf["tokens_per_param"]["value"] == pytest.approx(c / (6 * meek**2)) != 20.0
    assert "the law's own compute-optimal allocation" in inf["tokens_per_param"]["note"]
    p.inference.tokens_per_param_from_law = False
    assert project(p, [])["inference"]["tokens_per_param"]["value"] == 20.0
    paper = _project()["inference"]["tokens_per_param"]
    assert paper["value"] == 20.0 and "Hoffmann" in paper["note"]


def test_each_law_draw_trains_its_runnable_models_at_its_own_allocation():
    """Issue 26 item 6: the Monte Carlo drew the law but kept the point's N-D allocation, so a draw's
    runnable models were trained on another law's split than the one their loss was read on. Now a
    draw carries its own L(N, D): its compute-optimal law is the draw's law, and its D/N spreads."""
    from omegaconf import OmegaConf

    from harness.projector import uncertainty as U
    from harness.projector.inputs import resolve_inputs
    from harness.projector.project import project
    from tests.conftest import compose_config

    p = OmegaConf.to_object(compose_config("project", ["projector=epoch", "projector.monte_carlo=200",
                                                       "projector.law.transfer_systematic=0"])).projector
    inputs = resolve_inputs(p, [])  # the systematic term moves L(C) only: off, each draw is its allocation's law
    mc = U.sample(inputs.law, inputs.growth, {}, inputs.law_draws, 200, 0, 9.0, inputs.allocation_draws)
    assert len({d.allocation for d in mc.draws}) > 100  # drawn, not the point's
    for d in mc.draws:  # paired: the allocation is the very law the draw's loss is read on
        co = d.allocation.compute_optimal()
        assert (co.L0, co.A, co.alpha) == pytest.approx((d.law.L0, d.law.A, d.law.alpha), rel=1e-12)
    note = project(p, [])["inference"]["tokens_per_param"]["note"]
    assert "sampled with the law's draws" in note
    with pytest.raises(ValueError, match="they pair"):
        U.sample(inputs.law, inputs.growth, {}, inputs.law_draws[:5], 10, 0, 9.0, inputs.allocation_draws)


def test_a_drawn_exponent_far_out_in_the_systematic_tail_is_held_rather_than_overflowing(tmp_path):
    """The demo's reduced-grid law (exponent 0.039, sigma 1.38) drew exponents whose A overflowed
    float range at the pivot (OverflowError) and ended the projection; a drawn exponent above 1 is
    now held at 1, counted and said, and the draws' order (so a 5-95% band) is kept."""
    import json

    from harness.config import ProjectorConfig
    from harness.projector.systematic import MAX_DRAWN_EXPONENT
    from harness.projector.project import project

    fits = {"flops_range": [1e11, 4e11], "approach3": {
        "params": {"E": 0.5}, "bands": {"E": [0.4, 0.6]}, "fit": {},
        "compute_optimal": {"E": 0.5, "G": 30.0, "exponent": 0.04, "a": 0.2},
        "compute_optimal_bands": {"exponent": [0.03, 0.11], "a": [0.1, 0.6]},
        "compute_optimal_draws": [{"E": 0.5, "G": 30.0, "exponent": e} for e in [0.03, 0.04, 0.06, 0.11] * 5]}}
    (tmp_path / "law.json").write_text(json.dumps(fits))
    p = ProjectorConfig(name="m", bootstrap=0, monte_carlo=2000)
    p.law.source, p.law.measured_path, p.law.transfer_systematic = "measured", str(tmp_path / "law.json"), 2.0
    res = project(p, [])  # raised OverflowError before
    note = res["inputs"]["law.transfer_systematic"]["note"]
    held = int(note.split("; ")[-1].split(" of ")[0])
    assert 0 < held < 0.1 * 2000 and f"held at {MAX_DRAWN_EXPONENT:g}" in note
    band = res["uncertainty"]["t_star_years"]
    assert band["not_reached"] == 0 and band["low"] < res["t_star_years"] < band["high"]


def test_an_inference_gap_outside_its_band_says_so():
    """The demo's forced law: 0.0842 nats at year 10 with a band of 0 to 1.6e-05, printed without a word."""
    from harness.projector.markdown import _inference_line

    res = {"t": [0.0, 10.0], "inference": {
        "loss_gap": [0.0, 0.0842], "loss_gap_band": {"low": [0.0, 0.0], "high": [0.0, 1.6e-5]},
        "effective_params_per_usd": {"value": 8.7e13, "source": "measured", "note": "smollm2"},
        "price_per_token_usd": 1e-6, "meek_params": [1.0, 3e17]}}
    assert "the point value lies outside its band" in _inference_line(res)
    res["inference"]["loss_gap"][-1] = 1e-6
    assert "outside its band" not in _inference_line(res)
