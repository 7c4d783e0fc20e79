"""How far a variant's next-token distributions moved from its baseline's, on the held-out windows.

Every point keeps, for each scored token of its held-out pass, its top-k token ids and
log-probabilities (the whole distribution where the vocabulary is small) and the log-probability of
the true next token: a ``TokenReference``, stored beside its record. Fidelity is a comparison of two
such files (``compare``), so it is the same whichever point ran first, or both at once; llama.cpp's
``llama-perplexity --kl-divergence`` compares saved base logits with a new pass the same way.

KL(base || variant) is computed over the tokens both points kept plus one bucket for the rest of
the vocabulary. Merging tokens into a bucket can only lower a KL divergence (the log-sum
inequality), so unless both kept the whole vocabulary the figure is a lower bound; ``exact`` says
which. The other statistics are llama-perplexity's, by its definitions: KL percentiles, "same top"
(the most probable token agrees), delta-p (the variant's probability of the true token minus the
baseline's: mean, RMS, percentiles). Percentiles interpolate linearly between sorted tokens, as
numpy.percentile's default and llama-perplexity's own ``percentile`` do.

Intervals resample whole windows (each window's scored tokens are one unit), never tokens.
"""
from __future__ import annotations

import numpy as np
import torch

# re-exported: the measuring side's one import for fidelity
from harness.distributions import Fidelity, FidelityPlan, TokenReference, compare  # noqa: F401


def reference_k(vocab_size: int, top_k: int, full_vocab_max: int) -> int:
    """The k to keep: the whole vocabulary when it is at most ``full_vocab_max``, else ``top_k``."""
    return vocab_size if vocab_size <= full_vocab_max else min(top_k, vocab_size)


class ReferenceCapture:
    """Held-out observer (see quality.heldout_loss) that records a point's own distributions."""

    def __init__(self, top_k: int, full_vocab_max: int):
        self.top_k, self.full_vocab_max = top_k, full_vocab_max
        self._ids, self._logp, self._target, self._sizes = [], [], [], []
        self.vocab_size = 0

    def __call__(self, logp: torch.Tensor, targets: torch.Tensor) -> None:
        self.vocab_size = logp.size(-1)
        k = reference_k(self.vocab_size, self.top_k, self.full_vocab_max)
        values, ids = logp.topk(k, dim=-1)
        self._ids.append(ids.to(torch.int32).cpu().numpy())
        self._logp.append(values.float().cpu().numpy())
        self._target.append(logp.gather(-1, targets[:, None])[:, 0].float().cpu().numpy())
        self._sizes.append(len(targets))

    def result(self) -> TokenReference:
        if not self._sizes:
            raise ValueError("no held-out tokens were scored")
        return TokenReference(np.concatenate(self._ids), np.concatenate(self._logp), np.concatenate(self._target),
                              np.asarray(self._sizes, dtype=np.int32), self.vocab_size)
