"""The checks every schema runs in __post_init__ (so a bad value fails when the config is
instantiated, before anything loads), and the closed sets, named once."""
from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any, Callable, Sequence

from omegaconf import MISSING


class ConfigValueError(ValueError):
    """A config value outside what its key accepts (raised when the config is instantiated, at
    compose time in every command, before anything loads)."""


# The closed sets, named once (the modules that act on them import these; tests/test_config.py checks
# that each matches its implementation). The engines, their variant kinds and the scenarios are registries:
# harness/config/engines.py and harness/config/serving.py
DTYPE_NAMES = ("float32", "fp32", "bfloat16", "bf16", "float16", "fp16")  # harness.variants.DTYPES' keys
MODEL_SOURCES = ("local", "hub", "gguf")  # harness.models.load_model
LAW_SOURCES = ("paper", "chinchilla", "chinchilla-unrounded", "epoch", "measured")  # harness.projector.inputs
LAW_TRANSFERS = ("exponent", "full")  # how a measured law is carried to the projection
COST_SOURCES = ("measured", "assumed")  # the inference gap's cost per token
ASSUMED_RATES = ("bandwidth", "flops")  # what the assumed decode cost per parameter is bound by
MEASURED_POINTS = ("single", "serving")  # which measured decode cost the inference gap reads
STUDENT_INITS = ("model", "every_kth_layer", "fresh")  # harness.variants.distil
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


def refuse_unknown_keys(config: Any, prefix: str = "") -> None:
    """A key the schemas do not have, added with Hydra's ``+key=value``, is refused rather than stored in the
    record and its point key while it changes nothing (``+bench.new_token=8`` for bench.new_tokens)."""
    if not dataclasses.is_dataclass(config):
        return
    known = [f.name for f in dataclasses.fields(config)]
    for key in vars(config):
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            raise ConfigValueError(f"{prefix}{key} is not a key of {type(config).__name__}; valid: "
                                   + (f"{prefix}{close[0]} (did you mean it?), or " if close else "")
                                   + ", ".join(f"{prefix}{k}" for k in known))
    for key in known:
        refuse_unknown_keys(getattr(config, key), f"{prefix}{key}.")
