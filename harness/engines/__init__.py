"""Engines: what runs a prepared model (the third axis beside model and variant, as optimum-benchmark
keeps backend, scenario and launcher apart).

An engine hands measurement an ``EngineModel``: next-token logits for token ids and a ``Decoder``
that streams a timed greedy generation, plus what memory and the roofline need. Measurements stay
engine-free: the same held-out windows and token ids, the same latency definitions, the same
fidelity reference (the model's transformers fp32 baseline) whatever the engine.

Each engine is a schema registered in harness/config/engines.py (its fields, variant kinds and the
``"module:function"`` of its prepare and server) and a module here: ``hf`` (transformers, the default),
``llamacpp`` (a GGUF file through llama-cpp-python) and ``onnxrt`` (an ONNX export through ONNX Runtime).
"""
from harness.blocks import EngineInfo  # noqa: F401
from harness.engines.base import EngineModel, EnginePoint, Prepared, Served  # noqa: F401
from harness.engines.hf import transformers_model  # noqa: F401
