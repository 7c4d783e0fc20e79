"""Distillation on the tiny family: KD beats the smallest baseline and the continue-ce control."""
import json

import pytest
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from harness.run import run_point
from harness.variants.distil import VocabularyMismatchError, shared_vocab_size

TOKENS = "variant.options.train_tokens=131072"  # 64 steps: the same budget for KD and its control


@pytest.fixture(scope="module")
def distilled(models_dir, tmp_path_factory):
    from tests.conftest import compose_config

    results = tmp_path_factory.mktemp("distil-results")

    def run(*overrides):
        return run_point(compose_config("run", [f"models_dir={models_dir}", f"results_dir={results}",
                                                "model=tiny-xs", "bench=quick", "quality.max_bytes=40000",
                                                *overrides]))
    return {
        "baseline": run("variant=fp32"),
        "kd": run("variant=distill-kd", "model@variant.options.teacher=tiny-m", TOKENS),
        "ce": run("variant=continue-ce", "model@variant.options.teacher=tiny-m", TOKENS),
    }


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
    card = kd.variant.extra
    assert kd.variant.kind == "distil" and card["teacher"] == "tiny-m" and card["distill_tokens"] == 131072
    n_t, n_s = card["teacher_params"], card["params"]
    assert card["distill_flops"] == 2 * n_t * 131072 + 6 * n_s * 131072
    assert ce.variant.extra["teacher"] is None and ce.variant.extra["distill_flops"] == 6 * n_s * 131072
    assert kd.model.distilled_from == "tiny-m"
    assert kd.model.train_tokens == distilled["baseline"].model.train_tokens + 131072


def test_student_reloads_and_is_reused(distilled, run_cfg):
    path = distilled["kd"].model.source
    model = AutoModelForCausalLM.from_pretrained(path)
    assert json.load(open(f"{path}/card.json"))["method"] == "kd"
    assert model.config.num_hidden_layers >= 1


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
