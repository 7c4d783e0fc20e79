"""The one training loop (harness/tiny/train.py): its schedule, and a killed run resuming exactly."""
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from harness.tiny.train import TrainRecipe, lr_at, train_lm


def _model():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=16))


RECIPE = TrainRecipe(steps=30, batch_size=4, seq_len=16, peak_lr=3e-3, warmup_fraction=0.1, min_lr_fraction=0.1)
IDS = torch.randint(0, 64, (2000,), generator=torch.Generator().manual_seed(1))


def test_schedule_warms_up_then_ends_at_its_floor_on_the_last_step():
    lrs = [lr_at(s, 100, 1.0, 0.1, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.1) and all(a >= b for a, b in zip(lrs[9:], lrs[10:]))


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_weights(tmp_path):
    whole = _model()
    train_lm(whole, IDS, RECIPE, "whole")

    ckpt = tmp_path / "run.ckpt"
    calls = {"n": 0}

    def dies_at_step_25(model, batch):
        calls["n"] += 1
        if calls["n"] == 25:
            raise KeyboardInterrupt("killed")
        return model(input_ids=batch, labels=batch).loss

    killed = _model()
    with pytest.raises(KeyboardInterrupt):
        train_lm(killed, IDS, RECIPE, "killed", loss_fn=dies_at_step_25, checkpoint=ckpt, checkpoint_every=10)
    assert ckpt.exists()
    resumed = _model()  # a fresh process would start from the initial weights, then load the checkpoint
    out = train_lm(resumed, IDS, RECIPE, "resumed", checkpoint=ckpt, checkpoint_every=10)
    assert out.resumed_from_step == 20 and not ckpt.exists()
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
