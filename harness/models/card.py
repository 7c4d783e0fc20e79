"""The model card: what a locally built model (tiny family, distilled student, a converted GGUF) says
about itself.

One typed definition, read and written only here. ``card.json`` sits beside the weights; the
record builder takes parameter and token counts from it, and builders use it to decide reuse.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.io import write_atomic

CARD = "card.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class BuildInfo(_Strict):
    """How a model of the tiny family was trained from scratch."""
    architecture: str
    spec: dict[str, Any]
    train_flops_non_embedding: float
    heldout_loss_nats: float
    heldout_bits_per_byte: float
    corpus: str
    corpus_sha256: str
    vocab_size: int
    seq_len: int
    seed: int
    torch_threads: int
    build_hash: str
    # a grid run on mixed text: the loss on documents held out from its own training mixture
    heldout_in_distribution_loss_nats: Optional[float] = None


class DistillationInfo(_Strict):
    """How a student was trained from a teacher (method kd) or without one (continue-ce)."""
    method: str
    recipe_hash: str
    teacher: Optional[str] = None
    teacher_params: Optional[int] = None
    # the family law counts non-embedding parameters: its compute accounting needs the teacher's too
    teacher_non_embedding_params: Optional[int] = None
    student_init: str
    alpha: float
    temperature: float
    distil_tokens: int
    distil_flops: float  # teacher forward (2 N_t D) + student training (6 N_s D)
    final_train_loss: float
    text: str
    seed: int
    steps: int


class ConversionInfo(_Strict):
    """How a checkpoint was made from another file format (a GGUF file, perhaps shipped in a package)."""
    format: str  # gguf
    file: str  # the file converted, as found
    file_name: str
    file_bytes: int
    sha256: str  # a file whose sha256 differs rebuilds the checkpoint
    package: Optional[str] = None  # the installed distribution that ships the file
    package_version: Optional[str] = None
    architecture: str
    tensor_types: dict[str, int]  # the file's tensor types -> count
    embedding_type: str  # the token embedding's type
    dequantised_to: str  # the dtype the checkpoint holds
    converter: str


class ModelCard(_Strict):
    name: str
    family: str = ""
    params: int
    non_embedding_params: int
    train_tokens: int  # all tokens the weights have seen, pre-training included
    train_flops: float
    wall_time_s: float
    build: Optional[BuildInfo] = None
    distillation: Optional[DistillationInfo] = None
    conversion: Optional[ConversionInfo] = None
    weights: Optional[str] = None  # what the weights are, in one line, where that is not obvious


class CardError(ValueError):
    """A card.json that is not a card of this format."""


def read_card(model_dir: str | Path) -> ModelCard | None:
    """The card beside a model's weights; None where there is none."""
    path = Path(model_dir) / CARD
    if not path.exists():
        return None
    try:
        return ModelCard.model_validate_json(path.read_text())
    except (OSError, ValidationError) as e:
        raise CardError(f"{path} is not a readable model card ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:300]}); rebuild the model to rewrite it") from e


def write_card(model_dir: str | Path, card: ModelCard) -> Path:
    return write_atomic(Path(model_dir) / CARD, card.model_dump_json(indent=2))
