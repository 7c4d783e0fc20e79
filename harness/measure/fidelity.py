"""How far a variant's next-token distributions moved from its baseline's, on the held-out windows.

The baseline point captures, for every scored token of the held-out pass, its top-k token ids
and log-probabilities (the full distribution where the vocabulary is small) and the
log-probability of the true next token: a ``TokenReference``, written once to the results store.
A variant's held-out pass is then compared with it token by token (llama.cpp's
``perplexity --kl-divergence`` does the same from saved base logits), so no point holds two
models for this.

KL(base || variant) is computed over the baseline's top-k tokens plus one bucket for the rest
of the vocabulary. Merging tokens into a bucket can only lower a KL divergence (the log-sum
inequality), so with k below the vocabulary the figure is a lower bound; ``exact`` says which.

Intervals resample whole windows (each window's scored tokens are one unit), never tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from harness.blocks import Fidelity

# Floor for the rest-of-vocabulary mass, so log(rest) stays finite when top-k holds ~all of it.
_MIN_REST = 1e-12


@dataclass
class TokenReference:
    """The baseline's per-token distributions on the held-out windows, in scoring order."""
    topk_ids: np.ndarray  # [tokens, k] int32, most probable first
    topk_logp: np.ndarray  # [tokens, k] float32
    target_logp: np.ndarray  # [tokens] float32: log p(true next token)
    window_tokens: np.ndarray  # [windows] int32: scored tokens per window
    vocab_size: int

    @property
    def top_k(self) -> int:
        return int(self.topk_ids.shape[1])

    @property
    def exact(self) -> bool:
        return self.top_k >= self.vocab_size

    def arrays(self) -> dict[str, np.ndarray]:
        return {"topk_ids": self.topk_ids, "topk_logp": self.topk_logp, "target_logp": self.target_logp,
                "window_tokens": self.window_tokens, "vocab_size": np.asarray(self.vocab_size)}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> "TokenReference":
        return cls(a["topk_ids"], a["topk_logp"], a["target_logp"], a["window_tokens"], int(a["vocab_size"]))


def reference_k(vocab_size: int, top_k: int, full_vocab_max: int) -> int:
    """The k to keep: the whole vocabulary when it is at most ``full_vocab_max``, else ``top_k``."""
    return vocab_size if vocab_size <= full_vocab_max else min(top_k, vocab_size)


class ReferenceCapture:
    """Held-out observer (see quality.heldout_loss) that records the baseline's distributions."""

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


class FidelityPlan(Protocol):
    """What to keep and how to summarise (harness.config.CompareConfig is one)."""
    top_k: int
    full_vocab_max: int
    logprob_shift_nats: float
    bootstrap_resamples: int
    ci_level: float
    seed: int


class FidelityMeter:
    """Held-out observer that compares each window with the same window of a ``TokenReference``."""

    def __init__(self, reference: TokenReference, shift_nats: float):
        self.ref, self.shift = reference, shift_nats
        self._pos = self._window = 0
        self.sums: dict[str, list[float]] = {k: [] for k in ("kl", "same_top", "shifted", "nll_base", "nll_variant")}
        self.kl_tokens: list[np.ndarray] = []

    def __call__(self, logp: torch.Tensor, targets: torch.Tensor) -> None:
        ref, n = self.ref, len(targets)
        if self._window >= len(ref.window_tokens) or ref.window_tokens[self._window] != n:
            raise ValueError("the held-out windows differ from the baseline reference's "
                             "(different text, context length or stride)")
        rows = slice(self._pos, self._pos + n)
        ids = torch.from_numpy(ref.topk_ids[rows]).long().to(logp.device)
        base_logp = torch.from_numpy(ref.topk_logp[rows]).double().to(logp.device)
        var_logp = logp.double().gather(-1, ids)
        p_base = base_logp.exp()
        kl = (p_base * (base_logp - var_logp)).sum(-1)
        if not ref.exact:  # one bucket for the rest of the vocabulary
            rest_base = (1 - p_base.sum(-1)).clamp_min(_MIN_REST)
            rest_var = (1 - var_logp.exp().sum(-1)).clamp_min(_MIN_REST)
            kl = kl + rest_base * (rest_base.log() - rest_var.log())
        kl = kl.clamp_min(0).cpu().numpy()  # rounding can leave -1e-16 where the two agree
        target_var = logp.gather(-1, targets[:, None])[:, 0].double().cpu().numpy()
        target_base = ref.target_logp[rows].astype(np.float64)
        same = (logp.argmax(-1).cpu().numpy() == ref.topk_ids[rows, 0])
        for key, value in (("kl", kl.sum()), ("same_top", same.sum()),
                           ("shifted", (np.abs(target_var - target_base) > self.shift).sum()),
                           ("nll_base", -target_base.sum()), ("nll_variant", -target_var.sum())):
            self.sums[key].append(float(value))
        self.kl_tokens.append(kl)
        self._pos += n
        self._window += 1

    def result(self, plan: FidelityPlan) -> Fidelity:
        ref = self.ref
        if self._window != len(ref.window_tokens):
            raise ValueError(f"scored {self._window} windows, the baseline reference has {len(ref.window_tokens)}")
        sums = {k: np.asarray(v) for k, v in self.sums.items()}
        counts = ref.window_tokens.astype(float)
        rng = np.random.default_rng(plan.seed)
        w = len(counts)
        # multiplicity of each window in each resample: ratio-of-sums estimates over whole windows
        picks = rng.integers(0, w, size=(plan.bootstrap_resamples, w))
        mult = np.apply_along_axis(np.bincount, 1, picks, minlength=w).astype(float)
        n_boot = mult @ counts
        alpha = (1 - plan.ci_level) / 2

        def estimate(num: str, den: np.ndarray | str = "tokens") -> tuple[float, float, float]:
            d, d_boot = (counts.sum(), n_boot) if isinstance(den, str) else (den.sum(), mult @ den)
            boot = (mult @ sums[num]) / d_boot
            return float(sums[num].sum() / d), float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha))

        kl, same, shifted = estimate("kl"), estimate("same_top"), estimate("shifted")
        retention = estimate("nll_base", sums["nll_variant"])
        return Fidelity(
            tokens=int(counts.sum()), windows=w, top_k=ref.top_k, exact=ref.exact,
            kl_mean_nats=kl[0], kl_ci_low=kl[1], kl_ci_high=kl[2],
            kl_p99_nats=float(np.percentile(np.concatenate(self.kl_tokens), 99)),
            same_top_rate=same[0], same_top_ci_low=same[1], same_top_ci_high=same[2],
            logprob_shift_nats=self.shift, shifted_share=shifted[0], shifted_ci_low=shifted[1],
            shifted_ci_high=shifted[2], loss_retention=retention[0], loss_retention_ci_low=retention[1],
            loss_retention_ci_high=retention[2], ci_level=plan.ci_level,
            ci_resamples=f"windows ({w}) of the held-out pass",
        )
