"""Baseline variant: the model as published, in a chosen dtype."""
from __future__ import annotations

import torch

from harness.config import ModelConfig, VariantConfig
from harness.models import load_model
from harness.variants import PreparedModel, UnsupportedVariantError, VariantInfo, parse_dtype


def prepare(model_cfg: ModelConfig, variant_cfg: VariantConfig, device: torch.device,
            offline: bool | None = None) -> PreparedModel:
    dtype = parse_dtype(variant_cfg.dtype)
    if device.type == "cuda" and dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise UnsupportedVariantError(f"{torch.cuda.get_device_name(device)} has no bfloat16 support")
    loaded = load_model(model_cfg, dtype, device, offline)
    bits = torch.finfo(dtype).bits
    return PreparedModel(loaded, VariantInfo(name=variant_cfg.name, kind="baseline", dtype=variant_cfg.dtype,
                                             library="torch", library_version=torch.__version__,
                                             weight_bits=bits))


def dtype_baseline(model_cfg: ModelConfig, name: str, device: torch.device,
                   offline: bool | None = None) -> PreparedModel:
    """The model in the dtype that ``name`` spells (fp32, bf16, ...): a baseline built without its YAML."""
    parse_dtype(name)  # a clear error for a name that is not a dtype
    return prepare(model_cfg, VariantConfig(name=name, kind="baseline", dtype=name), device, offline)


def reference_for(model_cfg: ModelConfig, variant_cfg: VariantConfig, dtype: str, device: torch.device,
                  offline: bool | None = None) -> PreparedModel | None:
    """The model's ``dtype`` baseline, to time beside a variant; None when the variant is that baseline."""
    if variant_cfg.kind == "baseline" and parse_dtype(variant_cfg.dtype) == parse_dtype(dtype):
        return None
    return prepare(model_cfg, VariantConfig(name=f"{dtype} baseline", kind="baseline", dtype=dtype), device, offline)
