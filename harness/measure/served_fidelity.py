"""What a server serves, scored through its API: the same held-out windows the model's transformers fp32
reference was scored on (harness/measure/quality.py), each sent as token ids with vLLM's ``prompt_logprobs=k``
(the k most probable next tokens at every prompt position, and the true token's log-probability, which vLLM
always adds). From them a ``TokenReference`` like any point's own, so fidelity is ``compare``'s, the function
every single point uses: KL(reference || served) over the tokens both kept plus one bucket for the rest (a
lower bound, '>='), llama-perplexity's "same top" and delta-p, and the served held-out loss, exact.

A server that returns no prompt log-probabilities (llama-server, llama-cpp-python's, most others) gives a
``NoPromptLogprobs`` naming what it answered; it is then judged by greedy agreement (``greedy_agreement``):
its greedy continuations of held-out prompts against the reference model's, token by token. The full
distributions of the same file are the single point's of the in-process engine (docs/serving.md).
"""
from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from harness.distributions import TokenReference
from harness.measure.quality import heldout_ids, window_spans

METHOD = "vLLM prompt_logprobs: the server's top-k log-probabilities at every held-out position, token ids in"
GREEDY_METHOD = ("greedy agreement: the server's greedy continuations (temperature 0, EOS ignored) of held-out "
                 "prompts against the fp32 reference model's, as text: the share of the reference's continuation "
                 "reproduced before the first differing character")


class NoPromptLogprobs(RuntimeError):
    """The server does not return prompt log-probabilities (vLLM's ``prompt_logprobs``)."""


class ServedRequestError(RuntimeError):
    """The server refused a held-out window's request (its message)."""


@dataclass
class ServedScores:
    """The server's distributions on the held-out windows, and its held-out loss on them."""
    distributions: TokenReference
    loss_nats: float  # mean over scored tokens of -log p(true token), as the server computes it
    bits_per_byte: float
    tokens: int
    requests: int


def _post(url: str, payload: dict, timeout_s: float) -> dict:
    request = urllib.request.Request(f"{url}/v1/completions", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:  # the server's own message (a server that refuses the parameter says so)
        raise ServedRequestError(f"a held-out window's request got HTTP {e.code}: "
                                 f"{' '.join(e.read().decode(errors='replace').split())[:300]}") from e
    try:
        return json.loads(body)
    except ValueError as e:  # e.g. a server that only streams
        raise ServedRequestError(f"the server's answer to a held-out window is not JSON: {body[:120]!r}") from e


def _window(url: str, api_model: str, ids: list[int], first: int, k: int, timeout_s: float):
    """One window's scored positions (from ``first``): top-k ids and log-probabilities, the true tokens'."""
    answer = _post(url, {"model": api_model, "prompt": ids, "max_tokens": 1, "temperature": 0,
                         "prompt_logprobs": k}, timeout_s)
    per_position = (answer.get("choices") or [{}])[0].get("prompt_logprobs")
    if not per_position or len(per_position) != len(ids):
        raise NoPromptLogprobs("the server answered without prompt log-probabilities per prompt token "
                               f"(prompt_logprobs: {str(per_position)[:120]})")
    top_ids, top_logp, true_logp = [], [], []
    for position in range(first, len(ids)):
        entries = per_position[position]
        ranked = sorted(((int(t), e) for t, e in entries.items() if e["rank"] <= k), key=lambda te: te[1]["rank"])
        if len(ranked) < k:
            raise NoPromptLogprobs(f"the server returned {len(ranked)} ranked tokens at a position, not {k}")
        top_ids.append([t for t, _ in ranked[:k]])
        top_logp.append([e["logprob"] for _, e in ranked[:k]])
        true_logp.append(entries[str(ids[position])]["logprob"])
    return top_ids, top_logp, true_logp


def probe(url: str, api_model: str, tokenizer, timeout_s: float = 60.0) -> None:
    """One two-token request: a ``NoPromptLogprobs`` unless the server answers prompt log-probabilities (before
    anything costly, such as building the reference, is done for it)."""
    token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    try:
        _window(url, api_model, [token, token], 1, 1, timeout_s)
    except ServedRequestError as e:  # e.g. a server that takes text prompts only, or refuses the parameter
        raise NoPromptLogprobs(f"it refused a token-id prompt asking for them ({str(e)[:200]})") from e


def served_scores(url: str, api_model: str, tokenizer, text: str, context_length: int, stride: int,
                  max_bytes: int | None, top_k: int, vocab_size: int, timeout_s: float = 120.0,
                  clients: int = 4) -> ServedScores:
    """The server's top-k distributions at every held-out token, window by window as the reference scored them
    (``clients`` windows in flight: a batching server answers them together; order is kept)."""
    text, ids = heldout_ids(tokenizer, text, max_bytes)
    ids = ids.tolist()
    spans = window_spans(len(ids), context_length, stride)
    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(lambda s: _window(url, api_model, ids[s[0]:s[1]], s[2] - s[0], top_k, timeout_s), spans))
    top_ids = np.asarray([row for a in answers for row in a[0]], dtype=np.int32)
    top_logp = np.asarray([row for a in answers for row in a[1]], dtype=np.float32)
    true_logp = np.asarray([x for a in answers for x in a[2]], dtype=np.float32)
    sizes = np.asarray([len(a[2]) for a in answers], dtype=np.int32)
    nats = -float(true_logp.astype(np.float64).sum())
    return ServedScores(TokenReference(top_ids, top_logp, true_logp, sizes, vocab_size), nats / len(true_logp),
                        nats / math.log(2) / len(text.encode("utf-8")), len(true_logp), len(spans))


@dataclass
class Greedy:
    """Per prompt, the share of the reference's greedy continuation (its text) the server reproduced before
    the first difference."""
    matched: np.ndarray  # [prompts] in [0, 1]
    new_tokens: int

    def share(self) -> float:
        return float(self.matched.mean())

    def interval(self, resamples: int, level: float, seed: int) -> tuple[float, float]:
        """Resampling whole prompts."""
        rng = np.random.default_rng(seed)
        boot = self.matched[rng.integers(0, len(self.matched), (resamples, len(self.matched)))].mean(1)
        return float(np.quantile(boot, (1 - level) / 2)), float(np.quantile(boot, (1 + level) / 2))


def _common_prefix(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def greedy_agreement(url: str, api_model: str, tokenizer, reference_continue, ids: list[int], prompts: int,
                     prompt_tokens: int, new_tokens: int, seed: int, timeout_s: float = 120.0) -> Greedy:
    """``prompts`` held-out prompts (``prompt_tokens`` ids at seeded offsets, sent as their text, as the load's
    prompts are) continued greedily by the server and by ``reference_continue`` (prompt text, new tokens -> the
    reference's continuation text). Compared as text, so no token is re-read by another tokenizer's split."""
    rng = np.random.default_rng(seed)
    matched = []
    for start in rng.integers(0, len(ids) - prompt_tokens, prompts):
        prompt = tokenizer.decode(ids[start:start + prompt_tokens])
        answer = _post(url, {"model": api_model, "prompt": prompt, "max_tokens": new_tokens, "temperature": 0,
                             "ignore_eos": True}, timeout_s)
        served, expected = answer["choices"][0]["text"], reference_continue(prompt, new_tokens)
        matched.append(_common_prefix(served, expected) / max(1, len(expected)))
    return Greedy(np.asarray(matched, dtype=float), new_tokens)
