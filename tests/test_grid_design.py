"""The grid's design (issue 26 item 2): its stated rules checked against every planned run before
any training, the depth rule checked against the data by approach 3's residuals, and a held-out
text drawn from the grid's own training mixture beside the family's."""
from dataclasses import replace

import numpy as np
import pytest
from omegaconf import OmegaConf

from harness.config import TinyModelSpec
from harness.projector.isoflop import compute_optimal, depth_check, in_distribution_fit, regime
from harness.projector.laws import Chinchilla
from harness.tiny.corpus import is_heldout, package_docstrings
from harness.tiny.grid import _family_text, _tokenizer, check_epochs, check_rules, plan_runs, rule_breaks
from tests.conftest import compose_config
from tests.test_isoflop import TRUE, grid_runs

VOCAB = 2048  # the tiny family's tokenizer


def _grid(name):
    return OmegaConf.to_object(compose_config("build_grid", [f"grid={name}"]))


def test_the_full_grid_keeps_its_rules_and_a_plan_that_breaks_them_is_refused_naming_each_run():
    full = _grid("tiny")
    planned = plan_runs(full, VOCAB)
    assert [p.rule_breaks for p in planned] == [[]] * len(planned)
    assert min(p.steps for p in planned) == 167  # g3 at the smallest budget: the fewest steps, above 100
    reduced = _grid("tiny-reduced")
    planned = plan_runs(reduced, VOCAB)
    assert not reduced.rules.enforce and sum(bool(p.rule_breaks) for p in planned) == 17
    check_rules(reduced, planned)  # built anyway: logged, kept in grid.json, warned in the law
    reduced.rules.enforce = True
    with pytest.raises(ValueError, match=r"(?s)break the grid's rules, nothing trained.*g5 at 4e\+10 FLOPs: 9 steps "
                                         r"< rules.min_steps=100"):
        check_rules(reduced, planned)
    deep = TinyModelSpec(name="deep", hidden_size=16, num_layers=4, num_heads=4, intermediate_size=48)
    assert rule_breaks(full, deep, 1000) == [
        "aspect ratio hidden_size / num_layers = 4 outside rules.aspect_ratio=[16, 64] (depth rule)",
        "head dimension 4 < rules.min_head_dim=8"]


def test_the_depth_check_flags_runs_of_one_depth_sitting_off_the_law():
    layers = {"g00": 1, "g0": 1, "g1": 1, "g2": 1, "g3": 2, "g4": 2, "g5": 2, "g6": 2, "g7": 3, "g8": 3, "g9": 3}
    runs = [replace(r, n_layers=layers[r.name.split("-")[0]]) for r in grid_runs(np.random.default_rng(5))]
    clean = depth_check(runs, TRUE)
    assert not clean["depth_shows"] and clean["runs_by_layers"] == {"1": 11, "2": 7, "3": 2}
    shallow_worse = [replace(r, loss=r.loss * 1.03) if r.n_layers == 1 else r for r in runs]
    found = depth_check(shallow_worse, TRUE)
    assert found["depth_shows"] and 1 in found["widest_pair"]
    assert found["mean_log_residual_by_layers"]["1"] == pytest.approx(
        clean["mean_log_residual_by_layers"]["1"] + np.log(1.03), rel=1e-9)
    assert depth_check([replace(r, n_layers=None) for r in runs], TRUE) is None  # a table without depths
    fits = {"approach3": {"params": {"E": 1.0}, "compute_optimal": {"exponent": 0.1}}, "depth_check": found,
            "rules_check": {"rules": {}, "runs": 22, "broken": {"g5-c4.0e10-s0": ["9 steps < rules.min_steps=100"]}}}
    warnings = regime(fits)["warnings"]
    assert any(w.startswith("depth shows in the fit: runs of 1 and") for w in warnings)
    assert any(w.startswith("1 of 22 runs break the grid's stated rules") for w in warnings)


def test_the_grid_holds_out_documents_of_its_own_training_mixture(models_dir):
    """Most of the grid's training text is package docstrings, but its held-out loss is read on the
    family's split only (the family's loss scale, which the variants need). Now 1 in 20 of the
    extras is held out too, so each run also has a loss on held-out text of its own mixture."""
    from pathlib import Path

    cfg = OmegaConf.to_object(compose_config("build_grid", [f"models_dir={models_dir}", "grid=tiny-reduced",
                                                            "extra_packages=[numpy]", "extra_max_chars=300000"]))
    text = _family_text(cfg, Path(cfg.family_dir))
    family_heldout = (Path(cfg.family_dir) / "data" / "heldout.txt").read_text(encoding="utf-8")
    assert text.heldout == family_heldout  # the main loss keeps the family's scale
    extra, _ = package_docstrings(["numpy"], 300000)
    held = [d for d in extra if is_heldout(d, 20)]
    assert len(held) >= 5 and text.in_distribution.startswith(family_heldout)
    assert all(d in text.in_distribution for d in held)
    assert not set(held) & set(text.train)  # held out: never trained on
    assert len(set(extra) - set(held) - set(text.train)) == 0  # the rest is trained on
    assert "1 in 20 of those held out" in text.description


def test_approach_3_on_the_in_distribution_loss_is_fitted_beside_the_main_one():
    other = Chinchilla(E=2.0, A=300.0, B=900.0, a=0.45, b=0.3)
    runs = [replace(r, loss_in_distribution=float(other.loss(r.n, r.d))) for r in grid_runs(np.random.default_rng(0))]
    fit = in_distribution_fit(runs, 1e-3)
    assert fit["compute_optimal"]["exponent"] == pytest.approx(compute_optimal(other)["exponent"], rel=1e-3)


def test_the_full_grid_has_text_enough_for_its_largest_run(models_dir):
    """The shipped full grid must build: once 1 in 20 extra documents was held out, its largest run
    (g3 at 1.2e13 FLOPs) would have seen its text 4.03 times, over max_epochs, and build-grid
    refused. The test family's text and tokenizer are the full family's (its recipe trains fewer
    tokens on the same corpus)."""
    from pathlib import Path

    from harness.tiny.build import encode_documents

    cfg = OmegaConf.to_object(compose_config("build_grid", [f"models_dir={models_dir}"]))
    assert cfg.name == "tiny"
    tokenizer, _ = _tokenizer(cfg, Path(cfg.family_dir))
    train_tokens = len(encode_documents(tokenizer, _family_text(cfg, Path(cfg.family_dir)).train))
    planned = plan_runs(cfg, len(tokenizer))
    assert 3.0 < check_epochs(cfg, planned, train_tokens) <= cfg.max_epochs
    with pytest.raises(ValueError, match=r"would see its text \d\.\d\d times \(max_epochs=3.0\)"):
        check_epochs(replace(cfg, max_epochs=3.0), planned, train_tokens)


def test_the_confounds_of_a_grids_build_are_stated_in_its_law_and_every_projection_of_it():
    """Issue 42 item 6: the grid's data mixture against the family's, its fixed batch and its
    repetition were in no band and said nowhere beside the law."""
    from harness.projector.fit_law import regime_lines
    from harness.projector.grid_runs import confounds

    runs = [{"tokens": 2048 * s, "steps": s, "epochs": e} for s, e in ((39, 0.03), (400, 3.77))]
    meta = {"text": "numpy docstrings", "heldout": "the family's held-out split", "train_tokens": 3e6, "runs": runs}
    said = confounds(meta)
    assert [c.split(":")[0] for c in said] == ["data mixture", "batch", "repetition"]
    assert "numpy docstrings" in said[0] and "2,048 tokens per step" in said[1] and "3.77 epochs" in said[2]
    assert len(confounds(meta | {"runs": [dict(r, epochs=0.5) for r in runs]})) == 2  # no repetition to state
    assert confounds(meta | {"train_tokens": None}) == []  # a table of published runs: its paper states them
    fits = {"approach3": {"compute_optimal": {"exponent": 0.05, "a": 0.5}, "params": {"E": 1.0}},
            "confounds": said}
    reg = regime(fits)
    assert reg["confounds"] == said and sum("**Confound**" in line for line in regime_lines(reg)) == 3
