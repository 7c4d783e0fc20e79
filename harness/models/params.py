"""Parameter counts, the way scaling laws count them."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ParamCounts:
    total: int  # unique parameters (tied embeddings counted once)
    non_embedding: int  # total less input embeddings and an untied output head (Kaplan et al.)


def count_params(model: torch.nn.Module) -> ParamCounts:
    seen: set[int] = set()
    total = 0
    for p in model.parameters():  # parameters() already yields a tied tensor once
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    embedding = 0
    emb_in = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    emb_out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if emb_in is not None:
        embedding += emb_in.weight.numel()
    if emb_out is not None and emb_in is not None and emb_out.weight is not emb_in.weight:
        embedding += emb_out.weight.numel()
    return ParamCounts(total=total, non_embedding=total - embedding)
