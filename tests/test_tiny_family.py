import pytest
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM

from harness.models.card import read_card
from harness.models.params import count_params
from harness.tiny.build import make_model
from harness.tiny.corpus import load_corpus
from tests.conftest import REDUCED, REDUCED_TOKENS, compose_config


def test_cards_and_safetensors(models_dir):
    for name in REDUCED:
        d = models_dir / "tiny" / name
        assert (d / "model.safetensors").exists()
        assert (d / "tokenizer.json").exists()
        card = read_card(d)  # validates every field against the card's schema
        assert card.name == name and card.family == "tiny" and card.build.corpus and card.wall_time_s > 0
        # the card describes the saved weights and the build asked for: counted from the checkpoint
        counts = count_params(AutoModelForCausalLM.from_pretrained(d))
        assert (card.params, card.non_embedding_params) == (counts.total, counts.non_embedding)
        assert card.train_tokens == REDUCED_TOKENS
        assert card.train_flops == 6 * counts.total * REDUCED_TOKENS  # C = 6ND (DESIGN.md)


def test_same_budget_and_loss_falls_with_size(models_dir):
    cards = [read_card(models_dir / "tiny" / n) for n in REDUCED]
    assert len({c.train_tokens for c in cards}) == 1
    assert len({c.build.corpus_sha256 for c in cards}) == 1
    sizes = [c.non_embedding_params for c in cards]
    losses = [c.build.heldout_loss_nats for c in cards]
    assert sizes == sorted(sizes)
    assert all(a > b for a, b in zip(losses, losses[1:])), losses


def test_full_family_spans_30x_in_one_architecture():
    cfg = OmegaConf.to_object(compose_config("build_tiny"))
    assert len(cfg.models) >= 4
    counts = [count_params(make_model(spec, cfg)).non_embedding for spec in cfg.models]
    assert counts == sorted(counts)
    assert counts[-1] / counts[0] >= 30


@pytest.mark.slow
def test_heldout_split_is_disjoint_and_fixed():
    a, b = load_corpus(20), load_corpus(20)
    assert a.heldout == b.heldout and a.sha256 == b.sha256
    assert not set(a.heldout) & set(a.train)
    assert 0.02 < len(a.heldout) / (len(a.heldout) + len(a.train)) < 0.08
    assert a.train_chars > 1_000_000  # real English text, shipped with every CPython


@pytest.mark.slow
def test_rebuild_reuses_up_to_date_models(models_dir):
    from harness.tiny.build import build_family

    cfg = compose_config("build_tiny", [f"models_dir={models_dir}", "train_tokens=262144", "only=[tiny-xs]"])
    built = build_family(OmegaConf.to_object(cfg))
    assert [b.reused for b in built] == [True]
