"""The model side: loading a model and its tokenizer (``load``: a local directory, a hub id or a GGUF file
converted once by ``gguf_checkpoint``), its card (``card``) and its parameter counts (``params``).

``from harness.models import load_model, checkpoint_dir, ...`` keeps working as when this was one module.
"""
from harness.models.load import (DeviceUnavailableError, LoadedModel, ModelNotFoundError,  # noqa: F401
                                  checkpoint_dir, hub_is_offline, load_model, resolve_device)
