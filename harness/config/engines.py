"""The engine axis's registry: each engine is its config schema, registered with ``@register_engine``.

An engine's schema is what the rest of the code knows of it (optimum-benchmark's backend config, lm-eval's
``@register_model``): its fields and their checks, the variant kinds it prepares, where its implementation
lives (``prepare``: ``"module:function"``, imported only when a point runs, so composing a config never
imports torch), the command that starts its OpenAI-compatible server if it has one (``serve``), and which of
its keys do not change a measurement (``field(metadata=NOT_IDENTITY)``). The sets the code uses (which
engines exist, which variant kinds each runs, which start servers, which keys leave a point's identity) are
derived from this registry; nothing names an engine elsewhere. docs/contributing.md: adding an engine.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from harness.config.checks import ConfigValueError, _at_least, _one_of, _positive

NOT_IDENTITY = {"identity": False}  # field metadata: the key does not change what the point measures
SERVING_ONLY = {"identity": "serving"}  # field metadata: the key changes only what a started server measures

_ENGINES: dict[str, type["EngineConfig"]] = {}


@dataclass
class EngineConfig:
    """What every engine's schema has. Subclasses add their fields and set the ClassVars."""
    name: str = MISSING
    # the point runs in a child process, so a crash of the engine's native code is a failed record and the
    # sweep goes on (harness/launch/isolate.py)
    isolate: bool = field(default=False, metadata=NOT_IDENTITY)

    variant_kinds: ClassVar[tuple[str, ...]] = ()  # the variant kinds it prepares (harness/variants kinds or its own)
    # "module:function": (EnginePoint, torch.device) -> harness.engines.Prepared; "" for an engine measured only
    # behind its server (serving scenarios only)
    prepare: ClassVar[str] = ""
    serve: ClassVar[Optional[str]] = None  # "module:function": (EnginePoint, api_model) -> harness.engines.Served

    def __post_init__(self) -> None:
        own = type(self).__dataclass_fields__["name"].default
        if self.name != own:  # the schema is chosen by engine=<name>; the name cannot be changed under it
            raise ConfigValueError(f"engine.name={self.name!r} under engine={own}'s schema; valid: {own} "
                                   f"(choose another engine with engine=NAME: {', '.join(_ENGINES)})")

    def check(self, variant: Any, model: Any) -> None:
        """The combinations this engine refuses, before anything loads (RunConfig.__post_init__)."""


def register_engine(cls: type[EngineConfig]) -> type[EngineConfig]:
    """Register an engine schema under its ``name`` default, in the registry and in Hydra's ConfigStore
    (group ``engine``, option ``<name>_schema``: its YAML under conf/engine/ lists it first in its defaults)."""
    name = cls.__dataclass_fields__["name"].default
    if not isinstance(name, str) or name == MISSING:
        raise TypeError(f"{cls.__name__}: an engine schema needs its name as the default of `name`")
    if not cls.prepare and not cls.serve:
        raise TypeError(f"{cls.__name__}: an engine schema needs `prepare` or `serve` ('module:function')")
    _ENGINES[name] = cls
    ConfigStore.instance().store(group="engine", name=f"{name}_schema", node=cls)
    return cls


def engine_schemas() -> dict[str, type[EngineConfig]]:
    """Every registered engine, by name."""
    return dict(_ENGINES)


def engine_names() -> tuple[str, ...]:
    return tuple(_ENGINES)


def variant_kinds_by_engine() -> dict[str, tuple[str, ...]]:
    return {name: cls.variant_kinds for name, cls in _ENGINES.items()}


def in_process_engines() -> tuple[str, ...]:
    """The engines a single-request scenario can load in meekbench's process (they have ``prepare``)."""
    return tuple(name for name, cls in _ENGINES.items() if cls.prepare)


def server_engines() -> tuple[str, ...]:
    """The engines whose OpenAI-compatible server meekbench can start itself."""
    return tuple(name for name, cls in _ENGINES.items() if cls.serve)


def not_identity_keys(engine: EngineConfig | type[EngineConfig], prefix: str = "engine.") -> tuple[str, ...]:
    """The engine's config keys (of a schema or its instance) that do not change a measurement (left out of
    the point's key)."""
    return tuple(prefix + f.name for f in dataclasses.fields(engine) if f.metadata.get("identity") is False)


def serving_only_keys(engine: EngineConfig | type[EngineConfig], prefix: str = "engine.") -> tuple[str, ...]:
    """The engine's keys that configure only the server it starts (left out of a ``single`` point's key)."""
    return tuple(prefix + f.name for f in dataclasses.fields(engine) if f.metadata.get("identity") == "serving")


def implementation(target: str) -> Callable[..., Any]:
    """``"module:function"`` imported now (an engine's heavy code loads only when a point runs)."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@register_engine
@dataclass
class TransformersEngine(EngineConfig):
    """The variant's transformers model, in this process (torch kernels)."""
    name: str = "transformers"

    variant_kinds: ClassVar[tuple[str, ...]] = ("baseline", "quantise", "distil")  # harness/variants' registry
    prepare: ClassVar[str] = "harness.engines.hf:prepare"


@dataclass
class NativeEngine(EngineConfig):
    """An engine that runs a file made from the model's checkpoint with its own native threads."""
    threads: Optional[int] = None  # None follows torch's (bench.threads or its default), so engines compare alike
    artifact_dir: str = field(default=MISSING, metadata=NOT_IDENTITY)  # files made from checkpoints, per model
    isolate: bool = field(default=True, metadata=NOT_IDENTITY)

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least("engine.threads", self.threads, 1)


# llama.cpp's file types a gguf variant may ask for (gguf.LlamaFileType's names without MOSTLY_/ALL_, less
# NVFP4, which llama-cpp-python 0.3.36's quantiser rejects as an invalid type), and the model's own file
GGUF_FILE_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S",
                   "Q4_1", "Q4_0", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K", "Q2_K_S", "IQ4_NL", "IQ4_XS", "IQ3_M",
                   "IQ3_S", "IQ3_XS", "IQ3_XXS", "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S", "TQ2_0",
                   "TQ1_0", "MXFP4_MOE", "Q1_0", "shipped")


LLAMACPP_SERVERS = ("llama-server", "llama-cpp-python")  # harness.engines.llamacpp's server commands


@register_engine
@dataclass
class LlamaCppEngine(NativeEngine):
    """llama.cpp through llama-cpp-python on a GGUF file (an F32/F16 export of the checkpoint, or a file
    type of llama.cpp's quantiser, or the model's own GGUF file)."""
    name: str = "llamacpp"
    artifact_dir: str = field(default="${models_dir}/gguf", metadata=NOT_IDENTITY)
    quantize_timeout_s: float = field(default=900.0, metadata=NOT_IDENTITY)  # the quantiser's child is stopped after
    # the server a serving scenario starts: llama.cpp's own (continuous batching over `parallel` slots), or
    # llama-cpp-python's (one request at a time; requests queue)
    server: str = field(default="llama-server", metadata=SERVING_ONLY)
    parallel: int = field(default=4, metadata=SERVING_ONLY)  # llama-server's slots (--parallel): requests decoded together

    variant_kinds: ClassVar[tuple[str, ...]] = ("baseline", "gguf")
    prepare: ClassVar[str] = "harness.engines.llamacpp:prepare"
    serve: ClassVar[Optional[str]] = "harness.engines.llamacpp:serve"

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("engine.quantize_timeout_s", self.quantize_timeout_s)
        _one_of("engine.server", self.server, LLAMACPP_SERVERS)
        _at_least("engine.parallel", self.parallel, 1)
        if self.server == "llama-cpp-python" and self.parallel != 1:
            raise ConfigValueError(f"engine.parallel={self.parallel!r} with engine.server=llama-cpp-python, which "
                                   "decodes one request at a time; valid: engine.parallel=1, or engine.server=llama-server")

    def check(self, variant: Any, model: Any) -> None:
        if variant.kind != "gguf":
            return
        if variant.method not in GGUF_FILE_TYPES:
            raise ConfigValueError(f"variant.method={variant.method!r} (variant {variant.name}); valid: the "
                                   f"llama.cpp file types {', '.join(GGUF_FILE_TYPES)}")
        if variant.method == "shipped" and model.source != "gguf":
            raise ConfigValueError(f"variant.method='shipped' (variant {variant.name}) measures the model's own "
                                   f"GGUF file, but model={model.name} has source={model.source}; valid: a model "
                                   "with source=gguf")


ONNX_METHODS = ("int8-dynamic", "int4")  # harness.engines.onnxrt (beside its fp32 baseline)
INT4_BLOCK_SIZES = (16, 32, 64, 128, 256)  # MatMulNBits' block sizes


@register_engine
@dataclass
class OnnxRuntimeEngine(NativeEngine):
    """ONNX Runtime (CPUExecutionProvider) on an export by onnxruntime-genai's model builder."""
    name: str = "onnxruntime"
    artifact_dir: str = field(default="${models_dir}/onnx", metadata=NOT_IDENTITY)
    build_timeout_s: float = field(default=900.0, metadata=NOT_IDENTITY)  # the model builder's child is stopped after
    int4_block_size: int = 32  # int4: weights per scale (MatMulNBits block)

    variant_kinds: ClassVar[tuple[str, ...]] = ("baseline", "onnx")
    prepare: ClassVar[str] = "harness.engines.onnxrt:prepare"

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("engine.build_timeout_s", self.build_timeout_s)
        _one_of("engine.int4_block_size", self.int4_block_size, INT4_BLOCK_SIZES)

    def check(self, variant: Any, model: Any) -> None:
        if variant.kind == "onnx" and variant.method not in ONNX_METHODS:
            raise ConfigValueError(f"variant.method={variant.method!r} (variant {variant.name}); valid: the ONNX "
                                   f"Runtime variants {', '.join(ONNX_METHODS)}")
        if variant.kind == "baseline" and variant.dtype not in ("float32", "fp32"):
            raise ConfigValueError(f"variant.dtype={variant.dtype!r} (variant {variant.name}) with engine.name=onnxruntime; "
                                   "valid: float32 (onnxruntime-genai builds fp16 and bf16 graphs for GPUs only)")


@register_engine
@dataclass
class VllmEngine(EngineConfig):
    """vLLM's OpenAI-compatible server on the model's transformers checkpoint (the same weights as the fp32
    reference), started in vLLM's own environment (harness/engines/vllm_env.py): serving scenarios only. Its
    variants are the baseline dtypes (--dtype); its online quantisations need kernels vLLM's CPU build lacks
    (docs/engines.md, "vLLM: what runs on this CPU", with vLLM's message)."""
    name: str = "vllm"
    python: Optional[str] = field(default=None, metadata=NOT_IDENTITY)  # None: the environment scripts/vllm_env.sh builds
    threads: Optional[int] = None  # OpenMP threads bound to this many cores; None: torch's count, as other engines
    kv_cache_gib: float = 1.0  # VLLM_CPU_KVCACHE_SPACE: the KV cache's memory on a CPU
    max_num_seqs: Optional[int] = None  # requests batched together at most; None: vLLM's default

    variant_kinds: ClassVar[tuple[str, ...]] = ("baseline",)
    serve: ClassVar[Optional[str]] = "harness.engines.vllm:serve"

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least("engine.threads", self.threads, 1)
        _positive("engine.kv_cache_gib", self.kv_cache_gib)
        _at_least("engine.max_num_seqs", self.max_num_seqs, 1)
