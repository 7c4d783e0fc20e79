"""The lab-GPU grid (conf/grid/lab-gpu.yaml, issue 26 item 2): its full plan at SmolLM2's real
vocabulary keeps its rules and reaches 1e18 FLOPs; and the same config builds here at a tiny budget
on the CPU, with SmolLM2's real tokenizer and its own text read through `datasets`, its held-out
documents drawn from that text's own distribution."""
import json

import pytest
from omegaconf import OmegaConf

from harness.tiny.grid import plan_runs
from tests.conftest import compose_config

SMOLLM2_VOCAB = 49152


def test_the_lab_grid_plans_up_to_1e18_flops_within_its_rules():
    cfg = OmegaConf.to_object(compose_config("build_grid", ["grid=lab-gpu"]))
    assert (cfg.device, cfg.precision, cfg.tokenizer) == ("cuda", "bf16", "HuggingFaceTB/SmolLM2-135M")
    planned = plan_runs(cfg, SMOLLM2_VOCAB)  # on the meta device: a 269M-parameter plan in no memory
    assert max(p.budget for p in planned) == 1e18 and [p.rule_breaks for p in planned] == [[]] * len(planned)
    per_param = [p.steps * cfg.batch_size * cfg.seq_len / p.counts.total for p in planned]
    assert min(per_param) < 20 < max(per_param)  # every budget brackets Chinchilla's ~20 tokens per parameter
    for budget in {p.budget for p in planned}:
        ratios = [r for p, r in zip(planned, per_param) if p.budget == budget]
        assert min(ratios) < 20 < max(ratios), budget


@pytest.mark.slow
def test_the_lab_grid_builds_at_a_tiny_budget_with_a_real_tokenizer_and_its_own_held_out_text(models_dir, tmp_path):
    from harness.models.gguf_checkpoint import ensure_checkpoint
    from harness.projector.grid_runs import load_grid
    from harness.tiny.grid import build_grid

    smollm2 = ensure_checkpoint(OmegaConf.to_object(compose_config("run", [f"models_dir={models_dir}",
                                                                           "model=smollm2-135m-instruct"]).model))
    # a local text data set in the `datasets` "text" builder's form (one document per line)
    docs = (models_dir / "tiny" / "data" / "train.txt").read_text(encoding="utf-8").split("\n\n")
    lines = [d.replace("\n", " ") for d in docs if len(d) > 200][:600]
    (tmp_path / "corpus.txt").write_text("\n".join(lines), encoding="utf-8")
    cfg = OmegaConf.to_object(compose_config("build_grid", [
        "grid=lab-gpu", f"models_dir={tmp_path}", "device=cpu", f"tokenizer={smollm2}", "text.path=text",
        f"text.data_files=[{tmp_path / 'corpus.txt'}]", "text.max_docs=600", "text.heldout_every=10",
        "text.heldout_max_chars=20000", "seq_len=64", "batch_size=2", "eval_batch_size=4", "max_epochs=4",
        "budgets=[{flops: 5.0e10, shapes: [lm2]}, {flops: 1.0e11, shapes: [lm2]}]", "seeds_at_smallest=[0]",
        "lr_sweep=null", "rules.min_steps=10"]))
    runs = build_grid(cfg)
    assert [r.steps for r in runs] == [r.tokens // 128 for r in runs] and all(r.steps >= 10 for r in runs)
    meta = json.loads((tmp_path / "grid" / "lab-gpu" / "grid.json").read_text())
    assert meta["vocab_size"] == SMOLLM2_VOCAB and meta["tokenizer"].startswith(str(smollm2))
    assert meta["precision"] == "bf16" and meta["heldout"].startswith("held out from the grid's own data set")
    assert "1 in 10 held out by SHA-1" in meta["text"]
    assert runs[1].heldout_loss_nats < runs[0].heldout_loss_nats  # twice the compute on one shape: lower loss
    _, fitted = load_grid(tmp_path / "grid" / "lab-gpu" / "grid.json")
    assert [r.n_layers for r in fitted] == [2, 2]
    again = build_grid(cfg)  # cached by a hash that includes the tokenizer and precision
    assert all(r.reused for r in again)
