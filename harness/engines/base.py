"""What every engine hands the rest of a point: the model as measurement reads it (``EngineModel``), and
what its prepare function and its server return (one signature for all engines: harness/config/engines.py)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from harness.blocks import EngineInfo, VariantInfo
from harness.measure.latency import Decoder
from harness.measure.quality import LogitsFn
from harness.variants import UnsupportedVariantError


class MissingBuildError(UnsupportedVariantError):
    """An engine's library is not installed, or its native library does not load."""


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


@dataclass(frozen=True)
class EnginePoint:
    """What an engine's prepare reads of a point: its model, variant and engine configs (harness.config's
    schemas) and the lengths it must serve."""
    model: Any
    variant: Any
    engine: Any
    context_length: int  # the held-out windows' length (quality.context_length)
    decode_length: int  # the longest prompt + new tokens a timed request decodes
    offline: bool | None = None


@dataclass
class Prepared:
    """The point's model as its engine runs it, with what its record's model block reads."""
    target: EngineModel
    variant: VariantInfo
    source: str  # where the weights came from (a checkpoint directory, a hub id)
    card: Any = None  # the model's card, where it has one
    counts: Any = None  # parameter counts read from the loaded model, where readable
    distilled_from: str | None = None


@dataclass
class Served:
    """A server an engine starts for a point: its command line for a port, and what its records say of it."""
    command: Callable[[int], list[str]]
    checkpoint: Path  # the transformers checkpoint the served file was made from (tokenizer, config)
    variant: VariantInfo
    info: EngineInfo
    card: Any = None


def fresh(artifact: Path, sidecar: Path, made_from: dict[str, Any]) -> bool:
    """Whether a file an engine made from a checkpoint is there and its sidecar says it was made from
    ``made_from`` (the same checkpoint, the same library versions and settings); else it is made again."""
    try:
        return artifact.exists() and json.loads(sidecar.read_text()).get("made_from") == made_from
    except (OSError, ValueError, AttributeError):
        return False


def card_of(checkpoint: Path) -> Any:
    """The checkpoint's model card, or None where it has none."""
    from harness.models.card import read_card

    return read_card(checkpoint) if (checkpoint / "card.json").exists() else None
