import math

import numpy as np
import pytest
import torch

from harness.measure.quality import _windows, heldout_loss
from harness.measure.stats import summarize


@pytest.mark.parametrize("n,ctx,stride", [(2, 8, 4), (100, 16, 8), (101, 16, 16), (257, 64, 1), (50, 64, 32)])
def test_windows_score_every_token_once(n, ctx, stride):
    scored = []
    for begin, end, first in _windows(n, ctx, stride):
        assert end - begin <= ctx and first > begin
        scored.extend(range(first, end))
    assert scored == list(range(1, n))


def test_bootstrap_interval_contains_median():
    rng = np.random.default_rng(1)
    s = summarize(list(rng.lognormal(0, 0.3, 400)))
    assert s.ci_low <= s.median <= s.ci_high
    assert s.n == 400 and len(s.samples) == 400
    assert s.p90 <= s.p99


def test_heldout_loss_matches_uniform_model():
    """A model with constant logits scores every token at ln(V): checks counting and bits per byte."""

    class Uniform(torch.nn.Module):
        device = torch.device("cpu")

        def forward(self, input_ids):
            return type("O", (), {"logits": torch.zeros(*input_ids.shape, 50)})()

    class Tok:
        bos_token_id = 0
        eos_token_id = 0

        def __call__(self, text, **_):
            return {"input_ids": [1 + (b % 49) for b in text.encode()]}

    text = "byte level " * 40
    q = heldout_loss(Uniform(), Tok(), text, context_length=16, stride=8, batch_size=3)
    assert q.heldout_tokens == len(text.encode())
    assert q.heldout_loss_nats == pytest.approx(math.log(50))
    assert q.bits_per_byte == pytest.approx(math.log2(50))
