"""The inference gap: the rate a dollar buys (measured decode costs, or the assumed bandwidth-bound
rate), read on the projection's own law with each law's own N-D allocation."""
from dataclasses import replace

import numpy as np
import pytest

from harness.projector.laws import EPOCH_REFIT, ComputeLaw, PowerLaw
from tests.test_projector import _project


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
