"""`meekbench build-grid` (reduced grid) and `meekbench fit-law` on it: real tiny runs, cached, honest FLOPs."""
import json

import pytest
from omegaconf import OmegaConf

from harness.tiny.grid import build_grid, flops_per_token
from tests.conftest import compose_config

pytestmark = pytest.mark.slow


def _grid_cfg(models_dir, *overrides):
    # the family's own text only (no extra packages): enough for the reduced budgets, and faster
    return OmegaConf.to_object(compose_config("build_grid", [f"models_dir={models_dir}", "grid=tiny-reduced",
                                                             "extra_packages=[]", *overrides]))


@pytest.fixture(scope="module")
def grid(models_dir):
    cfg = _grid_cfg(models_dir)
    return cfg, build_grid(cfg)


def test_the_reduced_grid_trains_every_run_with_exact_flops_and_bounded_epochs(grid):
    cfg, runs = grid
    # 3 budgets x 5 sizes, a second seed at the smallest budget, and the lr check's 2 runs
    assert len(runs) == 3 * 5 + 5 + 2
    sweep = sorted((r.lr_multiplier, r.peak_lr) for r in runs if r.shape == "g3" and r.budget_flops == 1.2e11)
    assert [m for m, _ in sweep] == [0.5, 1.0, 2.0] and sweep[0][1] == pytest.approx(sweep[1][1] / 2)
    shapes = {s.name: s for s in cfg.shapes}
    for r in runs:
        s = shapes[r.shape]
        per_token = flops_per_token(r.non_embedding_params, 2048, s.hidden_size, s.num_layers, cfg.seq_len)
        assert r.flops == pytest.approx(per_token * r.tokens)
        step = per_token * cfg.batch_size * cfg.seq_len  # whole steps: within half a step of the budget
        assert abs(r.flops - r.budget_flops) <= step / 2 + 1e-6
        assert r.epochs <= cfg.max_epochs and r.heldout_loss_nats > 0 and not r.reused
    with open(f"{cfg.out_dir}/grid.json") as f:
        meta = json.load(f)
    assert meta["grid"] == "tiny-reduced" and len(meta["runs"]) == 22 and meta["text_sha256"]
    seeds = [r for r in runs if r.budget_flops == min(b.flops for b in cfg.budgets) and r.shape == "g1"]
    assert sorted(r.seed for r in seeds) == [0, 1]  # run-to-run noise measured at the smallest budget


def test_a_second_build_reuses_every_run(grid, models_dir):
    cfg, runs = grid
    again = build_grid(_grid_cfg(models_dir))
    assert all(r.reused for r in again)
    assert [r.heldout_loss_nats for r in again] == [r.heldout_loss_nats for r in runs]


def test_too_little_text_for_the_budgets_is_refused_before_training(models_dir):
    with pytest.raises(ValueError, match="max_epochs"):
        build_grid(_grid_cfg(models_dir, "max_epochs=0.01", "out_dir=/nonexistent/never-written"))


def test_fit_law_writes_the_law_and_says_which_grid(grid, models_dir, tmp_path):
    from harness.projector.fit_law import fit_law

    cfg, _ = grid
    law_cfg = OmegaConf.to_object(compose_config("fit_law", [f"models_dir={models_dir}", f"results_dir={tmp_path}",
                                                             "grid_name=tiny-reduced", "resamples=8"]))
    fit_law(law_cfg)
    out = tmp_path / "scaling" / "tiny-reduced"
    law = json.loads((out / "law.json").read_text())
    assert law["grid"] == "tiny-reduced" and law["runs"] == 20 and law["max_epochs_seen"] <= 4
    assert law["approach3"]["fit"]["n_points"] == 20 and law["approach3"]["fit"]["bootstrap_attempted"] == 8
    assert 0 < law["approach3"]["compute_optimal"]["exponent"] < 1
    assert "extrapolation_test" in law and "agreement" in law  # the lr sweep's runs are not in the law
    lr = law["lr_check"]
    assert [m for m, _ in lr["loss_by_multiplier"]] == [0.5, 1.0, 2.0] and lr["seed_spread_nats"] > 0
    assert isinstance(lr["rule_near_optimum"], bool)
    rules = law["rules_check"]  # the reduced grid is built past its rules, and its law says so
    assert rules["runs"] == 22 and len(rules["broken"]) == 17 and law["depth_check"]["runs_by_layers"] == {"1": 8, "2": 12}
    assert any(w.startswith("17 of 22 runs break the grid's stated rules") for w in law["regime"]["warnings"])
    assert len(law["approach3"]["param_draws"]) == law["approach3"]["fit"]["bootstrap_kept"]
    text = (out / "law.md").read_text()
    assert "`tiny-reduced` (a measured IsoFLOP grid)" in text and "LR check (g3 at 1.2e+11 FLOPs" in text
    assert "Rules (build-grid's `rules`)" in text and "Depth check (approach 3's mean log residual by depth)" in text
    for png in ("isoflop.png", "n_opt.png", "residuals.png"):
        assert (out / png).exists()


def test_seed_replicates_differ_in_their_initialisation_too(models_dir):
    """Issue 26 item 2: every replicate was initialised with seed 0 (only its data order varied),
    so the seed spread understated run-to-run noise."""
    import torch

    from harness.tiny.build import make_model
    from harness.tiny.grid import _family_cfg

    cfg = _grid_cfg(models_dir)
    spec = cfg.shapes[0]
    weights = {s: make_model(spec, _family_cfg(cfg, 2048, s)).model.embed_tokens.weight for s in (0, 1)}
    assert not torch.equal(weights[0], weights[1])
    assert torch.equal(weights[0], make_model(spec, _family_cfg(cfg, 2048, 0)).model.embed_tokens.weight)
