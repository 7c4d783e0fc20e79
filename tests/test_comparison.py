"""Every variant against its baseline: fidelity on held-out windows, paired task tests, gates."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.measure.fidelity import ReferenceCapture, TokenReference, compare
from harness.measure.quality import heldout_loss, hf_logits
from harness.results.comparison import Judging, compare_records, gate, holm, mcnemar_exact, paired_task
from harness.run import run_point


class Plan:
    top_k, full_vocab_max, logprob_shift_nats, bootstrap_resamples, ci_level, seed = 8, 0, 0.1, 500, 0.95, 0


def _rows(correct: list[int]) -> list[dict]:
    return [{"doc_id": i, "filter": "none", "acc": float(c)} for i, c in enumerate(correct)]


def test_planted_flips_and_mcnemar_match_a_hand_computation():
    base = [1] * 12 + [0] * 8
    variant = list(base)
    for i in (0, 1, 2, 3, 4):  # right -> wrong
        variant[i] = 0
    variant[15] = 1  # wrong -> right
    t = paired_task(_rows(base), _rows(variant)[::-1], [0.99], resamples=2000, level=0.95, seed=0)  # order-free
    assert (t.right_to_wrong, t.wrong_to_right, t.items) == (5, 1, 20)
    # exact two-sided McNemar: 2 * P(Binomial(6, 1/2) <= 1) = 2 * (1 + 6) / 64
    assert t.mcnemar_p == pytest.approx(14 / 64, abs=1e-12)
    assert t.difference == pytest.approx((8 - 12) / 20)
    assert t.retention == pytest.approx(8 / 12)
    assert t.difference_ci_low < t.difference < t.difference_ci_high < 0 + 1e-9
    assert t.retention_ci_low < t.retention < t.retention_ci_high
    assert t.gates == {"0.99": gate(t.retention_ci_low, t.retention_ci_high, 0.99)}


def test_identical_logs_have_no_flips_and_p_one():
    rows = _rows([1, 0, 1, 1, 0, 1])
    t = paired_task(rows, rows, [0.99, 0.999], resamples=500, level=0.95, seed=0)
    assert (t.right_to_wrong, t.wrong_to_right, t.mcnemar_p, t.difference) == (0, 0, 1.0, 0.0)
    assert t.retention == t.retention_ci_low == t.retention_ci_high == 1.0
    assert t.gates == {"0.99": "pass", "0.999": "pass"}


def test_a_task_without_item_accuracy_says_why():
    reason = paired_task([{"doc_id": 0, "word_perplexity": 3.0}], [{"doc_id": 0, "word_perplexity": 4.0}],
                         [0.99], 100, 0.95, 0)
    assert isinstance(reason, str) and "no per-item accuracy metric" in reason


def test_gates_and_holm():
    assert [gate(0.995, 1.01, 0.99), gate(0.98, 0.995, 0.99), gate(0.97, 0.985, 0.99)] == \
        ["pass", "undecided", "fail"]
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert mcnemar_exact(0, 0) == 1.0


def _pass(model, tok, text, *observers):
    return heldout_loss(hf_logits(model), tok, text, context_length=64, stride=32, batch_size=4, observers=observers)


@pytest.fixture(scope="module")
def tiny_xs(models_dir):
    from harness.config import ModelConfig
    from harness.models import load_model

    cfg = ModelConfig(name="tiny-xs", source="local", path=str(models_dir / "tiny" / "tiny-xs"))
    loaded = load_model(cfg, torch.float32, torch.device("cpu"), True)
    text = (models_dir / "tiny" / "data" / "heldout.txt").read_text()[:6000]
    return loaded.model, loaded.tokenizer, text


def _capture(model, tok, text, top_k: int, full_vocab_max: int) -> TokenReference:
    capture = ReferenceCapture(top_k=top_k, full_vocab_max=full_vocab_max)
    _pass(model, tok, text, capture)
    return capture.result()


def test_a_model_against_itself_has_zero_kl_and_the_same_top_token(tiny_xs):
    model, tok, text = tiny_xs
    capture = ReferenceCapture(top_k=8, full_vocab_max=0)
    q = _pass(model, tok, text, capture)
    ref = capture.result()
    assert ref.topk_ids.shape == (q.heldout_tokens, 8) and not ref.exact
    f = compare(ref, _capture(model, tok, text, 8, 0), Plan)
    assert f.tokens == q.heldout_tokens and f.windows == len(ref.window_tokens)
    assert f.kl_mean_nats == pytest.approx(0, abs=1e-9) and f.kl_ci_high == pytest.approx(0, abs=1e-9)
    assert f.same_top_rate == 1.0 and f.shifted_share == 0.0
    assert f.loss_retention == pytest.approx(1.0, abs=1e-9)
    assert f.delta_p_mean == f.delta_p_rms == 0.0 and f.kl_percentiles_nats["max"] == pytest.approx(0, abs=1e-9)


def test_top_k_kl_is_a_lower_bound_of_the_exact_kl(tiny_xs):
    """A perturbed copy: the bucketed KL (from two top-k files) is positive and at most the
    full-vocabulary KL; the statistics that need no bucket agree exactly."""
    model, tok, text = tiny_xs
    noisy = type(model)(model.config)
    noisy.load_state_dict(model.state_dict())
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in noisy.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02 * p.std())
    noisy.eval()
    base_exact, base_k = _capture(model, tok, text, 8, 10**6), _capture(model, tok, text, 8, 0)
    var_exact, var_k = _capture(noisy, tok, text, 8, 10**6), _capture(noisy, tok, text, 8, 0)
    assert base_exact.exact and base_exact.top_k == model.config.vocab_size
    f_exact, f_coarse = compare(base_exact, var_exact, Plan), compare(base_k, var_k, Plan)
    assert f_exact.exact and not f_coarse.exact
    assert 0 < f_coarse.kl_mean_nats <= f_exact.kl_mean_nats
    assert f_coarse.kl_ci_low <= f_coarse.kl_mean_nats <= f_coarse.kl_ci_high
    assert f_exact.same_top_rate == f_coarse.same_top_rate < 1
    assert math.isclose(f_exact.loss_retention, f_coarse.loss_retention)
    assert f_exact.delta_p_rms == pytest.approx(f_coarse.delta_p_rms) and f_exact.delta_p_rms > 0


def _softmax_file(logits: np.ndarray, targets: np.ndarray, windows: list[int], k: int) -> TokenReference:
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ids = np.argsort(-logp, axis=-1)[:, :k].astype(np.int32)
    return TokenReference(ids, np.take_along_axis(logp, ids, -1).astype(np.float32),
                          logp[np.arange(len(targets)), targets].astype(np.float32),
                          np.asarray(windows, dtype=np.int32), logits.shape[1])


def test_statistics_follow_llama_perplexity_definitions():
    """Known distributions: KL per token, same top, delta-p (variant minus base, on the true token),
    its RMS and percentiles by linear interpolation, as llama-perplexity --kl-divergence gives them."""
    rng = np.random.default_rng(1)
    n, vocab = 60, 16
    base_logits = rng.normal(size=(n, vocab)) * 2
    var_logits = base_logits + rng.normal(size=(n, vocab)) * 0.5
    targets = rng.integers(0, vocab, size=n)
    base, var = (_softmax_file(x, targets, [20, 20, 20], vocab) for x in (base_logits, var_logits))
    f = compare(base, var, Plan)
    pb = np.exp(base_logits) / np.exp(base_logits).sum(-1, keepdims=True)
    pv = np.exp(var_logits) / np.exp(var_logits).sum(-1, keepdims=True)
    kl = (pb * np.log(pb / pv)).sum(-1)
    dp = pv[np.arange(n), targets] - pb[np.arange(n), targets]
    assert f.exact and f.kl_mean_nats == pytest.approx(kl.mean(), rel=1e-5)
    assert f.kl_percentiles_nats["99.9"] == pytest.approx(np.percentile(kl, 99.9), rel=1e-5)
    assert f.kl_percentiles_nats["max"] == pytest.approx(kl.max(), rel=1e-5)
    assert f.same_top_rate == pytest.approx((pb.argmax(-1) == pv.argmax(-1)).mean())
    assert f.delta_p_mean == pytest.approx(dp.mean(), abs=1e-6)
    assert f.delta_p_rms == pytest.approx(np.sqrt((dp ** 2).mean()), rel=1e-5)
    assert f.delta_p_percentiles["25"] == pytest.approx(np.percentile(dp, 25), abs=1e-6)
    assert f.delta_p_ci_low <= f.delta_p_mean <= f.delta_p_ci_high
    assert "linear" in f.percentile_method
    k4 = compare(*(_softmax_file(x, targets, [20, 20, 20], 4) for x in (base_logits, var_logits)), Plan)
    assert k4.kl_mean_nats <= f.kl_mean_nats and k4.delta_p_mean == pytest.approx(f.delta_p_mean, abs=1e-6)
    with pytest.raises(ValueError, match="different held-out windows"):
        compare(base, _softmax_file(var_logits, targets, [30, 30], vocab), Plan)


def test_cost_carries_the_intervals_of_what_it_is_derived_from(run_cfg):
    """Rate and dollars carry the interval of the point's own median TPOT, the speed-up the paired
    bootstrap's; an unpaired ratio has none (the drift between two points is in neither's samples)."""
    from harness.report.scorecard import scorecards

    price, short = 0.36, ("model=tiny-xs", "bench.repeats=2", "hardware.price_per_hour_usd=0.36")
    base = run_point(run_cfg(*short, "variant=fp32"))
    paired = run_point(run_cfg(*short, "variant=bf16", "bench.paired_baseline=true"))
    apart = run_point(run_cfg(*short, "variant=torch-dynamic-int8"))
    comparisons = compare_records([base, paired, apart], Judging())
    c, t, p = comparisons[paired.run_id].cost[0], paired.latency.scenarios[0].tpot_ms, paired.latency.paired
    assert c.batch_size == 1 and c.tpot_ratio_kind == "paired"
    assert (c.tpot_ratio, c.tpot_ratio_ci_low, c.tpot_ratio_ci_high) == (p.tpot_ratio, p.tpot_ci_low, p.tpot_ci_high)
    usd = lambda tpot_ms: price / 3600 * tpot_ms / 1000 * 1e6  # noqa: E731  (b = 1)
    assert (c.output_tokens_per_s_ci_low, c.output_tokens_per_s, c.output_tokens_per_s_ci_high) == pytest.approx(
        (1000 / t.ci_high, 1000 / t.median, 1000 / t.ci_low))  # the slow end of TPOT is the low rate
    assert (c.usd_per_million_tokens_ci_low, c.usd_per_million_tokens, c.usd_per_million_tokens_ci_high) == \
        pytest.approx((usd(t.ci_low), usd(t.median), usd(t.ci_high)))
    assert c.usd_per_million_tokens_ci_low < c.usd_per_million_tokens_ci_high
    u = comparisons[apart.run_id].cost[0]
    assert u.tpot_ratio_kind == "unpaired" and u.tpot_ratio_ci_low is None and u.tpot_ratio_ci_high is None
    assert u.usd_per_million_tokens_ci_low < u.usd_per_million_tokens < u.usd_per_million_tokens_ci_high

    (card,) = scorecards([base, paired, apart], comparisons, Judging())
    rows = card.cost.set_index("variant")
    assert rows.loc["bf16", "$/M tok"] == (f"{c.usd_per_million_tokens:.4g} [{c.usd_per_million_tokens_ci_low:.4g}, "
                                           f"{c.usd_per_million_tokens_ci_high:.4g}]")
    assert rows.loc["bf16", "tok/s b=1"].startswith(f"{c.output_tokens_per_s:.4g} [")
    assert rows.loc["bf16", "speed-up"] == (f"{1 / p.tpot_ratio:.2f}x p [{1 / p.tpot_ci_high:.2f}, "
                                            f"{1 / p.tpot_ci_low:.2f}]")
    assert rows.loc["torch-dynamic-int8", "speed-up"] == f"{1 / u.tpot_ratio:.2f}x u"
    assert rows.loc["fp32 (baseline)", "$/M tok"].count("[") == 1
    # the one row per variant: each figure read from its own record, the baseline first
    glance = card.glance.set_index("engine · variant")
    assert list(glance.index) == ["fp32 (baseline)", "bf16", "torch-dynamic-int8"]
    f = comparisons[paired.run_id].fidelity
    row = glance.loc["bf16"]
    assert row["KL nats [95%]"].lstrip(">=").startswith(f"{f.kl_mean_nats:.3g} [") and row["loss retention"] == f"{f.loss_retention:.4f}"
    assert row["bits/byte"] == f"{paired.quality.bits_per_byte:.4f}"
    assert row["speed-up"] == rows.loc["bf16", "speed-up"] + " (within one run)"
    assert row["$/M tok [95%]"] == rows.loc["bf16", "$/M tok"]
    assert row["weights MiB"] == f"{paired.memory.weights_bytes / 2**20:.3g}"
    assert row["peak RSS MiB"].endswith("*") and not glance.loc["torch-dynamic-int8", "peak RSS MiB"].endswith("*")
    assert row["roofline"] == f"{paired.roofline.fraction_of_bandwidth:.2f}"
    assert glance.loc["fp32 (baseline)", "KL nats [95%]"] == "-"
    assert glance.loc["fp32 (baseline)", "speed-up"] == "1 (reference)"
    plotted = {pt["variant"]: pt for pt in card.points}
    assert (plotted["bf16"]["usd_lo"], plotted["bf16"]["usd_hi"]) == (c.usd_per_million_tokens_ci_low,
                                                                      c.usd_per_million_tokens_ci_high)


@pytest.mark.slow
def test_a_variant_run_before_its_baseline_is_compared_by_the_report_and_a_price_change_remeasures_nothing(run_cfg):
    lone = run_point(run_cfg("model=tiny-xs", "variant=torch-dynamic-int8", "eval=ci"))
    assert lone.status == "ok", lone.error
    assert lone.fidelity is None and lone.fidelity_missing.startswith("no fp32 reference")
    judging = Judging(prices={lone.hardware.label: 0.5})
    c = compare_records([lone], judging)[lone.run_id]
    assert any(m.startswith("fidelity: no fp32 reference") for m in c.missing)
    assert any("no ok fp32 record" in m for m in c.missing)
    built = run_point(run_cfg("model=tiny-xs", "variant=torch-dynamic-int8", "eval=ci",
                              "compare.build_missing_reference=true", "force=true"))
    assert built.run_id == lone.run_id  # the option does not change what the point is
    f = built.fidelity
    assert f is not None and 0 < f.kl_mean_nats < 0.05 and f.same_top_rate > 0.95
    base = run_point(run_cfg("model=tiny-xs", "variant=fp32", "eval=ci"))
    assert base.fidelity is None and base.fidelity_missing is None
    # a new price (and a report threshold) is not part of the point: the run finds the record and skips it
    again = run_point(run_cfg("model=tiny-xs", "variant=torch-dynamic-int8", "eval=ci",
                              "hardware.price_per_hour_usd=0.5", "eval.progress_bars=true"))
    assert (again.run_id, again.created_at) == (built.run_id, built.created_at)

    # the baseline ran after its variant: the comparison is made from both records, in either order
    c = compare_records([again, base], judging)[again.run_id]
    assert compare_records([base, again], judging)[again.run_id] == c
    assert base.run_id not in compare_records([again, base], judging)
    assert c.baseline_run_id == base.run_id
    assert c.missing == ["task meek_ci_rolling: no per-item accuracy metric (acc, exact_match) in the logs"]
    assert c.fidelity == f
    cost = c.cost[0]
    assert cost.tpot_ratio_kind == "unpaired" and np.isfinite(cost.output_tokens_per_s)
    assert cost.usd_per_million_tokens == pytest.approx(0.5 / 3600 / cost.output_tokens_per_s * 1e6)
    assert compare_records([again, base], Judging())[again.run_id].cost[0].usd_per_million_tokens is None
    assert c.weights_bytes_per_param == again.memory.weights_bytes / base.model.params
    mc = c.tasks["meek_ci_mc"]
    assert mc.items == base.quality.tasks["meek_ci_mc"].n_samples
    assert mc.variant - mc.baseline == pytest.approx(again.quality.tasks["meek_ci_mc"].metrics["acc"]
                                                     - base.quality.tasks["meek_ci_mc"].metrics["acc"])
    assert "meek_ci_rolling" not in c.tasks

    from harness.report import write_report
    results = Path(again.quality.samples_path).parents[2]
    text = write_report([results], results / "report", judging).read_text()
    assert "### tiny-xs on" in text and "torch-dynamic-int8" in text and "p (Holm)" in text
    assert f"{cost.usd_per_million_tokens:.4g}" in text  # the report's price, not the run's (none)
    assert (results / "report" / next(p.name for p in (results / "report").glob("scorecard-retention-cost-*"))).exists()
    assert list((results / "report").glob("scorecard-kl-bytes-*.png"))


@pytest.mark.slow
def test_fidelity_is_the_same_whatever_order_the_points_ran_in(models_dir, tmp_path):
    """Baseline then variant, variant then baseline, and both at once (joblib, two workers): the
    scorecard's fidelity rows are the same, and retention and cost never vanish."""
    import subprocess
    import sys

    import pandas as pd

    from harness.report.scorecard import scorecards
    from harness.results.store import load_records
    from tests.conftest import compose_config

    common = ["model=tiny-xs", f"models_dir={models_dir}", "bench=quick", "quality.max_bytes=5000",
              "hardware.probe=false", "hardware.price_per_hour_usd=0.2"]

    def run(d: Path, variant: str):
        rec = run_point(compose_config("run", [*common, f"results_dir={d}", f"variant={variant}"]))
        assert rec.status == "ok", rec.error
        return rec

    run(tmp_path / "in-order", "fp32")
    assert run(tmp_path / "in-order", "torch-dynamic-int8").fidelity is not None
    assert run(tmp_path / "reversed", "torch-dynamic-int8").fidelity is None  # no baseline yet: none in the record
    run(tmp_path / "reversed", "fp32")
    both = subprocess.run([sys.executable, "-m", "harness", "run", "-m", "hydra/launcher=joblib",
                           "hydra.launcher.n_jobs=2", "variant=fp32,torch-dynamic-int8", *common,
                           f"results_dir={tmp_path / 'parallel'}"], capture_output=True, text=True, timeout=600)
    assert both.returncode == 0, both.stderr[-3000:]
    cards = {}
    for name in ("in-order", "reversed", "parallel"):
        records = load_records([tmp_path / name]).records
        (card,) = scorecards(records, compare_records(records, Judging()), Judging())
        cards[name] = card
    expected = cards["in-order"].fidelity
    assert expected.loc[0, "KL nats"].startswith(">=") and expected.loc[0, "loss retention"] != "-"
    for name in ("reversed", "parallel"):
        pd.testing.assert_frame_equal(cards[name].fidelity, expected)
        cost = cards[name].cost.set_index("variant").loc["torch-dynamic-int8"]
        assert cost["$/M tok"] != "-" and cost["speed-up"].endswith("x u")
