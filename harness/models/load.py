"""Load a model and its tokenizer from a local directory, a hub id or a GGUF file, offline-safe.

Safe by default: ``trust_remote_code=False`` and safetensors only, unless the model config
says otherwise. A missing local model fails at once with the command that builds it; a hub
id on a machine that cannot reach the hub fails at once instead of waiting on retries.
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from harness.models.card import ModelCard, read_card
from harness.config import MODEL_SOURCES, ModelConfig

log = logging.getLogger(__name__)


SOURCES = MODEL_SOURCES


class ModelNotFoundError(RuntimeError):
    """The model named by a config cannot be found where the config says."""


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: Any
    config: ModelConfig
    source: str  # resolved local path, or hub_id@revision
    card: ModelCard | None = None  # the local model's card.json, if any


class DeviceUnavailableError(ValueError):
    """hardware.device names a device kind this machine does not have: the point is recorded as
    unsupported here (a sweep goes on), and a single run is refused before any load."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"hardware.device={name!r} is not a device; valid: auto, cpu, cuda, cuda:N") from e
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"hardware.device={name!r} but this machine has no CUDA device (found: torch {torch.__version__}, "
            f"CUDA build {torch.version.cuda or 'none'}, {count} CUDA devices); valid here: cpu, auto")
    if device.type == "cuda" and device.index is not None and device.index >= count:
        raise DeviceUnavailableError(f"hardware.device={name!r} but this machine has {count} CUDA device(s); "
                                     f"valid here: cuda:0 to cuda:{count - 1}, cpu, auto")
    return device


def hub_is_offline(setting: bool | None) -> bool:
    """True when hub downloads must not be attempted (config, HF_HUB_OFFLINE, or no route)."""
    if setting is not None:
        return setting
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return True
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or ""
    try:  # one short connect instead of the hub client's retries on a closed network
        socket.create_connection((host, 443), timeout=3).close()
        return False
    except OSError:
        log.warning("hub endpoint %s unreachable: loading from the local cache only", host)
        return True


def _local_dir(cfg: ModelConfig) -> Path:
    if not cfg.path:
        raise ModelNotFoundError(f"model {cfg.name}: source=local needs model.path")
    path = Path(cfg.path)
    if not (path / "config.json").exists():
        hint = cfg.build_hint or "point model.path at a directory written by save_pretrained"
        raise ModelNotFoundError(f"model {cfg.name}: no model at {path}; {hint}")
    return path


def _gguf_dir(cfg: ModelConfig) -> Path:
    """The GGUF's converted checkpoint, converted now if missing or stale."""
    from harness.models.gguf_checkpoint import GGUFSourceError, ensure_checkpoint

    try:
        return ensure_checkpoint(cfg)
    except GGUFSourceError as e:
        raise ModelNotFoundError(str(e)) from e


def checkpoint_dir(cfg: ModelConfig, offline: bool | None = None) -> Path:
    """The directory holding ``cfg``'s transformers checkpoint (config, safetensors, tokenizer), for
    engines that convert it to their own format: built or converted first where the source says how."""
    if cfg.source == "local":
        return _local_dir(cfg)
    if cfg.source == "gguf":
        return _gguf_dir(cfg)
    if not cfg.hub_id:
        raise ModelNotFoundError(f"model {cfg.name}: source=hub needs model.hub_id")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(cfg.hub_id, revision=cfg.revision, local_files_only=hub_is_offline(offline),
                                      allow_patterns=["*.json", "*.safetensors", "tokenizer*"]))
    except Exception as e:  # offline and not cached, or the hub refused
        raise ModelNotFoundError(f"model {cfg.name}: {cfg.hub_id}@{cfg.revision} is not available here "
                                 f"({type(e).__name__}); fetch it on a connected machine "
                                 f"(huggingface-cli download {cfg.hub_id})") from e


def load_model(cfg: ModelConfig, dtype: torch.dtype, device: torch.device, offline: bool | None = None,
               **from_pretrained_kwargs: Any) -> LoadedModel:
    """Load ``cfg``'s model in ``dtype`` onto ``device``; extra kwargs go to from_pretrained
    (a variant's ``quantization_config`` or ``device_map``)."""
    common: dict[str, Any] = {"trust_remote_code": cfg.trust_remote_code}
    card = None
    if cfg.source in ("local", "gguf"):
        path = _gguf_dir(cfg) if cfg.source == "gguf" else _local_dir(cfg)
        src, source = str(path), str(path.resolve())
        card = read_card(path)
    elif cfg.source == "hub":
        if not cfg.hub_id:
            raise ModelNotFoundError(f"model {cfg.name}: source=hub needs model.hub_id")
        src, source = cfg.hub_id, f"{cfg.hub_id}@{cfg.revision}"
        common |= {"revision": cfg.revision, "local_files_only": hub_is_offline(offline)}
    else:
        raise ValueError(f"model {cfg.name}: source={cfg.source!r}; valid: {', '.join(SOURCES)}")

    kwargs = common | {"dtype": dtype, "use_safetensors": cfg.use_safetensors} | from_pretrained_kwargs
    try:
        model = AutoModelForCausalLM.from_pretrained(src, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(src, **common)
    except OSError as e:
        if common.get("local_files_only"):
            raise ModelNotFoundError(
                f"model {cfg.name}: {cfg.hub_id} is not in the local hub cache and the hub is offline; "
                f"fetch it on a connected machine (huggingface-cli download {cfg.hub_id}) or set offline=false"
            ) from e
        raise
    if "device_map" not in from_pretrained_kwargs and not getattr(model, "hf_quantizer", None):
        model.to(device)
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model=model, tokenizer=tokenizer, config=cfg, source=source, card=card)
