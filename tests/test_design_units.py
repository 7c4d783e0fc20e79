"""Design points, not rows (issue 42 item 5): clustered rows count once in a fit's 2x rule, its
degrees of freedom, its bootstrap's keep rule and its resampling."""
import numpy as np
import pytest

from harness.projector.fit import FitError, _bootstrap, design_units, fit_sigmoid
from harness.projector.isoflop import agreement


def _sigmoid_points():
    """tiny-m and four quantised variants within 0.006 nats of it, and two other sizes."""
    loss = [4.040, 4.041, 4.042, 4.044, 4.046, 4.7, 5.0]
    acc = [0.62, 0.61, 0.62, 0.60, 0.61, 0.45, 0.33]
    models = ["tiny-m"] * 5 + ["tiny-s", "tiny-xs"]
    return loss, acc, models


def test_a_model_and_its_variants_are_one_point_of_the_sigmoid():
    loss, acc, models = _sigmoid_points()
    fit_sigmoid(loss, acc, resamples=0, floor=0.25)  # rows as points: 7 >= 6, it fits
    with pytest.raises(FitError, match="needs at least 6 distinct design points.*got 3"):
        fit_sigmoid(loss, acc, resamples=0, floor=0.25, clusters=models)


def test_the_bootstrap_resamples_whole_clusters_and_keeps_only_resamples_with_enough_units():
    units = design_units([np.zeros(13)], ["a"] * 10 + ["b", "c", "d"])  # 10 replicate rows of one unit
    assert units.tolist() == [0] * 10 + [1, 2, 3]
    seen = []

    def refit(idx):
        seen.append(idx)
        return {"x": 0.0}, True

    _, attempted, _ = _bootstrap(units, 200, 0, 2, refit, clustered=True)
    assert attempted == 200 and seen
    for idx in seen:
        drawn = units[idx]
        assert len(set(drawn.tolist())) > 2  # more units than parameters, whatever the row count
        for u in set(drawn.tolist()):  # a unit comes with all its rows, as many times as it was drawn
            assert (drawn == u).sum() % (units == u).sum() == 0
    seen.clear()  # replicates resampled as rows: still kept only with more units than parameters
    _bootstrap(units, 200, 0, 2, refit)
    assert seen and all(len(set(units[idx].tolist())) > 2 for idx in seen)
    with pytest.raises(FitError, match="one per point"):
        design_units([np.zeros(3)], ["a", "b"])


def test_a_line_through_three_optima_is_left_out_of_the_agreement_check():
    fits = {"approach1": {"a": 0.8, "a_band": [0.75, 0.85], "points": 3},
            "approach3": {"compute_optimal": {"a": 0.5}, "compute_optimal_bands": {"a": [0.45, 0.55]}}}
    ag = agreement(fits)
    assert ag["bands_overlap"] and "3 optima for 2 parameters" in ag["left_out"]["approach1"]
    fits["approach1"]["points"] = 4
    assert not agreement(fits)["bands_overlap"]
