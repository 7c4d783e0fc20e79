"""Quantised variants: bitsandbytes at load time, torchao and torch's dynamic int8 after loading.

Each method is one entry in METHODS: its option schema, how to load (extra from_pretrained
kwargs) and/or how to transform the loaded model. Measurement code never sees which one ran.
When a library cannot run a method on the device in hand, the point becomes an ``unsupported``
record carrying the library's own reason, and the sweep goes on. A refusal is recognised
narrowly: ImportError / NotImplementedError, or an exception raised inside the library's own
code. Anything else (a bug on our side, say) propagates and the point is ``failed``.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from harness.config import (Bnb4bitOptions, BnbInt8Options, GroupedInt4Options, ModelConfig, NoOptions,
                            TorchDynamicOptions, VariantConfig)
from harness.io import package_version
from harness.models import load_model
from harness.variants import PreparedModel, UnsupportedVariantError, VariantInfo, parse_dtype, typed_options

log = logging.getLogger(__name__)

# Exception types by which any library says "not here" (missing kernel, backend or extra package).
_ALWAYS_REFUSALS = (ImportError, NotImplementedError)
# Where each library's own code lives (path fragments of its source files): an exception raised
# there is that library refusing; transformers' bitsandbytes integration counts as bitsandbytes.
_LIBRARY_CODE = {
    "bitsandbytes": ("/bitsandbytes/", "/transformers/quantizers/", "/transformers/integrations/bitsandbytes"),
    "torchao": ("/torchao/", "/transformers/quantizers/"),
    "torch": ("/torch/ao/",),
}


@dataclass(frozen=True)
class QuantMethod:
    library: str  # distribution name, for its version
    bits: float
    options: type  # the option schema (harness.config) its variant YAML must select
    load_kwargs: Callable[[Any, torch.dtype, torch.device], dict] | None = None
    transform: Callable[[torch.nn.Module, Any, torch.device], torch.nn.Module] | None = None
    devices: tuple[str, ...] = ("cpu", "cuda")
    note: str = ""


# --- bitsandbytes: quantised while loading -------------------------------------------------------

def _bnb_int8(opts: BnbInt8Options, dtype: torch.dtype, device: torch.device) -> dict:
    from transformers import BitsAndBytesConfig

    return {"quantization_config": BitsAndBytesConfig(
        load_in_8bit=True, llm_int8_threshold=opts.llm_int8_threshold,
        llm_int8_skip_modules=opts.skip_modules), "device_map": str(device)}


def _bnb_4bit(quant_type: str):
    def kwargs(opts: Bnb4bitOptions, dtype: torch.dtype, device: torch.device) -> dict:
        from transformers import BitsAndBytesConfig

        compute = parse_dtype(opts.compute_dtype) if opts.compute_dtype else dtype
        return {"quantization_config": BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=quant_type, bnb_4bit_compute_dtype=compute,
            bnb_4bit_use_double_quant=opts.double_quant,
            llm_int8_skip_modules=opts.skip_modules), "device_map": str(device)}
    return kwargs


# --- torchao: quantize_ with config objects (torchao 0.18 rejects strings) ------------------------

def _torchao(make_config: Callable[[Any], Any]):
    def transform(model: torch.nn.Module, opts: Any, device: torch.device) -> torch.nn.Module:
        from torchao.quantization import quantize_

        quantize_(model, make_config(opts))
        return model
    return transform


def _ao_int8_weight(opts: NoOptions):
    from torchao.quantization import Int8WeightOnlyConfig

    return Int8WeightOnlyConfig()


def _ao_int8_dynamic(opts: NoOptions):
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig

    return Int8DynamicActivationInt8WeightConfig()


def _ao_int4_weight(opts: GroupedInt4Options):
    from torchao.quantization import IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerGroup

    return IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(opts.group_size))


def _ao_int4_tinygemm(opts: GroupedInt4Options):
    from torchao.quantization import Int4WeightOnlyConfig

    return Int4WeightOnlyConfig(group_size=opts.group_size)


# --- torch's own dynamic int8 (CPU kernels: fbgemm / qnnpack) ---------------------------------------

def _torch_dynamic_int8(model: torch.nn.Module, opts: TorchDynamicOptions, device: torch.device) -> torch.nn.Module:
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    skip = set(opts.skip_modules)  # quantising lm_head breaks tie_weights
    qconfig = per_channel_dynamic_qconfig if opts.per_channel else default_dynamic_qconfig
    spec = {name: qconfig for name, mod in model.named_modules()
            if isinstance(mod, torch.nn.Linear) and name not in skip}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # eager-mode API, deprecated in favour of torchao
        return quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)


METHODS: dict[str, QuantMethod] = {
    "bnb-int8": QuantMethod("bitsandbytes", 8, BnbInt8Options, load_kwargs=_bnb_int8,
                            note="LLM.int8 with outlier threshold"),
    "bnb-nf4": QuantMethod("bitsandbytes", 4, Bnb4bitOptions, load_kwargs=_bnb_4bit("nf4")),
    "bnb-fp4": QuantMethod("bitsandbytes", 4, Bnb4bitOptions, load_kwargs=_bnb_4bit("fp4")),
    "ao-int8-weight": QuantMethod("torchao", 8, NoOptions, transform=_torchao(_ao_int8_weight)),
    "ao-int8-dynamic": QuantMethod("torchao", 8, NoOptions, transform=_torchao(_ao_int8_dynamic),
                                   note="int8 dynamic activations, int8 weights"),
    "ao-int4-weight": QuantMethod("torchao", 4, GroupedInt4Options, transform=_torchao(_ao_int4_weight),
                                  note="IntxWeightOnlyConfig: int4 values held unpacked in int8 (CPU path)"),
    "ao-int4-tinygemm": QuantMethod("torchao", 4, GroupedInt4Options, transform=_torchao(_ao_int4_tinygemm),
                                    note="Int4WeightOnlyConfig: packed int4 (CUDA; needs an extra package)"),
    "torch-dynamic-int8": QuantMethod("torch", 8, TorchDynamicOptions, transform=_torch_dynamic_int8,
                                      devices=("cpu",),
                                      note="torch.ao quantize_dynamic on Linear layers, lm_head left out"),
}


def is_refusal(e: BaseException, library: str) -> bool:
    """ImportError / NotImplementedError, or raised from within ``library``'s own code."""
    if isinstance(e, _ALWAYS_REFUSALS):
        return True
    tb, where = e.__traceback__, ""
    while tb is not None:  # the innermost Python frame: where the exception was raised
        where, tb = tb.tb_frame.f_code.co_filename.replace("\\", "/"), tb.tb_next
    return any(fragment in where for fragment in _LIBRARY_CODE.get(library, ()))


def _refusal(method: str, e: BaseException, device: torch.device | None = None) -> UnsupportedVariantError:
    reason = " ".join(str(e).split())[:300] or type(e).__name__
    hint = ""
    if method.startswith("bnb-") and device is not None and device.type == "cpu" and "is invalid for input" in reason:
        hint = " (bitsandbytes' packed CPU 4-bit path needs every layer's in_features to be a multiple of its block size, 64)"
    return UnsupportedVariantError(f"{method}: {type(e).__name__}: {reason}{hint}")


def float_linear_layers(model: torch.nn.Module) -> int:
    """Linear layers whose weight is still a plain floating-point tensor (i.e. not quantised)."""
    return sum(1 for m in model.modules() if isinstance(m, torch.nn.Linear)
               and type(m.weight) in (torch.nn.Parameter, torch.Tensor) and m.weight.is_floating_point())


def prepare(model_cfg: ModelConfig, variant_cfg: VariantConfig, device: torch.device,
            offline: bool | None = None) -> PreparedModel:
    name = variant_cfg.method
    if name not in METHODS:
        raise ValueError(f"variant.method={name!r}; valid: {', '.join(METHODS)}")
    method = METHODS[name]
    if device.type not in method.devices:
        raise UnsupportedVariantError(f"{name}: runs on {', '.join(method.devices)}, not {device.type}")
    if package_version(method.library) is None:
        raise UnsupportedVariantError(f"{name}: {method.library} is not installed (pip install 'meekbench[quant]')")
    opts = typed_options(variant_cfg, method.options)
    dtype = parse_dtype(variant_cfg.dtype)
    extra = method.load_kwargs(opts, dtype, device) if method.load_kwargs else {}
    try:
        loaded = load_model(model_cfg, dtype, device, offline, **extra)
    except Exception as e:
        if method.load_kwargs and is_refusal(e, method.library):  # the quantiser runs inside from_pretrained
            raise _refusal(name, e, device) from e
        raise
    before = float_linear_layers(loaded.model)
    try:
        if method.transform:
            loaded.model = method.transform(loaded.model, opts, device)
        with torch.inference_mode():  # one forward: some kernels fail only at the first call without grad
            loaded.model(input_ids=torch.zeros(1, 2, dtype=torch.long, device=loaded.model.device))
    except Exception as e:
        if is_refusal(e, method.library):
            raise _refusal(name, e, device) from e
        raise
    if method.transform and float_linear_layers(loaded.model) == before:  # libraries skip layers silently
        raise UnsupportedVariantError(f"{name}: left all {before} Linear layers unquantised "
                                      f"(layer shapes not supported with options {asdict(opts)})")
    info = VariantInfo(name=variant_cfg.name, kind="quantise", dtype=variant_cfg.dtype, method=name,
                       library=method.library, library_version=package_version(method.library), weight_bits=method.bits,
                       options=asdict(opts), extra={"note": method.note} if method.note else {})
    return PreparedModel(loaded, info, counts_readable=False)  # packed weights would undercount
