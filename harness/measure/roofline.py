"""Decode roofline: bytes that must be read per decoded token over the time one takes.

Decoding one token reads every weight once and the whole KV cache of each sequence, so
``(weights + batch * kv_bytes_per_position * mean_context) / seconds_per_step`` is the
bandwidth achieved; divided by the measured copy bandwidth it says how close to the
memory roof the decode runs (1.0 = at the roof; tiny CPU models are overhead-bound, far below).
"""
from __future__ import annotations


from harness.blocks import Roofline


def kv_bytes_per_position(model_config, element_bytes: int) -> int:
    layers = model_config.num_hidden_layers
    heads = model_config.num_attention_heads
    kv_heads = getattr(model_config, "num_key_value_heads", None) or heads
    head_dim = getattr(model_config, "head_dim", None) or model_config.hidden_size // heads
    return 2 * layers * kv_heads * head_dim * element_bytes  # keys and values


def decode_roofline(weights_bytes: int, kv_per_position: int, batch_size: int, prompt_tokens: int,
                    new_tokens: int, step_ms: float, peak_bytes_per_s: float) -> Roofline:
    mean_context = prompt_tokens + new_tokens / 2
    step_bytes = weights_bytes + batch_size * kv_per_position * mean_context
    seconds = step_ms / 1e3
    achieved = step_bytes / seconds
    return Roofline(bytes_per_token=step_bytes / batch_size, seconds_per_token=seconds / batch_size,
                    achieved_bytes_per_s=achieved, peak_bytes_per_s=peak_bytes_per_s,
                    fraction_of_bandwidth=achieved / peak_bytes_per_s)
