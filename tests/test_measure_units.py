import math

import numpy as np
import pytest
import torch

from harness.measure.quality import heldout_loss, window_spans
from harness.measure.stats import summarize, summarize_groups


@pytest.mark.parametrize("n,ctx,stride", [(2, 8, 4), (100, 16, 8), (101, 16, 16), (257, 64, 1), (50, 64, 32)])
def test_windows_score_every_token_once(n, ctx, stride):
    scored = []
    for begin, end, first in window_spans(n, ctx, stride):
        assert end - begin <= ctx and first > begin
        scored.extend(range(first, end))
    assert scored == list(range(1, n))


def test_bootstrap_interval_contains_median():
    rng = np.random.default_rng(1)
    s = summarize(list(rng.lognormal(0, 0.3, 400)))
    assert s.ci_low <= s.median <= s.ci_high
    assert s.n == 400 and len(s.samples) == 400
    assert s.p90 <= s.p99


def test_grouped_interval_covers_what_a_rerun_would_see():
    """Requests whose steps share a per-request level (as decode steps inside one generate() do):
    resampling pooled steps gives a far too narrow interval; resampling requests covers the
    median of fresh runs of the same process about as often as its level says."""
    rng = np.random.default_rng(3)

    def run(n_requests=20, steps=31):
        levels = rng.lognormal(0, 0.15, n_requests)  # each request's own speed
        return [list(level * rng.lognormal(0, 0.02, steps)) for level in levels]

    groups = run()
    pooled = summarize([x for g in groups for x in g], resamples=1000)
    grouped = summarize_groups(groups, resamples=1000)
    assert grouped.median == pooled.median and grouped.n == pooled.n
    assert (grouped.ci_high - grouped.ci_low) > 3 * (pooled.ci_high - pooled.ci_low)
    fresh = [float(np.median([x for g in run() for x in g])) for _ in range(40)]
    covered = np.mean([grouped.ci_low <= f <= grouped.ci_high for f in fresh])
    naive = np.mean([pooled.ci_low <= f <= pooled.ci_high for f in fresh])
    assert covered > 0.6 and naive < 0.4, (covered, naive)


def test_heldout_loss_matches_uniform_model():
    """An engine with constant logits scores every token at ln(V): checks counting and bits per byte."""

    def uniform(ids: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*ids.shape, 50)

    class Tok:
        bos_token_id = 0
        eos_token_id = 0

        def __call__(self, text, **_):
            return {"input_ids": [1 + (b % 49) for b in text.encode()]}

    text = "byte level " * 40
    q = heldout_loss(uniform, Tok(), text, context_length=16, stride=8, batch_size=3)
    assert q.heldout_tokens == len(text.encode())
    assert q.heldout_loss_nats == pytest.approx(math.log(50))
    assert q.bits_per_byte == pytest.approx(math.log2(50))
