"""The checks every schema runs in __post_init__ (so a bad value fails when the config is
instantiated, before anything loads), and the closed sets, named once."""
from __future__ import annotations

import re
from typing import Any, Callable, Sequence

from omegaconf import MISSING


class ConfigValueError(ValueError):
    """A config value outside what its key accepts (raised when the config is instantiated, at
    compose time in every command, before anything loads)."""


# The closed sets, named once (the modules that act on them import these; tests/test_config.py checks
# that each matches its implementation)
DTYPE_NAMES = ("float32", "fp32", "bfloat16", "bf16", "float16", "fp16")  # harness.variants.DTYPES' keys
MODEL_SOURCES = ("local", "hub", "gguf")  # harness.models.load_model
# harness.variants' registry, gguf (engine llamacpp) and onnx (engine onnxruntime)
VARIANT_KINDS = ("baseline", "quantise", "distil", "gguf", "onnx")
ENGINES = ("transformers", "llamacpp", "onnxruntime")  # harness.engines
ONNX_METHODS = ("int8-dynamic", "int4")  # harness.engines.onnxrt (beside its fp32 baseline)
INT4_BLOCK_SIZES = (16, 32, 64, 128, 256)  # MatMulNBits' block sizes
# llama.cpp's file types a gguf variant may ask for (gguf.LlamaFileType's names without MOSTLY_/ALL_, less
# NVFP4, which llama-cpp-python 0.3.36's quantiser rejects as an invalid type), and the model's own file
GGUF_FILE_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S",
                   "Q4_1", "Q4_0", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K", "Q2_K_S", "IQ4_NL", "IQ4_XS", "IQ3_M",
                   "IQ3_S", "IQ3_XS", "IQ3_XXS", "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S", "TQ2_0",
                   "TQ1_0", "MXFP4_MOE", "Q1_0", "shipped")
# the variant kinds each engine runs (a gguf variant is a llama.cpp file type; bnb, torchao and
# distillation produce transformers models)
# the engines whose OpenAI-compatible server meekbench can start itself (other targets are given by URL)
SERVER_ENGINES = ("llamacpp",)
ENGINE_VARIANT_KINDS = {"transformers": ("baseline", "quantise", "distil"), "llamacpp": ("baseline", "gguf"),
                        "onnxruntime": ("baseline", "onnx")}
LAW_SOURCES = ("paper", "chinchilla", "chinchilla-unrounded", "epoch", "measured")  # harness.projector.inputs
LAW_TRANSFERS = ("exponent", "full")  # how a measured law is carried to the projection
COST_SOURCES = ("measured", "assumed")  # the inference gap's cost per token
ASSUMED_RATES = ("bandwidth", "flops")
MEASURED_POINTS = ("single", "serving")  # which measured decode cost the inference gap reads  # what the assumed decode cost per parameter is bound by
STUDENT_INITS = ("model", "every_kth_layer", "fresh")  # harness.variants.distil
# how a point loads its target (harness.run): one request at a time in this process (bench/), or an
# OpenAI-compatible server under load (harness.serve): open-loop arrivals, N closed-loop clients, or all at once
SCENARIOS = ("single", "server", "concurrency", "offline")
LENGTH_DISTRIBUTIONS = ("fixed", "uniform")  # scenario.input_tokens / output_tokens spread (vLLM's random range)
ON_FAILURE = ("continue", "stop")  # a serving level that fails: go on to the next level, or stop the sweep
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
_URL = re.compile(r"https?://(\[[0-9A-Fa-f:]+\]|[^/\s:\[\]]+)(:\d{1,5})?(/\S*)?")


def _set(value: Any) -> bool:
    """False for a value still MISSING (a nested schema's defaults are instantiated before the YAML's)."""
    return value is not None and value != MISSING


def _one_of(key: str, value: Any, valid: Sequence[Any]) -> None:
    if _set(value) and value not in valid:
        raise ConfigValueError(f"{key}={value!r}; valid: {', '.join(map(str, valid))}")


def _at_least(key: str, value: Any, low: float, why: str = "") -> None:
    if _set(value) and value < low:
        raise ConfigValueError(f"{key}={value!r}; valid: >= {low}" + (f" ({why})" if why else ""))


def _positive(key: str, value: Any) -> None:
    if _set(value) and value <= 0:
        raise ConfigValueError(f"{key}={value!r}; valid: > 0")


def _fraction(key: str, value: Any, closed: bool = False) -> None:
    """In (0, 1), or [0, 1] when closed."""
    if _set(value) and not (0 <= value <= 1 if closed else 0 < value < 1):
        raise ConfigValueError(f"{key}={value!r}; valid: " + ("0 to 1" if closed else "strictly between 0 and 1"))


def _share(key: str, value: Any) -> None:
    """A share of a whole: in (0, 1]."""
    if _set(value) and not 0 < value <= 1:
        raise ConfigValueError(f"{key}={value!r}; valid: above 0, at most 1")


def _each(check: Callable[..., None], key: str, values: Any, *args: Any) -> None:
    items = values.items() if isinstance(values, dict) else enumerate(values or [])
    for k, v in items:
        check(f"{key}.{k}", v, *args)
