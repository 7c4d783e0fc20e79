"""Variants: how a model is turned into the thing that is measured.

Each variant kind is one function ``prepare(model_cfg, variant_cfg, device, offline) ->
PreparedModel`` registered here; measurement code never needs to know which one ran.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from harness.blocks import VariantInfo
from harness.config import ModelConfig, VariantConfig
from harness.models import LoadedModel


class UnsupportedVariantError(RuntimeError):
    """The variant cannot run on this device or software stack (a record with status unsupported)."""


@dataclass
class PreparedModel:
    loaded: LoadedModel
    info: VariantInfo
    # Whether counting the loaded model's parameters gives the model's true counts (packed
    # quantised weights would undercount); where not, the card's or config's counts are used.
    counts_readable: bool = True


PrepareFn = Callable[[ModelConfig, VariantConfig, torch.device, "bool | None"], PreparedModel]

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}


def parse_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"variant.dtype={name!r}; valid: {', '.join(DTYPES)}") from None


def typed_options(variant_cfg: VariantConfig, schema: type):
    """The variant's options, checked to be the schema its kind or method takes."""
    opts = variant_cfg.options
    if not isinstance(opts, schema):
        raise ValueError(f"variant {variant_cfg.name}: takes options {schema.__name__}, got {type(opts).__name__}; "
                         "select it in the variant's YAML defaults (- /variant_options@options: <schema>, "
                         "schemas in harness/config/__init__.py VARIANT_OPTIONS)")
    return opts


def _registry() -> dict[str, PrepareFn]:
    # imported here: each variant module imports this one for the shared types above
    from harness.variants import baseline, distil, quantise

    return {"baseline": baseline.prepare, "quantise": quantise.prepare, "distil": distil.prepare}


def prepare(model_cfg: ModelConfig, variant_cfg: VariantConfig, device: torch.device,
            offline: bool | None = None) -> PreparedModel:
    registry = _registry()
    if variant_cfg.kind not in registry:
        raise ValueError(f"variant.kind={variant_cfg.kind!r}; valid: {', '.join(registry)}")
    return registry[variant_cfg.kind](model_cfg, variant_cfg, device, offline)
