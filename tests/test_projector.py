"""The scaling-gap projector: the paper's closed forms, its scenarios and their bands, the published
laws and the projection command. Elsewhere: the fits (tests/test_fits.py), a measured law and the
family (tests/test_measured_law.py), the inference gap (tests/test_inference_gap.py), what a
projection reads beyond its data (tests/test_projection_reach.py)."""
import subprocess
import sys

import numpy as np
import pytest

from harness.projector import gap as G
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
