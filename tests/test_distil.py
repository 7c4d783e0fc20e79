"""Distillation on the tiny family: KD beats the smallest baseline and the continue-ce control."""
import dataclasses
import os

import pytest
import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from harness.models.card import read_card
from harness.config import DistilOptions, ModelConfig, StudentInit
from harness.models.params import count_params
from harness.run import run_point
from harness.variants.distil import VocabularyMismatchError, _init_student, recipe_hash, shared_vocab_size

pytestmark = pytest.mark.slow  # trains two students
TOKENS = "variant.options.train_tokens=131072"  # 64 steps: the same budget for KD and its control


@pytest.fixture(scope="module")
def distilled(models_dir, tmp_path_factory):
    from tests.conftest import compose_config

    results = tmp_path_factory.mktemp("distil-results")

    def run(*overrides):
        return run_point(compose_config("run", [f"models_dir={models_dir}", f"results_dir={results}",
                                                "model=tiny-xs", "bench=quick", "quality.max_bytes=40000",
                                                *overrides]))
    points = {
        "baseline": run("variant=fp32"),
        "kd": run("variant=distil-kd", "model@variant.options.teacher=tiny-m", TOKENS),
        "ce": run("variant=continue-ce", "model@variant.options.teacher=tiny-m", TOKENS),
    }
    points["run"] = run
    return points


def test_kd_beats_smallest_baseline_and_its_control(distilled):
    base, kd, ce = (distilled[k] for k in ("baseline", "kd", "ce"))
    for r in (base, kd, ce):
        assert r.status == "ok", r.error
    lb, lk, lc = (r.quality.heldout_loss_nats for r in (base, kd, ce))
    print(f"held-out loss: baseline {lb:.4f}, continue-ce {lc:.4f}, kd {lk:.4f}")
    assert lk < lb
    assert lk < lc


def test_distilled_record_accounts_compute(distilled):
    kd, ce = distilled["kd"], distilled["ce"]
    card, info = kd.variant.extra, kd.variant.extra["distillation"]
    assert kd.variant.kind == "distil" and info["teacher"] == "tiny-m" and info["distil_tokens"] == 131072
    n_t, n_s = info["teacher_params"], card["params"]
    assert info["distil_flops"] == 2 * n_t * 131072 + 6 * n_s * 131072
    ce_info = ce.variant.extra["distillation"]
    assert ce_info["teacher"] is None and ce_info["distil_flops"] == 6 * n_s * 131072
    assert kd.model.distilled_from == "tiny-m" and ce.model.distilled_from is None
    assert kd.model.train_tokens == distilled["baseline"].model.train_tokens + 131072


def test_student_is_reused_not_retrained(distilled):
    """Re-measuring the point (force=true) loads the saved student; only options.force retrains."""
    path = distilled["kd"].model.source
    card_file = f"{path}/card.json"
    before = read_card(path)
    mtime = os.stat(card_file).st_mtime_ns
    again = distilled["run"]("variant=distil-kd", "model@variant.options.teacher=tiny-m", TOKENS, "force=true")
    assert again.status == "ok" and again.model.source == path
    assert os.stat(card_file).st_mtime_ns == mtime and read_card(path) == before
    assert again.quality.heldout_loss_nats == pytest.approx(distilled["kd"].quality.heldout_loss_nats, abs=1e-9)
    assert AutoModelForCausalLM.from_pretrained(path).config.num_hidden_layers >= 1


def test_same_shape_student_decodes_like_its_baseline_measured_paired(distilled, models_dir):
    """A student has tiny-xs's shape and decodes the way tiny-xs does: the saved config is the
    baseline's architecture with the KV cache on (a student once saved use_cache=False and decoded
    several times slower). Its time per output token is measured interleaved with tiny-xs fp32 in
    the same point; the ratio is reported, not asserted (timing on a shared CPU is no pass/fail)."""
    student = AutoModelForCausalLM.from_pretrained(distilled["kd"].model.source).config.to_dict()
    baseline = AutoModelForCausalLM.from_pretrained(models_dir / "tiny" / "tiny-xs").config.to_dict()
    assert student["use_cache"] is True
    architecture = ("model_type", "architectures", "hidden_size", "intermediate_size", "num_hidden_layers",
                    "num_attention_heads", "num_key_value_heads", "vocab_size", "max_position_embeddings",
                    "tie_word_embeddings", "torch_dtype", "dtype")
    assert {k: student.get(k) for k in architecture} == {k: baseline.get(k) for k in architecture}
    rec = distilled["run"]("variant=distil-kd", "model@variant.options.teacher=tiny-m", TOKENS,
                           "bench.paired_baseline=true", "bench.repeats=2", "bench.min_iterations=15", "force=true")
    p = rec.latency.paired
    assert p is not None and p.pairs == 30, rec.latency.paired_with
    assert p.tpot_ci_low <= p.tpot_ratio <= p.tpot_ci_high
    print(f"student / tiny-xs TPOT, paired: {p.tpot_ratio:.3f} [{p.tpot_ci_low:.3f}, {p.tpot_ci_high:.3f}]")


def test_recipe_hash_tracks_what_changes_the_student():
    student = ModelConfig(name="s", source="local", path="/x")
    opts = DistilOptions(teacher=ModelConfig(name="t", source="local", path="/t"), text="/train.txt")
    key = recipe_hash(student, opts, "kd")
    assert recipe_hash(student, dataclasses.replace(opts, force=True, out_root="/elsewhere"), "kd") == key
    assert recipe_hash(student, dataclasses.replace(opts, seed=1), "kd") != key
    assert recipe_hash(student, opts, "continue-ce") != key


def test_every_kth_layer_start_keeps_the_chosen_layers(models_dir):
    cfg = ModelConfig(name="tiny-m", source="local", path=str(models_dir / "tiny" / "tiny-m"))
    full = AutoModelForCausalLM.from_pretrained(cfg.path)
    loaded, desc = _init_student(cfg, StudentInit(kind="every_kth_layer", k=2), torch.float32, torch.device("cpu"))
    student = loaded.model
    assert student.config.num_hidden_layers == 2 and "2 of 3" in desc  # layers 0 and 2
    for kept, original in zip(student.model.layers, (full.model.layers[0], full.model.layers[2])):
        assert torch.equal(kept.mlp.up_proj.weight, original.mlp.up_proj.weight)
    ids = torch.tensor([[1, 2, 3]])
    out = student.generate(input_ids=ids, max_new_tokens=4, min_new_tokens=4, do_sample=False)  # KV cache indices
    assert out.shape == (1, 7)


def test_fresh_start_has_the_new_shape_and_new_weights(models_dir):
    cfg = ModelConfig(name="tiny-m", source="local", path=str(models_dir / "tiny" / "tiny-m"))
    init = StudentInit(kind="fresh", shape={"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
                                            "num_key_value_heads": 2, "head_dim": 16})
    loaded, _ = _init_student(cfg, init, torch.float32, torch.device("cpu"))
    assert loaded.model.config.hidden_size == 32
    assert count_params(loaded.model).total < count_params(AutoModelForCausalLM.from_pretrained(cfg.path)).total
    with pytest.raises(ValueError, match="not_a_field"):
        _init_student(cfg, StudentInit(kind="fresh", shape={"not_a_field": 1}), torch.float32, torch.device("cpu"))


def test_vocabulary_mismatch_errors(models_dir, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    other = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    other.pre_tokenizer = pre_tokenizers.Whitespace()
    bad = PreTrainedTokenizerFast(tokenizer_object=other)
    good = PreTrainedTokenizerFast.from_pretrained(models_dir / "tiny" / "tiny-xs")
    m = AutoModelForCausalLM.from_pretrained(models_dir / "tiny" / "tiny-xs")
    with pytest.raises(VocabularyMismatchError, match="tokenizers differ"):
        shared_vocab_size(m, m, good, bad)
    assert shared_vocab_size(m, m, good, good) == len(good)
