"""Two points' held-out next-token distributions compared token by token: numpy only, so that the
records' side (harness/results/fidelity.py) and the measuring side (harness/measure/fidelity.py)
compute fidelity with the same function. The definitions are in harness/measure/fidelity.py's
docstring and the Fidelity block's (harness/blocks.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

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


class FidelityPlan(Protocol):
    """What to keep and how to summarise (harness.config.CompareConfig is one)."""
    top_k: int
    full_vocab_max: int
    logprob_shift_nats: float
    bootstrap_resamples: int
    ci_level: float
    seed: int


KL_PERCENTILES = ("max", "99.9", "99", "95", "90", "50", "10", "5", "1", "0.1", "min")  # llama-perplexity's rows
DELTA_P_PERCENTILES = ("max", "99.9", "99", "95", "90", "75", "50", "25", "10", "5", "1", "0.1", "min")
PERCENTILE_METHOD = ("over tokens, linear interpolation between order statistics (numpy.percentile method='linear', "
                     "as llama-perplexity's percentile())")


def _percentiles(x: np.ndarray, levels: tuple[str, ...]) -> dict[str, float]:
    at = {"max": 100.0, "min": 0.0}
    return {lv: float(np.percentile(x, at.get(lv) if lv in at else float(lv))) for lv in levels}


def _token_kl_exact(base: TokenReference, var: TokenReference) -> np.ndarray:
    """Both kept the whole vocabulary: scatter each into dense rows and sum p_b (log p_b - log p_v)."""
    n, rows = len(base.topk_ids), np.arange(len(base.topk_ids))[:, None]
    lb, lv = np.empty((n, base.vocab_size)), np.empty((n, var.vocab_size))
    lb[rows, base.topk_ids] = base.topk_logp
    lv[rows, var.topk_ids] = var.topk_logp
    return (np.exp(lb) * (lb - lv)).sum(-1)


def _token_kl_bucketed(base: TokenReference, var: TokenReference, chunk: int = 4096) -> np.ndarray:
    """Tokens in both top-k lists one by one, everything else one bucket (a lower bound of the KL)."""
    out = []
    for s in range(0, len(base.topk_ids), chunk):
        b_ids, v_ids = base.topk_ids[s:s + chunk], var.topk_ids[s:s + chunk]
        b_lp, v_lp = base.topk_logp[s:s + chunk].astype(np.float64), var.topk_logp[s:s + chunk].astype(np.float64)
        match = b_ids[:, :, None] == v_ids[:, None, :]  # [n, k_base, k_var]
        shared = match.any(-1)
        v_at_b = np.where(shared, (match * v_lp[:, None, :]).sum(-1), 0.0)
        p_b, p_v = np.exp(b_lp) * shared, np.exp(v_at_b) * shared
        kl = (p_b * (b_lp - v_at_b)).sum(-1)
        rest_b = np.clip(1 - p_b.sum(-1), _MIN_REST, None)
        rest_v = np.clip(1 - p_v.sum(-1), _MIN_REST, None)
        out.append(kl + rest_b * (np.log(rest_b) - np.log(rest_v)))
    return np.concatenate(out)


def _window_bootstrap(sizes: np.ndarray, plan: FidelityPlan):
    """Each resample's multiplicity of every window: ratio-of-sums estimates over whole windows."""
    rng = np.random.default_rng(plan.seed)
    picks = rng.integers(0, len(sizes), size=(plan.bootstrap_resamples, len(sizes)))
    return np.apply_along_axis(np.bincount, 1, picks, minlength=len(sizes)).astype(float)


def compare(base: TokenReference, var: TokenReference, plan: FidelityPlan) -> Fidelity:
    """The variant's distributions (``var``) against its baseline's, token by token."""
    if not np.array_equal(base.window_tokens, var.window_tokens) or base.vocab_size != var.vocab_size:
        raise ValueError("the two points scored different held-out windows or vocabularies "
                         "(different text, context length, stride or tokenizer)")
    exact, shift_nats = base.exact and var.exact, plan.logprob_shift_nats
    kl = np.clip(_token_kl_exact(base, var) if exact else _token_kl_bucketed(base, var), 0, None)  # -1e-16 rounding
    b_t, v_t = base.target_logp.astype(np.float64), var.target_logp.astype(np.float64)
    delta_p = np.exp(v_t) - np.exp(b_t)
    per_token = {"kl": kl, "same_top": (base.topk_ids[:, 0] == var.topk_ids[:, 0]).astype(float),
                 "shifted": (np.abs(v_t - b_t) > shift_nats).astype(float), "nll_base": -b_t, "nll_variant": -v_t,
                 "delta_p": delta_p, "delta_p_sq": delta_p ** 2}
    starts = np.concatenate([[0], np.cumsum(base.window_tokens)[:-1]])
    sums = {k: np.add.reduceat(v, starts) for k, v in per_token.items()}
    counts = base.window_tokens.astype(float)
    mult = _window_bootstrap(counts, plan)
    alpha = (1 - plan.ci_level) / 2

    def estimate(num: str, den: str | None = None, f=lambda x: x) -> tuple[float, float, float]:
        d, d_boot = (counts.sum(), mult @ counts) if den is None else (sums[den].sum(), mult @ sums[den])
        boot = f((mult @ sums[num]) / d_boot)
        return float(f(sums[num].sum() / d)), float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha))

    kl_m, same, shifted = estimate("kl"), estimate("same_top"), estimate("shifted")
    retention, dp, rms = estimate("nll_base", "nll_variant"), estimate("delta_p"), estimate("delta_p_sq", f=np.sqrt)
    kl_pct = _percentiles(kl, KL_PERCENTILES)
    return Fidelity(
        tokens=int(counts.sum()), windows=len(counts), top_k=min(base.top_k, var.top_k), exact=exact,
        kl_mean_nats=kl_m[0], kl_ci_low=kl_m[1], kl_ci_high=kl_m[2], kl_p99_nats=kl_pct["99"],
        same_top_rate=same[0], same_top_ci_low=same[1], same_top_ci_high=same[2],
        logprob_shift_nats=shift_nats, shifted_share=shifted[0], shifted_ci_low=shifted[1],
        shifted_ci_high=shifted[2], loss_retention=retention[0], loss_retention_ci_low=retention[1],
        loss_retention_ci_high=retention[2], ci_level=plan.ci_level,
        ci_resamples=f"windows ({len(counts)}) of the held-out pass",
        kl_percentiles_nats=kl_pct, delta_p_mean=dp[0], delta_p_ci_low=dp[1], delta_p_ci_high=dp[2],
        delta_p_rms=rms[0], delta_p_rms_ci_low=rms[1], delta_p_rms_ci_high=rms[2],
        delta_p_percentiles=_percentiles(delta_p, DELTA_P_PERCENTILES), percentile_method=PERCENTILE_METHOD)
