"""A measured law in a projection: a grid's law (its exponent carried, its regime and warnings, its
systematic term), the fallback without one, the family's size law and sigmoid, and the variants'
gains read against the laws."""
from dataclasses import replace

import numpy as np
import pytest

from harness.projector import gap as G
from harness.projector.fit import FitError
from harness.projector.laws import PowerLaw
from tests.test_projector import _project


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
