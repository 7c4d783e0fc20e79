"""Quantised variants on a real tiny model: accuracy cost, memory, and unsupported combinations."""
import dataclasses
import importlib.util
import math

import pytest

from harness.run import run_point
from harness.variants.quantise import METHODS, is_refusal

INT8 = ["bnb-int8", "ao-int8-weight", "ao-int8-dynamic", "torch-dynamic-int8", "torch-dynamic-int8-pc"]
FOUR_BIT = ["bnb-nf4", "bnb-fp4"]


@pytest.fixture(scope="module")
def points(models_dir, tmp_path_factory):
    from tests.conftest import compose_config

    results = tmp_path_factory.mktemp("quant-results")

    def run(variant):
        cfg = compose_config("run", [f"models_dir={models_dir}", f"results_dir={results}", "model=tiny-s",
                                     f"variant={variant}", "bench=quick", "quality.max_bytes=40000"])
        return run_point(cfg)
    return {v: run(v) for v in ["fp32", *INT8, *FOUR_BIT, "ao-int4-weight"]}


@pytest.mark.parametrize("variant", INT8)
def test_int8_costs_under_one_percent_and_shrinks_weights(points, variant):
    base, q = points["fp32"], points[variant]
    assert q.status == "ok", q.error
    rel = abs(q.quality.heldout_loss_nats - base.quality.heldout_loss_nats) / base.quality.heldout_loss_nats
    assert rel < 0.01, rel
    assert q.memory.weights_bytes < base.memory.weights_bytes  # the tied fp32 embedding (55% here) stays as is
    assert q.variant.kind == "quantise" and q.variant.weight_bits == 8
    assert q.variant.library and q.variant.library_version


@pytest.mark.parametrize("variant", FOUR_BIT)
def test_four_bit_shrinks_further_with_a_larger_finite_loss_change(points, variant):
    base, int8, q = points["fp32"], points["bnb-int8"], points[variant]
    assert q.status == "ok", q.error
    assert q.memory.weights_bytes < int8.memory.weights_bytes
    d4 = abs(q.quality.heldout_loss_nats - base.quality.heldout_loss_nats)
    d8 = abs(int8.quality.heldout_loss_nats - base.quality.heldout_loss_nats)
    assert math.isfinite(q.quality.heldout_loss_nats) and d4 > d8


def test_torchao_int4_runs_on_cpu_with_bounded_cost(points):
    base, q = points["fp32"], points["ao-int4-weight"]
    assert q.status == "ok", q.error
    assert 0 < q.quality.heldout_loss_nats - base.quality.heldout_loss_nats < 0.5
    assert q.latency.tpot_ms.median > 0


def test_bnb_4bit_off_its_block_size_is_handled_whatever_the_library_does(run_cfg):
    """tiny-m's layers are 96 wide, not a multiple of bitsandbytes' CPU 4-bit block (64). Some
    releases refuse, others quantise: a refusal must be ``unsupported`` with the library's reason,
    an acceptance must really quantise (weights shrink, loss moves, a little)."""
    base = run_point(run_cfg("model=tiny-m", "variant=fp32"))
    rec = run_point(run_cfg("model=tiny-m", "variant=bnb-nf4"))
    if rec.status == "unsupported":
        assert rec.error.startswith("UnsupportedVariantError: bnb-nf4: ") and "Error: " in rec.error.split("bnb-nf4: ")[1]
    else:
        assert rec.status == "ok", rec.error
        assert rec.memory.weights_bytes < 0.6 * base.memory.weights_bytes
        delta = rec.quality.heldout_loss_nats - base.quality.heldout_loss_nats
        assert delta != 0 and abs(delta) < 0.05 * base.quality.heldout_loss_nats


def test_a_library_refusal_is_recognised_by_where_it_was_raised():
    def raised_in(filename, exc):
        namespace = {}
        exec(compile(f"def f():\n    raise {exc}", filename, "exec"), namespace)
        try:
            namespace["f"]()
        except Exception as e:
            return e

    assert is_refusal(raised_in("/site-packages/torchao/quantization/x.py", "RuntimeError('no kernel')"), "torchao")
    assert is_refusal(raised_in("/anywhere/ours.py", "NotImplementedError('no cpu path')"), "torchao")
    assert not is_refusal(raised_in("/work/harness/variants/x.py", "TypeError('our bug')"), "torchao")
    assert not is_refusal(raised_in("/site-packages/torchao/x.py", "RuntimeError('x')"), "bitsandbytes")


def test_a_harness_bug_in_a_quantised_point_is_failed_not_unsupported(run_cfg, monkeypatch):
    def buggy(model, opts, device):
        raise TypeError("harness bug: wrong argument")

    monkeypatch.setitem(METHODS, "torch-dynamic-int8",
                        dataclasses.replace(METHODS["torch-dynamic-int8"], transform=buggy))
    rec = run_point(run_cfg("model=tiny-xs", "variant=torch-dynamic-int8"))
    assert rec.status == "failed" and rec.error == "TypeError: harness bug: wrong argument"


@pytest.mark.skipif(importlib.util.find_spec("mslk") is not None, reason="the int4 kernel package is installed")
def test_unsupported_combination_is_a_record_not_a_crash(run_cfg):
    # group 32 fits tiny-s's 64-wide layers, so torchao really tries, and asks for its kernel package
    rec = run_point(run_cfg("model=tiny-s", "variant=ao-int4-tinygemm", "variant.options.group_size=32"))
    assert rec.status == "unsupported"
    assert "ao-int4-tinygemm" in rec.error and "mslk" in rec.error


def test_a_method_that_quantises_nothing_is_unsupported(run_cfg):
    # tiny-xs layers are 32 wide: a group of 128 fits none of them, and torchao skips them silently
    rec = run_point(run_cfg("model=tiny-xs", "variant=ao-int4-tinygemm"))
    assert rec.status == "unsupported" and "unquantised" in rec.error


def test_option_typo_fails_at_compose_naming_the_schema(run_cfg):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as e:
        run_cfg("model=tiny-xs", "variant=bnb-int8", "variant.options.llm_int8_treshold=5")
    assert "llm_int8_treshold" in str(e.value.__cause__ or e.value) or "llm_int8_treshold" in str(e.value)


def test_unknown_method_is_a_failed_record_listing_methods(run_cfg):
    rec = run_point(run_cfg("model=tiny-xs", "variant=bnb-int8", "variant.method=int3"))
    assert rec.status == "failed" and "int3" in rec.error and "bnb-nf4" in rec.error


def test_int8_stays_closer_to_the_baseline_than_any_four_bit_variant(points):
    """Fidelity against the fp32 reference written by the fp32 point: int8 keeps the top token
    almost everywhere and moves the distributions less than every 4-bit method."""
    four_bit = [points[v] for v in [*FOUR_BIT, "ao-int4-weight"] if points[v].status == "ok"]
    assert four_bit, "no 4-bit variant ran"
    for v in INT8:
        f = points[v].fidelity
        assert f is not None, points[v].fidelity_missing
        assert f.same_top_rate > 0.95, (v, f.same_top_rate)
        for q in four_bit:
            assert f.kl_mean_nats < q.fidelity.kl_mean_nats, (v, q.variant.name)
    assert points["fp32"].fidelity is None


@pytest.mark.parametrize("variant,schemes", [("torch-dynamic-int8", {"per_tensor_affine"}),
                                             ("torch-dynamic-int8-pc", {"per_channel_affine"})])
def test_torch_dynamic_int8_scales_per_tensor_or_per_output_channel(models_dir, variant, schemes):
    import torch
    from omegaconf import OmegaConf

    from harness.variants import prepare
    from tests.conftest import compose_config

    cfg = OmegaConf.to_object(compose_config("run", [f"models_dir={models_dir}", "model=tiny-s",
                                                     f"variant={variant}"]))
    model = prepare(cfg.model, cfg.variant, torch.device("cpu")).loaded.model
    quantised = [m for m in model.modules() if type(m).__name__ == "Linear" and hasattr(m, "weight")
                 and callable(m.weight)]
    assert quantised, "no dynamically quantised Linear layer"
    assert {str(m.weight().qscheme()).removeprefix("torch.") for m in quantised} == schemes
