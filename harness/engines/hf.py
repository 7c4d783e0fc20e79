"""The transformers engine: the variant's transformers model (harness/variants), run in this process."""
from __future__ import annotations

from typing import Any

import torch

from harness.blocks import EngineInfo
from harness.engines.base import EngineModel, EnginePoint, Prepared
from harness.measure.latency import hf_decoder
from harness.measure.memory import weights_bytes
from harness.measure.quality import hf_logits
from harness.models.params import count_params


def transformers_model(model: torch.nn.Module, tokenizer: Any) -> EngineModel:
    import transformers

    return EngineModel(logits=hf_logits(model), decoder=hf_decoder(model, tokenizer), tokenizer=tokenizer,
                       device=model.device, vocab_size=len(tokenizer), weights_bytes=weights_bytes(model),
                       kv_element_bytes=torch.finfo(model.dtype).bits // 8,  # the cache is in the compute dtype
                       config=model.config, info=EngineInfo(name="transformers", version=transformers.__version__,
                                                            threads=torch.get_num_threads()),
                       max_length=getattr(model.config, "max_position_embeddings", 2048), hf_model=model)


def prepare(point: EnginePoint, device: torch.device) -> Prepared:
    from harness.variants import prepare as prepare_variant

    p = prepare_variant(point.model, point.variant, device, point.offline)
    loaded = p.loaded
    return Prepared(transformers_model(loaded.model, loaded.tokenizer), p.info, loaded.source, loaded.card,
                    count_params(loaded.model) if p.counts_readable else None, loaded.config.distilled_from)
