"""Held-out loss (nats per token) and bits per byte of a loaded model on a text.

Sliding windows of ``context_length`` advance by ``stride``; each text token is scored exactly
once, with at least ``context_length - stride`` tokens of context after the first window. A
BOS (or EOS) token is prepended so the first text token is scored too; then the scored tokens
cover exactly the text's UTF-8 bytes and bits per byte compares models across tokenizers.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from harness.blocks import Quality


def truncate_utf8(text: str, max_bytes: int | None) -> str:
    if max_bytes is None:
        return text
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def window_spans(n: int, context_length: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first_scored) for windows over a sequence of n ids whose id 0 is the prefix."""
    out, scored_to, begin = [], 1, 0
    while scored_to < n:
        end = min(begin + context_length, n)
        out.append((begin, end, scored_to))
        scored_to = end
        # advance by stride, but start no later than the next unscored token's predecessor,
        # so even stride == context_length scores every token with in-window context
        begin = min(begin + stride, scored_to - 1)
    return out


def heldout_ids(tokenizer, text: str, max_bytes: int | None) -> tuple[str, torch.Tensor]:
    """The scored text (cut to ``max_bytes``) and its ids with the BOS (or EOS) prefix the windows start from."""
    text = truncate_utf8(text, max_bytes)
    if not text:
        raise ValueError("held-out text is empty")
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if prefix is None:
        raise ValueError("tokenizer has neither a BOS nor an EOS token to condition the first token on")
    ids = torch.tensor([prefix] + tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"], dtype=torch.long)
    return text, ids


# [batch, length] token ids -> [batch, length, vocab] next-token logits: all an engine must give to be scored.
LogitsFn = Callable[[torch.Tensor], torch.Tensor]


def hf_logits(model) -> LogitsFn:
    """A transformers causal LM's logits, on the model's device."""
    return lambda ids: model(input_ids=ids.to(model.device)).logits


# Sees each window's scored positions, in window order: (log-probabilities [n, vocab], true next ids [n]).
WindowObserver = Callable[[torch.Tensor, torch.Tensor], None]


@torch.inference_mode()
def heldout_loss(logits_fn: LogitsFn, tokenizer, text: str, context_length: int = 256, stride: int = 128,
                 max_bytes: int | None = None, batch_size: int = 8,
                 observers: Sequence[WindowObserver] = ()) -> Quality:
    """``observers`` (e.g. fidelity's reference capture or comparison) ride along the same pass."""
    if not 0 < stride <= context_length:
        raise ValueError(f"stride={stride} must be in (0, context_length={context_length}]")
    text, ids = heldout_ids(tokenizer, text, max_bytes)
    total_nats, scored = 0.0, 0
    windows = window_spans(len(ids), context_length, stride)
    # Windows of equal length batch together; only the last one can be shorter.
    for i in range(0, len(windows), batch_size):
        group = windows[i : i + batch_size]
        by_len: dict[int, list[tuple[int, int, int]]] = {}
        for w in group:
            by_len.setdefault(w[1] - w[0], []).append(w)
        for length, ws in by_len.items():
            inputs = torch.stack([ids[b:e] for b, e, _ in ws])
            logits = logits_fn(inputs).float()
            inputs = inputs.to(logits.device)
            labels = inputs.clone()
            for row, (b, _, first) in enumerate(ws):
                labels[row, : first - b] = -100
            total_nats += F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                ignore_index=-100, reduction="sum",
            ).item()
            scored += int((labels[:, 1:] != -100).sum())
            if observers:
                logp = logits.log_softmax(-1)
                for row, (b, e, first) in enumerate(ws):  # windows stay in order: only the last is shorter
                    for observe in observers:
                        observe(logp[row, first - b - 1 : e - b - 1], inputs[row, first - b : e - b])
    n_bytes = len(text.encode("utf-8"))
    loss = total_nats / scored
    return Quality(heldout_loss_nats=loss, bits_per_byte=total_nats / math.log(2) / n_bytes,
                          heldout_tokens=scored, heldout_bytes=n_bytes, context_length=context_length, stride=stride)
