"""Engines: what runs a prepared model (the third axis beside model and variant, as optimum-benchmark
keeps backend, scenario and launcher apart).

An engine hands measurement an ``EngineModel``: next-token logits for token ids and a ``Decoder``
that streams a timed greedy generation, plus what memory and the roofline need. Measurements stay
engine-free: the same held-out windows and token ids, the same latency definitions, the same
fidelity reference (the model's transformers fp32 baseline) whatever the engine.

``transformers`` (the default) runs a variant's transformers model; ``llamacpp`` runs a GGUF file
through llama-cpp-python (harness/engines/llamacpp.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from harness.blocks import EngineInfo
from harness.measure.latency import Decoder, hf_decoder
from harness.measure.memory import weights_bytes
from harness.measure.quality import LogitsFn, hf_logits


@dataclass
class EngineModel:
    """Everything measurement reads from a loaded model, whichever engine runs it."""
    logits: LogitsFn
    decoder: Decoder
    tokenizer: Any  # the model's transformers tokenizer: the same ids for every engine
    device: torch.device
    vocab_size: int
    weights_bytes: int  # bytes of the weights as the engine holds them
    kv_element_bytes: int  # bytes per KV-cache element
    config: Any  # the transformers config (the shapes the decode roofline needs)
    info: EngineInfo
    max_length: int  # the longest sequence ``logits`` takes (lm-eval's rolling windows)
    hf_model: torch.nn.Module | None = None  # lm-eval wraps it (HFLM); other engines are scored by their logits
    close: Callable[[], None] = lambda: None


def transformers_model(model: torch.nn.Module, tokenizer: Any) -> EngineModel:
    import transformers

    return EngineModel(logits=hf_logits(model), decoder=hf_decoder(model, tokenizer), tokenizer=tokenizer,
                       device=model.device, vocab_size=len(tokenizer), weights_bytes=weights_bytes(model),
                       kv_element_bytes=torch.finfo(model.dtype).bits // 8,  # the cache is in the compute dtype
                       config=model.config, info=EngineInfo(name="transformers", version=transformers.__version__,
                                                            threads=torch.get_num_threads()),
                       max_length=getattr(model.config, "max_position_embeddings", 2048), hf_model=model)
