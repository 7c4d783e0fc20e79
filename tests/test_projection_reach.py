"""What a projection reads beyond what it knows (issue 42 items 4 and 7): the assumed inference rate
carried to the gap at both of its physical limits, and the loss-to-score sigmoid read past the losses
it was fitted on."""
from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from harness.config import ProjectorConfig
from harness.projector.laws import Chinchilla, PowerLaw
from harness.projector.markdown import markdown_table
from harness.projector.project import project


def test_the_assumed_rate_is_bracketed_by_batch_one_and_compute_bound_serving():
    """Before: the paper scenario's inference gap at year 10 was one number, 6.34e-4 nats, at the
    rate of batch-1 decode at peak bandwidth (3.0e15 parameters per $/token), "an assumption with no
    band". After: the gap at each limit of that rate, batch 1 at its achieved bandwidth (27%, Chen
    2026) and compute-bound serving (the training FLOP/$ over 2 FLOPs a parameter), bracketing it."""
    p = ProjectorConfig(name="paper", monte_carlo=50)
    inf = project(p, [])["inference"]
    b, gap = inf["rate_bounds"], inf["loss_gap"][-1]
    peak = p.inference.memory_bandwidth_bytes_per_s * 3600 / (p.inference.bytes_per_param
                                                               * p.inference.gpu_price_per_hour_usd)
    assert inf["effective_params_per_usd"]["value"] == pytest.approx(peak)
    assert b["dear"]["effective_params_per_usd"] == pytest.approx(0.27 * peak)
    assert b["cheap"]["effective_params_per_usd"] == pytest.approx(7.1e17 / 2)
    assert b["cheap"]["loss_gap"][-1] < gap < b["dear"]["loss_gap"][-1]  # a dearer token runs a smaller model
    assert "Chen 2026" in b["dear"]["note"] and "compute-bound" in b["cheap"]["note"]
    assert "at the assumed rate's bounds" in markdown_table(project(p, []), 1)
    # the bracket moves with its source's share, and a share outside (0, 1] is refused by name
    p.inference.batch1_bandwidth_share = 0.81
    assert project(p, [])["inference"]["rate_bounds"]["dear"]["loss_gap"][-1] < b["dear"]["loss_gap"][-1]
    from harness.config import ConfigValueError, InferenceConfig
    with pytest.raises(ConfigValueError, match="batch1_bandwidth_share=1.5"):
        InferenceConfig(batch1_bandwidth_share=1.5)


def test_a_measured_rate_is_not_bracketed_by_the_assumed_ones_limits():
    from tests.conftest import record_template
    from tests.test_inference_gap import _priced

    p = ProjectorConfig(name="measured", monte_carlo=20, bootstrap=0)
    p.inference.cost_source = "measured"
    inf = project(p, [_priced(record_template("m0", 1e6, 3.0), 1.0)])["inference"]
    assert inf["effective_params_per_usd"]["source"] == "measured" and "rate_bounds" not in inf
    assert "assumed rate's bounds" not in markdown_table(project(p, [_priced(record_template("m0", 1e6, 3.0), 1.0)]), 1)


def test_the_sigmoid_says_how_far_below_its_fitted_losses_it_is_read(tmp_path):
    """Before: under transfer=full the projection's score curve was read at losses far below the
    family's best measured one with nothing in the JSON or the headline saying so. After: the span it
    was fitted on, the span it is read at, and the nats beyond."""
    from harness.results.schema import Quality, TaskScore
    from tests.conftest import record_template

    fitted = Chinchilla(E=1.5, A=400.0, B=400.0, a=0.34, b=0.28)  # the grid's L(N, D), on the family's scale
    law = fitted.compute_optimal()
    (tmp_path / "law.json").write_text(json.dumps({"flops_range": [1e11, 1e13], "approach3": {
        "params": asdict(fitted), "compute_optimal": {"E": law.L0, "G": law.A, "exponent": law.alpha},
        "compute_optimal_draws": [{"E": law.L0, "G": law.A, "exponent": law.alpha}] * 10, "fit": {}}}))
    truth = PowerLaw(E=2.0, A=60.0, a=0.3)
    records = []
    for i, n in enumerate([1e4, 3e4, 1e5, 4e5, 1e6, 3e6]):
        loss = float(truth.loss(n))
        r = record_template(f"m{i}", n, loss)
        records.append(r.model_copy(update={"quality": Quality(heldout_loss_nats=loss, tasks={
            "mc": TaskScore(metrics={"acc": 0.25 + 0.6 / (1 + np.exp(3.0 * (loss - 3.5)))})})}))
    p = ProjectorConfig(name="full", bootstrap=0, monte_carlo=10, task="mc", task_chance=0.25)
    p.law.source, p.law.measured_path, p.law.transfer = "measured", str(tmp_path / "law.json"), "full"
    res = project(p, records)
    reach = res["score"]["extrapolation"]
    losses = [r.quality.heldout_loss_nats for r in records]
    assert reach["fitted_loss_nats"] == pytest.approx([min(losses), max(losses)])
    assert reach["read_loss_nats"][0] == pytest.approx(min(res["frontier_loss"]))
    assert reach["nats_below_fitted"] == pytest.approx(min(losses) - min(res["frontier_loss"]))
    assert reach["nats_below_fitted"] > 1.0  # the grid's law at 7e20 FLOPs, a nat below the family's best
    assert f"{reach['nats_below_fitted']:.3g} nats below its best measured loss" in markdown_table(res, 1)
